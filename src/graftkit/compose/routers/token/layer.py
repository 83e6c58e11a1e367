"""Token router: each token picks its own top-k experts (causal: a token's choice reads only that token)."""

from __future__ import annotations

import torch
from torch import nn

from graftkit.compose.routers.losses import entropy_loss, load_balance_loss
from graftkit.compose.routers.output import RouterOutput
from graftkit.compose.routers.token.config import TokenRouterConfig
from graftkit.compose.routers.topk import top_k_weights


class TokenRouter(nn.Module):
    """LayerNorm then linear scores per token; zero-initialized, so routing starts uniform."""

    def __init__(self, hidden_size: int, num_experts: int, config: TokenRouterConfig | None = None) -> None:
        super().__init__()
        self.config = config or TokenRouterConfig()
        self.num_experts = num_experts
        self.norm = nn.LayerNorm(hidden_size)
        self.score = nn.Linear(hidden_size, num_experts)
        nn.init.zeros_(self.score.weight)
        nn.init.zeros_(self.score.bias)

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> RouterOutput:
        probs = (self.score(self.norm(h)) / self.config.temperature).softmax(-1)  # (B, T, E)
        weights = top_k_weights(probs, self.config.top_k)
        return RouterOutput(weights=weights, probs=probs, entropy_loss=entropy_loss(probs, mask),
                            balance_loss=load_balance_loss(probs, weights, mask))
