"""Tiny models with tiny tokenizers saved as HF folders, shared by the compose tests."""

from __future__ import annotations

from pathlib import Path

import pytest

@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models: thread hand-offs cost more than the math on a shared 2-core machine (10x here)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


WORDS = ["the", "cat", "dog", "sat", "on", "mat", "a", "big", "red", "runs", "fast", "slow", "and", "is", "blue", "green"]


def word_tokenizer():
    """A word-level fast tokenizer: [PAD]=0, [UNK]=1, [EOS]=2, then WORDS."""
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders
    from transformers import PreTrainedTokenizerFast

    vocab = {"[PAD]": 0, "[UNK]": 1, "[EOS]": 2, **{w: i + 3 for i, w in enumerate(WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", eos_token="[EOS]")


def char_tokenizer():
    """A character-level fast tokenizer (a different vocabulary from word_tokenizer)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders
    from transformers import PreTrainedTokenizerFast

    chars = sorted(set("".join(WORDS) + " "))
    vocab = {"[PAD]": 0, "[UNK]": 1, "[EOS]": 2, **{c: i + 3 for i, c in enumerate(chars)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", eos_token="[EOS]")


def save_model(path: Path, arch: str, tokenizer=None, seed: int = 0, **overrides) -> Path:
    from graftkit import zoo

    zoo.save_tiny(arch, path, seed=seed, **overrides)
    if tokenizer is not None:
        tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_folders(tmp_path_factory) -> dict[str, Path]:
    """llama (word tokenizer), a second llama fine-tune stand-in (seed 1), a 48-wide gpt2 (char tokenizer)."""
    root = tmp_path_factory.mktemp("compose_models")
    return {
        "llama": save_model(root / "llama", "llama", word_tokenizer(), seed=0),
        "llama_b": save_model(root / "llama_b", "llama", word_tokenizer(), seed=1),
        "gpt2_char": save_model(root / "gpt2_char", "gpt2", char_tokenizer(), seed=2, n_embd=48),
    }
