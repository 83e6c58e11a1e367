"""Least-squares fit of an affine map between paired activations (model stitching's cheap init)."""

from __future__ import annotations

import torch


def fit_affine(x: torch.Tensor, y: torch.Tensor, ridge: float = 1e-4, bias: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """W, b minimizing ||x W^T + b - y||^2 (+ ridge ||W||^2) over rows (b = 0 when not ``bias``); x (N, d_in), y (N, d_out).

    Solved in float64 through the normal equations of the centred data, so a few thousand
    token activations fit in milliseconds and a rank-deficient x still gives a finite map.
    """
    x = x.reshape(-1, x.shape[-1]).double()
    y = y.reshape(-1, y.shape[-1]).double()
    mx, my = (x.mean(0), y.mean(0)) if bias else (x.new_zeros(x.shape[1]), y.new_zeros(y.shape[1]))
    xc, yc = x - mx, y - my
    gram = xc.T @ xc
    gram += ridge * (gram.diagonal().mean() + 1e-12) * torch.eye(gram.shape[0], dtype=gram.dtype)
    w = torch.linalg.solve(gram, xc.T @ yc).T  # (d_out, d_in)
    b = my - w @ mx
    return w.float(), b.float()
