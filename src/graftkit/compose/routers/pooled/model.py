"""Building a pooled router from its config (the entry the router registry calls)."""

from __future__ import annotations

from graftkit.compose.routers.pooled.config import PooledRouterConfig
from graftkit.compose.routers.pooled.layer import PooledRouter


def build(hidden_size: int, num_experts: int, **options: object) -> PooledRouter:
    """A PooledRouter; ``options`` are PooledRouterConfig fields (``pooling``, ``top_k``, ``temperature``)."""
    return PooledRouter(hidden_size, num_experts, PooledRouterConfig(**options))  # type: ignore[arg-type]
