"""The weaker fallback for models that cannot be traced: a signature of module types and
parameter shapes in registration order. It cannot see how modules are wired or which
functions ``forward`` applies (two activations in plain code look the same), so it is
labelled ``structural`` everywhere it is shown."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

import torch


@dataclass
class StructuralSignature:
    signature: str
    entries: list[tuple[str, list[tuple[tuple[int, ...], str]]]]
    strength: str = "structural (weaker: module types and parameter shapes only, not the wiring)"


def structural_genome(model: torch.nn.Module) -> StructuralSignature:
    """Module classes and their own parameter shapes/dtypes, in registration order, no names."""
    entries = []
    for module in model.modules():
        own = [(tuple(p.shape), str(p.dtype).replace("torch.", "")) for p in module.parameters(recurse=False)]
        extra = module.extra_repr() if type(module).__module__.startswith("torch.nn") else ""
        entries.append((f"{type(module).__name__}({extra})", own))
    digest = hashlib.sha256(repr(entries).encode()).digest()
    return StructuralSignature("gks1-" + base64.urlsafe_b64encode(digest).decode().rstrip("="), entries)
