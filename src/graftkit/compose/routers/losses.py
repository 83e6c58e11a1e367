"""The two regularizers of a router: decision entropy and load balance (Switch Transformer's form)."""

from __future__ import annotations

import torch


def _masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return values.mean()
    m = mask.to(values.dtype)
    return (values * m).sum() / m.sum().clamp_min(1)


def entropy_loss(probs: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean entropy of the routing distributions (B, T, E) over real tokens; minimizing it makes decisions sharp."""
    ent = -(probs * probs.clamp_min(1e-9).log()).sum(-1)
    return _masked_mean(ent, mask)


def load_balance_loss(probs: torch.Tensor, weights: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """E * sum_e f_e * P_e: f_e the fraction of tokens routed to e, P_e its mean probability; 1.0 when balanced."""
    num_experts = probs.shape[-1]
    m = torch.ones(probs.shape[:-1], device=probs.device) if mask is None else mask.to(probs.dtype)
    n = m.sum().clamp_min(1)
    routed = (weights > 0).to(probs.dtype)
    routed = routed / routed.sum(-1, keepdim=True).clamp_min(1)  # each token's unit of load split over its k experts
    f = (routed * m.unsqueeze(-1)).sum((0, 1)) / n
    p = (probs * m.unsqueeze(-1)).sum((0, 1)) / n
    return num_experts * (f * p).sum()
