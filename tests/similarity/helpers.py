"""Tiny text models with a real (character-level WordPiece) tokenizer, for end-to-end tests."""

from __future__ import annotations

import string
from pathlib import Path

SENTENCES = [
    "a gripping and funny film", "the plot is thin and dull", "wonderful acting, weak script",
    "i loved every minute of it", "a mess from start to finish", "quiet, moving and honest",
    "too long by half", "sharp writing and a great cast", "nothing new here", "the best film of the year",
    "it never finds its feet", "charming but forgettable", "bold, strange and beautiful",
    "a tired sequel", "smart fun for everyone", "the ending falls flat",
]


def vocab(words: tuple[str, ...] = ()) -> dict[str, int]:
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    chars = string.ascii_lowercase + string.digits + ",.!?'-"
    tokens += list(chars) + [f"##{c}" for c in string.ascii_lowercase]
    return {t: i for i, t in enumerate(tokens)}


def tokenizer(words: tuple[str, ...] = ()):
    """Character-level WordPiece; ``words`` become single tokens (so texts split differently)."""
    from transformers import BertTokenizerFast

    return BertTokenizerFast(vocab=vocab(words), do_lower_case=True)


def tiny_text_model(folder: Path, seed: int = 0, **overrides):
    """An HF folder with a tiny random bert and a character tokenizer (vocab < 128)."""
    from graftkit import zoo

    model = zoo.tiny("bert", seed=seed, **overrides)
    model.save_pretrained(folder)
    tokenizer().save_pretrained(folder)
    return folder
