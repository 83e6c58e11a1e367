"""Settings of a hybrid model: which layers get a branch, and what the branch holds."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from graftkit.errors import HybridError
from graftkit.hybrid.memory.config import MemoryConfig
from graftkit.hybrid.ssm.config import SSMConfig


@dataclass
class HybridConfig:
    """``layers``: decoder layer indices that get an SSM branch. ``anchor``: the SSM branch
    is a correction on top of attention (ssm = attn + SSM(h)), so the blend equals the base
    exactly at init for any ``gate_bias``; without it the blend is the literal
    (1 - g) attn + g SSM(h) and equals the base only as far as sigmoid(gate_bias) ~ 0."""

    layers: list[int] = field(default_factory=lambda: [0])
    ssm: SSMConfig = field(default_factory=SSMConfig)
    memory: MemoryConfig | None = None
    gate_bias: float = -2.0
    gate_hidden: int = 32
    gate_per_channel: bool = False
    anchor: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HybridConfig:
        data = dict(data)
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise HybridError(f"unknown hybrid config keys: {', '.join(sorted(unknown))}",
                              hint=f"known keys: {', '.join(sorted(known))}")
        if isinstance(data.get("ssm"), dict):
            data["ssm"] = SSMConfig(**data["ssm"])
        if isinstance(data.get("memory"), dict):
            data["memory"] = MemoryConfig(**data["memory"])
        return cls(**data)
