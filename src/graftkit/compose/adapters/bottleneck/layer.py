"""Bottleneck adapter: y = P x + up(act(down(P x))), the identity at start (up = 0)."""

from __future__ import annotations

import torch
from torch import nn

from graftkit.compose.adapters.bottleneck.config import BottleneckAdapterConfig
from graftkit.compose.adapters.least_squares import fit_affine
from graftkit.errors import ConfigError

_ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU, "tanh": nn.Tanh}


class BottleneckAdapter(nn.Module):
    """Few parameters (2 * width * rank) when widths match: P is then no layer at all.

    When widths differ P is a linear map (a truncated identity at start, the least-squares
    map after ``fit``); the bottleneck branch starts at zero, so the adapter starts as P.
    """

    def __init__(self, in_dim: int, out_dim: int, config: BottleneckAdapterConfig | None = None) -> None:
        super().__init__()
        self.config = config or BottleneckAdapterConfig()
        if self.config.activation not in _ACTIVATIONS:
            raise ConfigError(f"unknown bottleneck activation {self.config.activation!r}",
                              hint=f"choose one of: {', '.join(_ACTIVATIONS)}")
        self.in_dim, self.out_dim = in_dim, out_dim
        self.proj: nn.Linear | None = None
        if in_dim != out_dim:
            self.proj = nn.Linear(in_dim, out_dim)
            with torch.no_grad():
                self.proj.weight.copy_(torch.eye(out_dim, in_dim))
                self.proj.bias.zero_()
        self.down = nn.Linear(out_dim, self.config.rank)
        self.act = _ACTIVATIONS[self.config.activation]()
        self.up = nn.Linear(self.config.rank, out_dim)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        base = x if self.proj is None else self.proj(x)
        return base + self.up(self.act(self.down(base)))

    @torch.no_grad()
    def fit(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """Least-squares init of P from paired activations (equal widths keep P = I); returns the relative residual."""
        if self.proj is not None:
            w, b = fit_affine(x, y)
            self.proj.weight.copy_(w)
            self.proj.bias.copy_(b)
        pred = self(x.reshape(-1, x.shape[-1]).float())
        target = y.reshape(-1, y.shape[-1]).float()
        return float((pred - target).norm() / target.norm().clamp_min(1e-12))
