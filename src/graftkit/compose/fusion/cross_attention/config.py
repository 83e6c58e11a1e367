"""Settings of the cross-attention fusion unit (CALM's composition layer)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class CrossAttentionConfig:
    """``heads`` must divide the anchor width; ``causal`` stops a token reading positions after its own
    (set it when both models read the same token sequence, as in language modelling)."""

    heads: int = 4
    causal: bool = False
    dropout: float = 0.0
