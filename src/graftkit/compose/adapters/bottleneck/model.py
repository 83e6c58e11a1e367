"""Building a bottleneck adapter from its config (the entry the adapter registry calls)."""

from __future__ import annotations

from graftkit.compose.adapters.bottleneck.config import BottleneckAdapterConfig
from graftkit.compose.adapters.bottleneck.layer import BottleneckAdapter


def build(in_dim: int, out_dim: int, **options: object) -> BottleneckAdapter:
    """A BottleneckAdapter; ``options`` are BottleneckAdapterConfig fields (``rank``, ``activation``)."""
    return BottleneckAdapter(in_dim, out_dim, BottleneckAdapterConfig(**options))  # type: ignore[arg-type]
