"""Settings of a memory bank."""

from __future__ import annotations

import math
from dataclasses import dataclass

from graftkit.errors import HybridError


@dataclass
class MemoryConfig:
    """``slots`` learned key/value pairs; ``product_keys`` uses two sub-key tables of
    sqrt(slots) each (Lample et al. 2019) and reads only the ``top_k`` best slots."""

    slots: int = 256
    key_dim: int = 64
    product_keys: bool = False
    top_k: int = 8

    def validate(self) -> None:
        if self.slots < 1 or self.key_dim < 2:
            raise HybridError(f"memory needs slots >= 1 and key_dim >= 2, got {self.slots}, {self.key_dim}")
        if self.product_keys:
            root = math.isqrt(self.slots)
            if root * root != self.slots:
                raise HybridError(f"product-key memory needs a square number of slots, got {self.slots}",
                                  hint=f"use {root * root} or {(root + 1) ** 2}")
            if self.key_dim % 2:
                raise HybridError(f"product-key memory needs an even key_dim, got {self.key_dim}")
            if not 1 <= self.top_k <= self.slots:
                raise HybridError(f"memory top_k must be in 1..{self.slots}, got {self.top_k}")
