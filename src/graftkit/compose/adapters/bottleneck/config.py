"""Settings of the bottleneck adapter."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class BottleneckAdapterConfig:
    """A width change (when needed) plus a residual down-projection to ``rank``, ``activation``, up-projection."""

    rank: int = 16
    activation: str = "gelu"
