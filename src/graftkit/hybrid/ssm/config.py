"""Settings of one SSM branch."""

from __future__ import annotations

from dataclasses import dataclass

from graftkit.errors import HybridError

KINDS = ("selective", "ssd", "s4d")


@dataclass
class SSMConfig:
    """``kind``: "selective" (Mamba-style: step, B and C depend on the input, one decay per
    channel and state), "ssd" (Mamba-2 style: the same, but one decay per head of ``head_dim``
    channels, which makes the chunked scan a few matmuls) or "s4d" (S4D-Real: diagonal,
    time-invariant step, B and C). ``scan``: sequential | parallel | chunked."""

    kind: str = "ssd"
    d_state: int = 16
    expand: int = 1
    d_conv: int = 4
    dt_rank: int = 0  # 0 means ceil(d_model / 16)
    scan: str = "chunked"
    chunk: int = 0  # chunked scan: 0 means sqrt(length) (ssd: 32 steps)
    head_dim: int = 64  # ssd only: channels per head (one decay per head)

    def validate(self) -> None:
        from graftkit.hybrid.ssm.scan import SCANS

        if self.kind not in KINDS:
            raise HybridError(f"unknown ssm kind {self.kind!r}", hint=f"use one of {', '.join(KINDS)}")
        if self.scan not in SCANS:
            raise HybridError(f"unknown scan {self.scan!r}", hint=f"use one of {', '.join(SCANS)}")
        if self.chunk < 0:
            raise HybridError(f"ssm chunk must be >= 0 (0: sqrt of the length), got {self.chunk}")
        for name in ("d_state", "expand", "d_conv", "head_dim"):
            if getattr(self, name) < 1:
                raise HybridError(f"ssm {name} must be >= 1, got {getattr(self, name)}")
