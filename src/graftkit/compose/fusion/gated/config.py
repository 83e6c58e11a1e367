"""Settings of the gated projection fusion unit."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class GatedProjectionConfig:
    """``per_channel`` gives every anchor channel its own gate (else one scalar gate)."""

    per_channel: bool = True
