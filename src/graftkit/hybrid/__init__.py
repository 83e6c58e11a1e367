"""Hybrid models: gated SSM branches and memory banks grafted onto a frozen decoder, MCP tool use, monitoring.

Names are imported lazily, so that ``python -m graftkit.hybrid.tools.server`` (started once
per MCP session) does not pay for importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "HybridConfig": "graftkit.hybrid.config",
    "Gate": "graftkit.hybrid.gate",
    "HybridAttention": "graftkit.hybrid.layer",
    "HybridBranch": "graftkit.hybrid.layer",
    "MemoryBank": "graftkit.hybrid.memory",
    "MemoryConfig": "graftkit.hybrid.memory",
    "SSMConfig": "graftkit.hybrid.ssm",
    "build_ssm": "graftkit.hybrid.ssm",
    "scan_chunked": "graftkit.hybrid.ssm",
    "scan_parallel": "graftkit.hybrid.ssm",
    "scan_sequential": "graftkit.hybrid.ssm",
    "HybridModel": "graftkit.hybrid.wrapper",
    "load_base": "graftkit.hybrid.wrapper",
    "train_hybrid": "graftkit.hybrid.trainer",
    "TrainSettings": "graftkit.hybrid.trainer",
    "generate_with_tools": "graftkit.hybrid.tools",
    "MCPServerProcess": "graftkit.hybrid.tools",
    "calculate": "graftkit.hybrid.tools",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'graftkit.hybrid' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
