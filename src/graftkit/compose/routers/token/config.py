"""Settings of the token-level top-k router."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TokenRouterConfig:
    """``top_k`` experts per token (None: dense mixture); ``temperature`` of the softmax."""

    top_k: int | None = 1
    temperature: float = 1.0
