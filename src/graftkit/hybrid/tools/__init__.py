"""MCP tool use: a safe calculator server, the tool-call syntax, a stdio client, generation with tools."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "calculate": "graftkit.hybrid.tools.calculator",
    "CalculatorError": "graftkit.hybrid.tools.calculator",
    "MCPServerProcess": "graftkit.hybrid.tools.client",
    "ToolError": "graftkit.hybrid.tools.client",
    "CALCULATOR_COMMAND": "graftkit.hybrid.tools.client",
    "find_call": "graftkit.hybrid.tools.syntax",
    "generate_with_tools": "graftkit.hybrid.tools.generate",
    "generate_with_tools_batch": "graftkit.hybrid.tools.batch",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'graftkit.hybrid.tools' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
