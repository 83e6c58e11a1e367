"""A word-level tokenizer built from a dataset's vocabulary, so tiny models can be fine-tuned in seconds."""

from __future__ import annotations

import re
from pathlib import Path

from graftkit.data import Dataset

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]


def word_tokenizer(dataset: Dataset, extra: tuple[str, ...] = ()):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = set(extra)
    for split in dataset.splits.values():
        for text in (split.texts or []) + (split.text_pairs or []) + ([split.text] if split.text else []):
            words.update(re.findall(r"\w+|[^\w\s]", text))
    vocab = {w: i for i, w in enumerate(SPECIALS + sorted(words))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]")


def save_tiny_with_tokenizer(arch: str, folder: Path, dataset: Dataset, head: str | None = None, **overrides) -> Path:
    """A tiny random model of ``arch`` plus a word tokenizer for ``dataset``, as one HF folder."""
    from graftkit.zoo import save_tiny

    tokenizer = word_tokenizer(dataset, extra=tuple(dataset.label_names))
    save_tiny(arch, folder, head=head, vocab_size=len(tokenizer), **overrides)
    tokenizer.save_pretrained(folder)
    return folder
