"""Tiny random HF models of many architectures, for tests (mergekit's habit: vocab 64-ish, hidden 32)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from graftkit.errors import ZooError

if TYPE_CHECKING:  # torch is imported where a model is built, so `graft zoo list` starts fast
    import torch

_DECODER = dict(
    vocab_size=128,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=128,
)

# model_type -> (config overrides, default head)
TINY_ARCHITECTURES: dict[str, tuple[dict[str, Any], str]] = {
    "llama": (dict(_DECODER, tie_word_embeddings=False), "causal-lm"),
    "mistral": (dict(_DECODER, sliding_window=None, tie_word_embeddings=False), "causal-lm"),
    "qwen2": (dict(_DECODER, tie_word_embeddings=True), "causal-lm"),
    "gemma": (dict(_DECODER, head_dim=8), "causal-lm"),
    "gemma3_text": (dict(_DECODER, head_dim=8, sliding_window=16, layer_types=None), "causal-lm"),
    "phi3": (dict(_DECODER, pad_token_id=0, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False), "causal-lm"),
    "gpt2": (
        dict(vocab_size=128, n_embd=32, n_layer=2, n_head=4, n_positions=128, bos_token_id=0, eos_token_id=0),
        "causal-lm",
    ),
    "bert": (
        dict(vocab_size=128, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
             intermediate_size=64, max_position_embeddings=128),
        "base",
    ),
    "roberta": (
        dict(vocab_size=128, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
             intermediate_size=64, max_position_embeddings=130, pad_token_id=1),
        "base",
    ),
    "mpnet": (
        dict(vocab_size=128, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
             intermediate_size=64, max_position_embeddings=130),
        "base",
    ),
    "t5": (
        dict(vocab_size=128, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2,
             num_heads=4, decoder_start_token_id=0),
        "seq2seq-lm",
    ),
    "vit": (
        dict(image_size=16, patch_size=4, num_channels=3, hidden_size=32, num_hidden_layers=2,
             num_attention_heads=4, intermediate_size=64),
        "base",
    ),
}

_HEADS = {
    "base": "AutoModel",
    "causal-lm": "AutoModelForCausalLM",
    "masked-lm": "AutoModelForMaskedLM",
    "seq2seq-lm": "AutoModelForSeq2SeqLM",
    "sequence-classification": "AutoModelForSequenceClassification",
    "image-classification": "AutoModelForImageClassification",
}


def tiny_config(arch: str, **overrides: Any):
    """The transformers config of a tiny ``arch`` model, with ``overrides`` applied."""
    from transformers import AutoConfig

    if arch not in TINY_ARCHITECTURES:
        raise ZooError(
            f"no tiny model for architecture {arch!r}",
            hint=f"choose one of: {', '.join(sorted(TINY_ARCHITECTURES))}",
        )
    settings, _ = TINY_ARCHITECTURES[arch]
    return AutoConfig.for_model(arch, **{**settings, **overrides})


def tiny(arch: str, head: str | None = None, seed: int = 0, **overrides: Any) -> torch.nn.Module:
    """A tiny randomly initialized HF model of ``arch`` in eval mode.

    ``head`` picks the Auto class (base, causal-lm, masked-lm, seq2seq-lm,
    sequence-classification, image-classification); each architecture has a default.
    The same ``seed`` gives the same weights.
    """
    import torch
    import transformers

    config = tiny_config(arch, **overrides)
    head = head or TINY_ARCHITECTURES[arch][1]
    if head not in _HEADS:
        raise ZooError(f"unknown head {head!r}", hint=f"choose one of: {', '.join(_HEADS)}")
    auto = getattr(transformers, _HEADS[head])
    torch.manual_seed(seed)
    model = auto.from_config(config)
    return model.eval()


def save_tiny(arch: str, path: str | Path, head: str | None = None, seed: int = 0, **overrides: Any) -> Path:
    """Write a tiny model as an HF folder (safetensors) and return its path."""
    path = Path(path)
    tiny(arch, head=head, seed=seed, **overrides).save_pretrained(path)
    return path
