"""Building a linear adapter from its config (the entry the adapter registry calls)."""

from __future__ import annotations

from graftkit.compose.adapters.linear.config import LinearAdapterConfig
from graftkit.compose.adapters.linear.layer import LinearAdapter


def build(in_dim: int, out_dim: int, **options: object) -> LinearAdapter:
    """A LinearAdapter; ``options`` are LinearAdapterConfig fields (``bias``)."""
    return LinearAdapter(in_dim, out_dim, LinearAdapterConfig(**options))  # type: ignore[arg-type]
