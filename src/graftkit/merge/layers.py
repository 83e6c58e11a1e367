"""Layer indices in tensor names: find them, and rewrite them when slices move layers.

Every architecture numbers its blocks somewhere in the tensor names
(``model.layers.3.``, ``encoder.layer.3.``, ``transformer.h.3.``); the checkpoint's
``architecture.layer_pattern`` is a regex whose group 1 is that number, so slices
work for any model without a per-architecture table.
"""

from __future__ import annotations

import re

# names that come before the layers in a forward pass (the rest of the non-layer tensors come after)
_PRE_HINTS = ("embed", "wte", "wpe", "tok_", "token_type", "position", "patch", "cls_token", "shared")


def with_layer(name: str, pattern: re.Pattern[str], index: int) -> str:
    """``name`` with its layer number replaced by ``index``."""
    match = pattern.search(name)
    if match is None:
        return name
    start, end = match.span(1)
    return f"{name[:start]}{index}{name[end:]}"


def is_pre_layer(name: str) -> bool:
    """Whether a non-layer tensor belongs before the layer stack (embeddings) rather than after it."""
    lowered = name.lower()
    return any(hint in lowered for hint in _PRE_HINTS) and "lm_head" not in lowered
