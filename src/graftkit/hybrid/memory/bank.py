"""A memory bank of learned slots, read by attention from every token.

Dense: softmax(q K^T / sqrt(d)) V over all slots. Product keys: the query's two halves
score two sub-key tables of sqrt(slots) each; the top-k of each half give k*k candidate
slots (i, j) -> i * sqrt(slots) + j, of which the top-k are read. ``usage`` accumulates
the attention mass each slot received while ``track_usage`` is on (for the heatmap).
The read goes through a zero-initialized projection, so a new bank adds nothing.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from graftkit.hybrid.memory.config import MemoryConfig


class MemoryBank(nn.Module):
    def __init__(self, d_model: int, config: MemoryConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.query = nn.Linear(d_model, config.key_dim, bias=False)
        if config.product_keys:
            side = math.isqrt(config.slots)
            self.sub_keys = nn.Parameter(torch.randn(2, side, config.key_dim // 2) / math.sqrt(config.key_dim))
        else:
            self.keys = nn.Parameter(torch.randn(config.slots, config.key_dim) / math.sqrt(config.key_dim))
        self.values = nn.Parameter(torch.randn(config.slots, d_model) * 0.02)
        self.out_proj = nn.Linear(d_model, d_model, bias=False)
        nn.init.zeros_(self.out_proj.weight)
        self.register_buffer("usage", torch.zeros(config.slots), persistent=False)
        self.track_usage = False

    def _dense(self, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        weights = F.softmax(q @ self.keys.T / math.sqrt(q.shape[-1]), dim=-1)
        return weights @ self.values, weights

    def _product(self, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k, side = self.config.top_k, self.sub_keys.shape[1]
        q1, q2 = q.chunk(2, dim=-1)
        s1, i1 = (q1 @ self.sub_keys[0].T).topk(min(k, side), dim=-1)
        s2, i2 = (q2 @ self.sub_keys[1].T).topk(min(k, side), dim=-1)
        scores = (s1.unsqueeze(-1) + s2.unsqueeze(-2)).flatten(-2)  # (..., k*k)
        index = (i1.unsqueeze(-1) * side + i2.unsqueeze(-2)).flatten(-2)
        best, pos = scores.topk(k, dim=-1)
        slots = index.gather(-1, pos)
        weights = F.softmax(best / math.sqrt(q.shape[-1]), dim=-1)
        read = (weights.unsqueeze(-1) * self.values[slots]).sum(-2)
        dense = torch.zeros(*weights.shape[:-1], self.config.slots, dtype=weights.dtype, device=weights.device)
        return read, dense.scatter_add_(-1, slots, weights) if self.track_usage else dense

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        q = self.query(h)
        read, weights = self._product(q) if self.config.product_keys else self._dense(q)
        if self.track_usage:
            self.usage += weights.detach().reshape(-1, self.config.slots).sum(0)
        return self.out_proj(read)

    def usage_fraction(self, threshold: float = 0.01) -> float:
        """Share of slots that received at least ``threshold`` of an even share of the mass."""
        total = float(self.usage.sum())
        if total == 0:
            return 0.0
        share = self.usage / total
        return float((share >= threshold / self.config.slots).float().mean())
