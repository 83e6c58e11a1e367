"""Cross-attention fusion unit: the anchor's hidden state attends to another model's layer output.

    out = h + tanh(g) * Attn(q = LN(h), k = v = LN(P other))

P projects the other model's width to the anchor's, so widths and families may differ.
The gate g starts at 0, so the unit starts as the exact identity and the frozen anchor's
behaviour is untouched until training opens the gate.
"""

from __future__ import annotations

import torch
from torch import nn

from graftkit.compose.fusion.cross_attention.config import CrossAttentionConfig
from graftkit.errors import ConfigError


class CrossAttentionUnit(nn.Module):
    def __init__(self, anchor_dim: int, other_dim: int, config: CrossAttentionConfig | None = None) -> None:
        super().__init__()
        self.config = config or CrossAttentionConfig()
        if anchor_dim % self.config.heads:
            raise ConfigError(f"cross-attention heads={self.config.heads} do not divide the anchor width {anchor_dim}",
                              hint="pick a head count that divides the anchor's hidden size")
        self.anchor_dim, self.other_dim = anchor_dim, other_dim
        self.proj = nn.Linear(other_dim, anchor_dim)
        self.norm_q = nn.LayerNorm(anchor_dim)
        self.norm_kv = nn.LayerNorm(anchor_dim)
        self.attn = nn.MultiheadAttention(anchor_dim, self.config.heads, dropout=self.config.dropout, batch_first=True)
        self.gate = nn.Parameter(torch.zeros(1))

    def forward(self, h: torch.Tensor, other: torch.Tensor, other_mask: torch.Tensor | None = None) -> torch.Tensor:
        """h (B, T, anchor_dim), other (B, S, other_dim), other_mask (B, S) with 1 for real tokens."""
        kv = self.norm_kv(self.proj(other))
        attn_mask = None
        if self.config.causal:
            t, s = h.shape[1], other.shape[1]
            attn_mask = torch.ones(t, s, dtype=torch.bool, device=h.device).triu(1 + s - t)  # True = blocked
        pad = None if other_mask is None else ~other_mask.bool()
        if attn_mask is not None and pad is not None:  # one float mask avoids a fully blocked row turning into NaN
            blocked = attn_mask.unsqueeze(0) | pad.unsqueeze(1)
            blocked[:, :, 0] &= blocked.all(-1)  # a row with nothing visible keeps (harmlessly) the first position
            attn_mask = blocked.repeat_interleave(self.config.heads, 0)
            pad = None
        out, _ = self.attn(self.norm_q(h), kv, kv, key_padding_mask=pad, attn_mask=attn_mask, need_weights=False)
        return h + torch.tanh(self.gate) * out
