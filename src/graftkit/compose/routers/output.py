"""What every router returns: mixing weights, the full probabilities, its two losses and readable stats."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class RouterOutput:
    """``weights`` (B, T, E) mix the experts (zero outside the top-k); ``probs`` are the softmax before top-k."""

    weights: torch.Tensor
    probs: torch.Tensor
    entropy_loss: torch.Tensor
    balance_loss: torch.Tensor

    def stats(self, mask: torch.Tensor | None = None) -> dict[str, object]:
        """Fraction of (real) tokens whose top expert is each expert, mean probabilities, entropy, balance loss."""
        probs = self.probs.detach()
        top = probs.argmax(-1)
        m = torch.ones(top.shape, dtype=torch.bool, device=top.device) if mask is None else mask.bool()
        if m.shape != top.shape:  # pooled routing: one decision per sequence
            m = m.any(-1, keepdim=True).expand_as(top)
        n = m.sum().clamp_min(1)
        fraction = torch.stack([((top == e) & m).sum() / n for e in range(probs.shape[-1])])
        mean_prob = (probs * m.unsqueeze(-1)).sum((0, 1)) / n
        return {
            "top_expert_fraction": [round(float(v), 4) for v in fraction],
            "mean_prob": [round(float(v), 4) for v in mean_prob],
            "entropy": round(float(self.entropy_loss.detach()), 4),
            "load_balance": round(float(self.balance_loss.detach()), 4),
        }
