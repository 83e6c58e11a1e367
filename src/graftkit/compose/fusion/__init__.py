"""Fusion units ("cognitive links"): one model's layer reads another model's layer. Each kind is a folder
with config.py, layer.py and model.py; ``LinkedModel`` applies units between frozen models."""

from __future__ import annotations

import difflib
from dataclasses import fields

from torch import nn

from graftkit.compose.fusion.cross_attention.config import CrossAttentionConfig
from graftkit.compose.fusion.cross_attention.layer import CrossAttentionUnit
from graftkit.compose.fusion.cross_attention.model import build as _build_cross
from graftkit.compose.fusion.gated.config import GatedProjectionConfig
from graftkit.compose.fusion.gated.layer import GatedProjectionUnit
from graftkit.compose.fusion.gated.model import build as _build_gated
from graftkit.errors import ConfigError

UNITS = {"cross_attention": (CrossAttentionConfig, _build_cross), "gated": (GatedProjectionConfig, _build_gated)}


def make_unit(kind: str, anchor_dim: int, other_dim: int, **options: object) -> nn.Module:
    """A fusion unit of ``kind`` that starts as the identity on the anchor's hidden state."""
    if kind not in UNITS:
        close = difflib.get_close_matches(kind, UNITS, n=1)
        raise ConfigError(f"unknown fusion unit {kind!r}",
                          hint=f"did you mean {close[0]!r}?" if close else f"choose one of: {', '.join(UNITS)}")
    config_cls, build = UNITS[kind]
    allowed = {f.name for f in fields(config_cls)}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ConfigError(f"fusion option(s) {unknown} are not {kind} settings", hint=f"{kind} takes: {', '.join(sorted(allowed))}")
    return build(anchor_dim, other_dim, **options)


from graftkit.compose.fusion.linked import Link, LinkedModel  # noqa: E402  (needs make_unit above)

__all__ = ["UNITS", "CrossAttentionConfig", "CrossAttentionUnit", "GatedProjectionConfig", "GatedProjectionUnit",
           "Link", "LinkedModel", "make_unit"]
