"""The wrapped attention module of one hybrid layer.

It runs the frozen attention, runs the SSM branch (plus an optional memory read) on the
same normalized hidden states, and returns out = (1 - g) * attn + g * ssm with
g = sigmoid(gate_net(h)). Everything after attention (residual, MLP) is the base's own.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from graftkit.hybrid.config import HybridConfig
from graftkit.hybrid.gate import Gate
from graftkit.hybrid.memory.bank import MemoryBank
from graftkit.hybrid.ssm.layer import build_ssm


class HybridBranch(nn.Module):
    """SSM (+ memory) and gate for one layer: the only trainable part of a hybrid layer."""

    def __init__(self, d_model: int, config: HybridConfig) -> None:
        super().__init__()
        self.anchor = config.anchor
        self.ssm = build_ssm(d_model, config.ssm)
        self.memory = MemoryBank(d_model, config.memory) if config.memory is not None else None
        self.gate = Gate(d_model, config.gate_hidden, config.gate_bias, config.gate_per_channel)

    def forward(self, h: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
        h32, a32 = h.float(), attn.float()
        ssm = self.ssm(h32)
        if self.memory is not None:
            ssm = ssm + self.memory(h32)
        g = self.gate(h32)
        if self.anchor:
            # (1 - g) * attn + g * (attn + ssm), written so that ssm == 0 gives attn bit for bit
            return (a32 + g * ssm).to(attn.dtype)
        return ((1 - g) * a32 + g * ssm).to(attn.dtype)


class HybridAttention(nn.Module):
    """Frozen ``attn`` blended with a ``branch``; keeps the attention's call signature."""

    def __init__(self, attn: nn.Module, branch: HybridBranch) -> None:
        super().__init__()
        self.attn = attn
        self.branch = branch
        self.bypass = False  # True runs the base attention alone (used to measure drift from the base)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        out = self.attn(*args, **kwargs)
        if self.bypass:
            return out
        h = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]
        if isinstance(out, tuple):
            return (self.branch(h, out[0]), *out[1:])
        return self.branch(h, out)
