"""graftkit: combine neural networks (merge, align, fuse, transfer and graft).

The public API is importable from here; each name is loaded on first use, so
``import graftkit`` stays cheap (no torch import until a name needs it).
"""

from __future__ import annotations

import importlib
from typing import Any

from graftkit.errors import GraftError

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "Checkpoint": "graftkit.io",
    "CheckpointWriter": "graftkit.io",
    "atomic_directory": "graftkit.io",
    "load_dataset": "graftkit.data",
    "list_datasets": "graftkit.data",
    "finetune": "graftkit.data.finetune",
    "merge": "graftkit.merge",
    "validate": "graftkit.merge",
    "trace": "graftkit.genome",
    "param_map": "graftkit.genome",
    "capture": "graftkit.similarity",
    "linear_cka": "graftkit.similarity",
    "spec_for": "graftkit.align",
    "weight_matching": "graftkit.align",
    "activation_matching": "graftkit.align",
    "MoLRuntime": "graftkit.compose",
}
_SUBPACKAGES = ("io", "zoo", "data", "merge", "genome", "similarity", "align", "compose", "transfer", "hybrid",
                "evolve")

__all__ = ["GraftError", "__version__", *_EXPORTS, *_SUBPACKAGES]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    if name in _SUBPACKAGES:
        return importlib.import_module(f"graftkit.{name}")
    raise AttributeError(f"module 'graftkit' has no attribute {name!r}")
