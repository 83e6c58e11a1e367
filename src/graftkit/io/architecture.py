"""What a checkpoint's config and tensor names say about its architecture.

The layer-index pattern is inferred from the names, not looked up per model type: the
dotted prefix before the first integer component (``model.layers``, ``transformer.h``,
``encoder.layer``, ``blk``) whose integers run over exactly 0..N-1 is the layer stack.
"""

from __future__ import annotations

import functools
import json
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graftkit.errors import CheckpointError

_FIRST_INDEX = re.compile(r"^(?:(.*?)\.)?(\d+)(?:\.|$)")
_HIDDEN_KEYS = ("hidden_size", "n_embd", "d_model", "dim")
_LAYER_KEYS = ("num_hidden_layers", "n_layer", "num_layers", "n_layers")
_HEAD_SUFFIXES = ("lm_head.weight", "embed_out.weight")
_HEAD_NAMES = ("output.weight",)  # GGUF
_EMBED_SUFFIXES = ("embed_tokens.weight", "wte.weight", "word_embeddings.weight", "token_embd.weight", "shared.weight")


@dataclass(frozen=True)
class ArchitectureInfo:
    """Model type, sizes and layer naming of a checkpoint; None where neither config nor names tell."""

    model_type: str | None = None
    architectures: tuple[str, ...] = ()
    hidden_size: int | None = None
    num_layers: int | None = None
    vocab_size: int | None = None
    layer_pattern: str | None = None  # regex, group 1 = layer index
    tied_embeddings: bool | None = None
    layer_prefixes: tuple[str, ...] = field(default=())  # the prefixes the pattern alternates over

    def layer_of(self, name: str) -> int | None:
        """The layer index of tensor ``name``, or None for tensors outside the layer stack."""
        if self.layer_pattern is None:
            return None
        m = _compiled(self.layer_pattern).match(name)
        return int(m.group(1)) if m else None


@functools.lru_cache(maxsize=64)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def read_config(path: Path) -> dict[str, Any]:
    """Parse ``config.json``; a clear CheckpointError names the file and the JSON error position."""
    fix = "repair the file or copy config.json again from the model's source"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise CheckpointError(f"cannot read {path}: {e}", hint=fix) from None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as e:
        raise CheckpointError(
            f"{path} is not valid JSON: {e.msg} at line {e.lineno} column {e.colno} (char {e.pos})", hint=fix
        ) from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{path} must hold a JSON object, found {type(config).__name__}", hint=fix)
    return config


def infer_layer_prefixes(names: Iterable[str], expected: int | None = None) -> tuple[tuple[str, ...], int | None]:
    """The prefixes of the layer stack(s) and their layer count, from tensor names alone.

    A prefix qualifies when its indices are exactly 0..N-1. The winner has N equal to
    ``expected`` (the config's layer count) when one does, then the most tensors; sibling
    stacks with the same N and the same last component (T5's ``encoder.block`` and
    ``decoder.block``) join it.
    """
    indices: dict[str, set[int]] = defaultdict(set)
    counts: dict[str, int] = defaultdict(int)
    for name in names:
        m = _FIRST_INDEX.match(name)
        if m:
            prefix = m.group(1) or ""
            indices[prefix].add(int(m.group(2)))
            counts[prefix] += 1
    stacks = {p: len(ix) for p, ix in indices.items() if ix == set(range(len(ix)))}
    if not stacks:
        return (), None
    best = max(stacks, key=lambda p: (stacks[p] == expected, counts[p], stacks[p], p))
    n, last = stacks[best], best.rsplit(".", 1)[-1]
    siblings = sorted(p for p in stacks if stacks[p] == n and p.rsplit(".", 1)[-1] == last)
    return tuple(siblings), n


def layer_pattern(prefixes: tuple[str, ...]) -> str | None:
    """A regex whose group 1 is the layer index, for names under any of ``prefixes``."""
    if not prefixes:
        return None
    alternatives = [re.escape(p) + r"\." if p else "" for p in prefixes]
    joined = alternatives[0] if len(alternatives) == 1 else "(?:" + "|".join(alternatives) + ")"
    return "^" + joined + r"(\d+)(?:\.|$)"


@functools.lru_cache(maxsize=64)
def _default_tied(model_type: str) -> bool | None:
    """transformers' default ``tie_word_embeddings`` for ``model_type`` (None when it has none)."""
    try:
        from transformers import CONFIG_MAPPING

        value = getattr(CONFIG_MAPPING[model_type](), "tie_word_embeddings", None)
    except Exception:  # an unknown model type, or a config class that needs arguments
        return None
    return value if isinstance(value, bool) else None


def _lookup(config: dict[str, Any], keys: tuple[str, ...]) -> Any:
    """The first of ``keys`` in ``config``, then in its ``text_config`` (multimodal models nest there)."""
    for scope in (config, config.get("text_config") or {}):
        if isinstance(scope, dict):
            for key in keys:
                if isinstance(scope.get(key), (int, bool)):
                    return scope[key]
    return None


def tied_from_names(names: list[str]) -> bool | None:
    """True when there is an input embedding but no output head (the head reuses the embedding)."""
    has_head = any(n.endswith(_HEAD_SUFFIXES) or n in _HEAD_NAMES for n in names)
    if has_head:
        return False
    return True if any(n.endswith(_EMBED_SUFFIXES) for n in names) else None


def architecture_from(
    names: list[str],
    config: dict[str, Any] | None,
    fallback: dict[str, Any] | None = None,
) -> ArchitectureInfo:
    """Combine ``config`` (config.json), ``fallback`` (e.g. GGUF metadata, same keys) and the names."""
    source = config if config is not None else (fallback or {})
    model_type = source.get("model_type") if isinstance(source.get("model_type"), str) else None
    architectures = tuple(a for a in source.get("architectures") or () if isinstance(a, str))
    num_layers = _lookup(source, _LAYER_KEYS)
    prefixes, inferred = infer_layer_prefixes(names, num_layers)
    tied = _lookup(source, ("tie_word_embeddings",))
    if tied is None and model_type is not None and config is not None:
        tied = _default_tied(model_type)
    if tied is None:
        tied = tied_from_names(names)
    return ArchitectureInfo(
        model_type=model_type,
        architectures=architectures,
        hidden_size=_lookup(source, _HIDDEN_KEYS),
        num_layers=num_layers if num_layers is not None else inferred,
        vocab_size=_lookup(source, ("vocab_size",)),
        layer_pattern=layer_pattern(prefixes),
        tied_embeddings=bool(tied) if tied is not None else None,
        layer_prefixes=prefixes,
    )
