"""Top-k selection shared by the routers: keep the k largest probabilities, renormalized."""

from __future__ import annotations

import torch


def top_k_weights(probs: torch.Tensor, k: int | None) -> torch.Tensor:
    """Probabilities with all but the top ``k`` per row zeroed and the rest rescaled to sum to 1 (k None: dense)."""
    if k is None or k >= probs.shape[-1]:
        return probs
    values, index = probs.topk(k, dim=-1)
    out = torch.zeros_like(probs).scatter(-1, index, values)
    return out / out.sum(-1, keepdim=True).clamp_min(1e-9)
