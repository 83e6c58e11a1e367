"""Adapters between hidden spaces; every kind is a folder with config.py, layer.py and model.py."""

from __future__ import annotations

import difflib
from dataclasses import fields

from torch import nn

from graftkit.compose.adapters.bottleneck.config import BottleneckAdapterConfig
from graftkit.compose.adapters.bottleneck.layer import BottleneckAdapter
from graftkit.compose.adapters.bottleneck.model import build as _build_bottleneck
from graftkit.compose.adapters.least_squares import fit_affine
from graftkit.compose.adapters.linear.config import LinearAdapterConfig
from graftkit.compose.adapters.linear.layer import LinearAdapter
from graftkit.compose.adapters.linear.model import build as _build_linear
from graftkit.errors import ConfigError

ADAPTERS = {"linear": (LinearAdapterConfig, _build_linear), "bottleneck": (BottleneckAdapterConfig, _build_bottleneck)}


def make_adapter(kind: str, in_dim: int, out_dim: int, **options: object) -> nn.Module:
    """An identity-initialized adapter of ``kind``; ConfigError names unknown kinds and options."""
    if kind not in ADAPTERS:
        close = difflib.get_close_matches(kind, ADAPTERS, n=1)
        raise ConfigError(f"unknown adapter_type {kind!r}",
                          hint=f"did you mean {close[0]!r}?" if close else f"choose one of: {', '.join(ADAPTERS)}")
    config_cls, build = ADAPTERS[kind]
    allowed = {f.name for f in fields(config_cls)}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ConfigError(f"adapter option(s) {unknown} are not {kind} adapter settings",
                          hint=f"{kind} takes: {', '.join(sorted(allowed)) or 'no options'}")
    return build(in_dim, out_dim, **options)


__all__ = ["ADAPTERS", "BottleneckAdapter", "BottleneckAdapterConfig", "LinearAdapter", "LinearAdapterConfig",
           "fit_affine", "make_adapter"]
