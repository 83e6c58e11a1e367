"""Settings of the pooled (one decision per sequence) router."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class PooledRouterConfig:
    """``pooling`` mean|first|last over real tokens; ``top_k`` experts kept (None: all); ``temperature`` of the softmax."""

    pooling: str = "mean"
    top_k: int | None = None
    temperature: float = 1.0
