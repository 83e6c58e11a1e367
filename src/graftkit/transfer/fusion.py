"""Latent fusion of several fingerprints: weighted averaging, or a gate conditioned on a task.

The fused fingerprint says what mix of capabilities to give the target; its weights are
what the adapter generators use to weight their sources (``generate(..., weights=...)``).
"""

from __future__ import annotations

import torch
from torch import nn

from graftkit.errors import TransferError


def _check(fps: torch.Tensor) -> torch.Tensor:
    if fps.dim() != 2 or fps.shape[0] < 1:
        raise TransferError(f"fingerprints must be stacked as (n, dim), got {tuple(fps.shape)}", hint="torch.stack([...])")
    return fps.float()


def weighted_average(fps: torch.Tensor, weights: list[float] | torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalized weighted mean of unit fingerprints; weights must be non-negative and not all zero."""
    fps = _check(fps)
    w = torch.ones(len(fps)) if weights is None else torch.as_tensor(weights, dtype=torch.float32)
    if w.shape != (len(fps),) or (w < 0).any() or float(w.sum()) <= 0:
        raise TransferError(f"fusion weights {w.tolist()} do not fit {len(fps)} fingerprints",
                            hint="one non-negative weight per fingerprint, not all zero")
    w = w / w.sum()
    return nn.functional.normalize((w[:, None] * fps).sum(0), dim=0), w


class TaskGate(nn.Module):
    """Weights over source fingerprints from a task query: softmax(cos(W q, fp_i) / temperature).

    Untrained, W is the identity: the sources most similar to the task's fingerprint get
    the weight. ``fit`` learns W and the temperature from (query, best source) examples.
    """

    def __init__(self, dim: int = 512, temperature: float = 0.1):
        super().__init__()
        self.proj = nn.Linear(dim, dim, bias=False)
        nn.init.eye_(self.proj.weight)
        self.log_temperature = nn.Parameter(torch.tensor(float(temperature)).log())

    def forward(self, query: torch.Tensor, fps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fps = _check(fps)
        q = nn.functional.normalize(self.proj(query.float()), dim=-1)
        w = torch.softmax(fps @ q / self.log_temperature.exp(), dim=0)
        return nn.functional.normalize((w[:, None] * fps).sum(0), dim=0), w

    def fit(self, examples: list[tuple[torch.Tensor, torch.Tensor, int]], steps: int = 200, lr: float = 1e-2) -> list[float]:
        """``examples``: (query, source fingerprints (n, dim), index of the right source)."""
        opt = torch.optim.Adam(self.parameters(), lr=lr)
        losses = []
        for _ in range(steps):
            loss = sum(-torch.log(self(q, f)[1][i].clamp_min(1e-12)) for q, f, i in examples) / len(examples)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        return losses


def fuse(fps: torch.Tensor, weights: list[float] | None = None, query: torch.Tensor | None = None,
         gate: TaskGate | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One entry point: a query (with an optional trained gate) gates; otherwise weights (default equal) average."""
    if query is not None:
        with torch.no_grad():
            return (gate or TaskGate(fps.shape[1]))(query, fps)
    return weighted_average(fps, weights)
