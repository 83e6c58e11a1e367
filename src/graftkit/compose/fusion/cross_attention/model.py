"""Building a cross-attention fusion unit from its config (the entry the fusion registry calls)."""

from __future__ import annotations

from graftkit.compose.fusion.cross_attention.config import CrossAttentionConfig
from graftkit.compose.fusion.cross_attention.layer import CrossAttentionUnit


def build(anchor_dim: int, other_dim: int, **options: object) -> CrossAttentionUnit:
    """A CrossAttentionUnit; ``options`` are CrossAttentionConfig fields (``heads``, ``causal``, ``dropout``)."""
    return CrossAttentionUnit(anchor_dim, other_dim, CrossAttentionConfig(**options))  # type: ignore[arg-type]
