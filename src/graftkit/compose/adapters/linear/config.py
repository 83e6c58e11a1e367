"""Settings of the linear adapter."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class LinearAdapterConfig:
    """A full affine map between widths; ``bias`` adds the offset term."""

    bias: bool = True
