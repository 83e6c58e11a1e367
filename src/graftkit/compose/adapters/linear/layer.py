"""Linear adapter: y = W x + b, the identity at start."""

from __future__ import annotations

import torch
from torch import nn

from graftkit.compose.adapters.least_squares import fit_affine
from graftkit.compose.adapters.linear.config import LinearAdapterConfig


class LinearAdapter(nn.Module):
    """Maps hidden states of width ``in_dim`` to ``out_dim``.

    Equal widths start as the exact identity (W = I, b = 0). Different widths start as a
    truncated / zero-padded identity, which is not a faithful map: call ``fit(x, y)`` with
    paired activations of the two models to start from the least-squares map instead.
    """

    def __init__(self, in_dim: int, out_dim: int, config: LinearAdapterConfig | None = None) -> None:
        super().__init__()
        self.config = config or LinearAdapterConfig()
        self.in_dim, self.out_dim = in_dim, out_dim
        self.proj = nn.Linear(in_dim, out_dim, bias=self.config.bias)
        with torch.no_grad():
            self.proj.weight.copy_(torch.eye(out_dim, in_dim))
            if self.proj.bias is not None:
                self.proj.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)

    @torch.no_grad()
    def fit(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """Least-squares init from paired activations x (..., in_dim) -> y (..., out_dim); returns the relative residual."""
        w, b = fit_affine(x, y, bias=self.proj.bias is not None)
        self.proj.weight.copy_(w)
        if self.proj.bias is not None:
            self.proj.bias.copy_(b)
        pred = self(x.reshape(-1, x.shape[-1]).float())
        target = y.reshape(-1, y.shape[-1]).float()
        return float((pred - target).norm() / target.norm().clamp_min(1e-12))
