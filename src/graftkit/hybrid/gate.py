"""The gate that blends the attention output with the SSM branch: g = sigmoid(gate_net(h)).

``gate_net`` is a small bottleneck MLP; its last layer starts with zero weights and bias
``gate_bias``, so at init every token gets g = sigmoid(gate_bias). ``last`` keeps the most
recent gate values (detached) for monitoring while ``record`` is on.
"""

from __future__ import annotations

import torch
from torch import nn


class Gate(nn.Module):
    def __init__(self, d_model: int, hidden: int = 32, bias: float = -2.0, per_channel: bool = False) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_model, hidden), nn.SiLU(), nn.Linear(hidden, d_model if per_channel else 1))
        nn.init.zeros_(self.net[2].weight)
        nn.init.constant_(self.net[2].bias, bias)
        self.record = False
        self.last: torch.Tensor | None = None

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        g = torch.sigmoid(self.net(h))
        if self.record:
            self.last = g.detach().mean(-1)  # (batch, length)
        return g
