"""Gated projection fusion unit: out = h + tanh(g) * P other, token by token.

Cheaper than cross-attention, but it needs both models to read the same token positions
(same tokenizer, same sequence); the gate starts at 0, so the unit starts as the identity.
"""

from __future__ import annotations

import torch
from torch import nn

from graftkit.compose.fusion.gated.config import GatedProjectionConfig
from graftkit.errors import ShapeMismatchError


class GatedProjectionUnit(nn.Module):
    def __init__(self, anchor_dim: int, other_dim: int, config: GatedProjectionConfig | None = None) -> None:
        super().__init__()
        self.config = config or GatedProjectionConfig()
        self.anchor_dim, self.other_dim = anchor_dim, other_dim
        self.proj = nn.Linear(other_dim, anchor_dim)
        self.gate = nn.Parameter(torch.zeros(anchor_dim if self.config.per_channel else 1))

    def forward(self, h: torch.Tensor, other: torch.Tensor, other_mask: torch.Tensor | None = None) -> torch.Tensor:
        if other.shape[:2] != h.shape[:2]:
            raise ShapeMismatchError(
                f"gated projection needs the same token positions: anchor {tuple(h.shape[:2])} vs other {tuple(other.shape[:2])}",
                hint="use the cross_attention unit for models that tokenize differently")
        return h + torch.tanh(self.gate) * self.proj(other)
