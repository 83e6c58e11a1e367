"""Pooled router: one expert mixture per sequence, from the pooled hidden state."""

from __future__ import annotations

import torch
from torch import nn

from graftkit.compose.routers.losses import entropy_loss, load_balance_loss
from graftkit.compose.routers.output import RouterOutput
from graftkit.compose.routers.pooled.config import PooledRouterConfig
from graftkit.compose.routers.topk import top_k_weights
from graftkit.errors import ConfigError


class PooledRouter(nn.Module):
    """Linear scores over the pooled sequence; starts uniform (zero weights) so no expert is favoured at init.

    ``last`` pooling reads the last real token, which keeps a causal LM causal only for
    the final position: use the token router for language modelling.
    """

    def __init__(self, hidden_size: int, num_experts: int, config: PooledRouterConfig | None = None) -> None:
        super().__init__()
        self.config = config or PooledRouterConfig()
        if self.config.pooling not in ("mean", "first", "last"):
            raise ConfigError(f"unknown pooling {self.config.pooling!r}", hint="use mean, first or last")
        self.num_experts = num_experts
        self.norm = nn.LayerNorm(hidden_size)
        self.score = nn.Linear(hidden_size, num_experts)
        nn.init.zeros_(self.score.weight)
        nn.init.zeros_(self.score.bias)

    def pool(self, h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if mask is None:
            mask = torch.ones(h.shape[:2], dtype=torch.long, device=h.device)
        m = mask.to(h.dtype).unsqueeze(-1)
        if self.config.pooling == "mean":
            return (h * m).sum(1) / m.sum(1).clamp_min(1)
        if self.config.pooling == "first":
            return h[:, 0]
        last = mask.long().cumsum(1).argmax(1)
        return h[torch.arange(h.shape[0], device=h.device), last]

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> RouterOutput:
        logits = self.score(self.norm(self.pool(h, mask))) / self.config.temperature  # (B, E)
        probs = logits.softmax(-1)
        weights = top_k_weights(probs, self.config.top_k)
        probs_t = probs.unsqueeze(1)
        weights_t = weights.unsqueeze(1)
        return RouterOutput(
            weights=weights_t.expand(-1, h.shape[1], -1),
            probs=probs_t,
            entropy_loss=entropy_loss(probs_t),
            balance_loss=load_balance_loss(probs_t, weights_t),
        )
