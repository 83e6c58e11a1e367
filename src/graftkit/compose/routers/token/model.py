"""Building a token router from its config (the entry the router registry calls)."""

from __future__ import annotations

from graftkit.compose.routers.token.config import TokenRouterConfig
from graftkit.compose.routers.token.layer import TokenRouter


def build(hidden_size: int, num_experts: int, **options: object) -> TokenRouter:
    """A TokenRouter; ``options`` are TokenRouterConfig fields (``top_k``, ``temperature``)."""
    return TokenRouter(hidden_size, num_experts, TokenRouterConfig(**options))  # type: ignore[arg-type]
