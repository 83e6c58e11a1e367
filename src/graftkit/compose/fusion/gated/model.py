"""Building a gated projection fusion unit from its config (the entry the fusion registry calls)."""

from __future__ import annotations

from graftkit.compose.fusion.gated.config import GatedProjectionConfig
from graftkit.compose.fusion.gated.layer import GatedProjectionUnit


def build(anchor_dim: int, other_dim: int, **options: object) -> GatedProjectionUnit:
    """A GatedProjectionUnit; ``options`` are GatedProjectionConfig fields (``per_channel``)."""
    return GatedProjectionUnit(anchor_dim, other_dim, GatedProjectionConfig(**options))  # type: ignore[arg-type]
