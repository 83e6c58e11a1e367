"""Settings of one SSM branch."""

from __future__ import annotations

from dataclasses import dataclass

from graftkit.errors import HybridError

KINDS = ("selective", "s4d")


@dataclass
class SSMConfig:
    """``kind``: "selective" (Mamba-style: step, B and C depend on the input) or "s4d"
    (S4D-Real: diagonal, time-invariant step, B and C). ``scan``: sequential | parallel | chunked."""

    kind: str = "selective"
    d_state: int = 16
    expand: int = 1
    d_conv: int = 4
    dt_rank: int = 0  # 0 means ceil(d_model / 16)
    scan: str = "chunked"
    chunk: int = 0  # chunked scan: 0 means sqrt(length)

    def validate(self) -> None:
        from graftkit.hybrid.ssm.scan import SCANS

        if self.kind not in KINDS:
            raise HybridError(f"unknown ssm kind {self.kind!r}", hint=f"use one of {', '.join(KINDS)}")
        if self.scan not in SCANS:
            raise HybridError(f"unknown scan {self.scan!r}", hint=f"use one of {', '.join(SCANS)}")
        if self.chunk < 0:
            raise HybridError(f"ssm chunk must be >= 0 (0: sqrt of the length), got {self.chunk}")
        for name in ("d_state", "expand", "d_conv"):
            if getattr(self, name) < 1:
                raise HybridError(f"ssm {name} must be >= 1, got {getattr(self, name)}")
