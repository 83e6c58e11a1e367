"""Statistics of one model on one calibration set: saved, cached, looked up by weight name.

A statistics file is a safetensors file; its metadata says the kind (``fisher``
or ``gram``) and, for Fisher, the model's global Fisher L2 norm. The cache folder
is ``$GRAFTKIT_CACHE/statistics`` (default ``~/.cache/graftkit/statistics``), one
file per key = sha256(model path + file sizes and times, calibration key, settings).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from graftkit.errors import CheckpointError

VERSION = 1


def cache_root() -> Path:
    root = os.environ.get("GRAFTKIT_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "graftkit") / "statistics"


def model_fingerprint(model_path: str | Path) -> str:
    """The resolved path plus the size and mtime of every weight file: a retrained model gets a new key."""
    path = Path(model_path).resolve()
    parts = [str(path)]
    files = sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")) if path.is_dir() else [path]
    for f in files:
        if f.exists():
            stat = f.stat()
            parts.append(f"{f.name}:{stat.st_size}:{int(stat.st_mtime)}")
    return "|".join(parts)


def cache_key(kind: str, model_path: str | Path, calibration_key: str, settings: dict[str, Any]) -> str:
    blob = json.dumps(
        {"kind": kind, "model": model_fingerprint(model_path), "data": calibration_key, "settings": settings, "v": VERSION},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def match_up_to_prefix(key: str, candidates: Collection[str]) -> str | None:
    """``key`` itself, or the one candidate that equals it up to a leading prefix
    (``bert.encoder...`` vs ``encoder...``); None when there is none or several."""
    if key in candidates:
        return key
    matches = [c for c in candidates if c.endswith("." + key) or key.endswith("." + c)]
    return matches[0] if len(matches) == 1 else None


@dataclass
class ModelStatistics:
    """One model's statistics: ``kind`` "fisher" (keyed by parameter name) or
    "gram" (keyed by Linear module path)."""

    kind: str
    tensors: dict[str, torch.Tensor]
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def fisher_norm(self) -> float:
        """Global L2 norm of the Fisher over every tensor (the paper's normalizer)."""
        if "fisher_norm" not in self.metadata:
            total = sum(float(t.double().square().sum()) for t in self.tensors.values())
            self.metadata["fisher_norm"] = repr(total**0.5)
        return float(self.metadata["fisher_norm"])

    def _find(self, key: str) -> str | None:
        return match_up_to_prefix(key, self.tensors)

    def lookup(self, tensor_name: str) -> dict[str, Any]:
        """The extra per-model inputs for the weight ``tensor_name``, to merge into
        ``model_params[i]``: ``{"fisher": T, "fisher_norm": x}`` or ``{"gram": G}``;
        ``{}`` when this tensor has no statistics (the method then averages)."""
        if self.kind == "fisher":
            key = self._find(tensor_name)
            return {} if key is None else {"fisher": self.tensors[key], "fisher_norm": self.fisher_norm}
        if self.kind == "gram":
            if not tensor_name.endswith(".weight"):
                return {}
            key = self._find(tensor_name[: -len(".weight")])
            return {} if key is None else {"gram": self.tensors[key]}
        raise CheckpointError(f"unknown statistics kind {self.kind!r}")

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.kind == "fisher":
            _ = self.fisher_norm
        tmp = path.with_suffix(".tmp")
        save_file({k: v.contiguous() for k, v in self.tensors.items()}, str(tmp), metadata={"kind": self.kind, **self.metadata})
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> ModelStatistics:
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"statistics file {path} not found")
        with safe_open(str(path), framework="pt") as f:
            metadata = dict(f.metadata() or {})
        kind = metadata.pop("kind", None)
        if kind not in ("fisher", "gram"):
            raise CheckpointError(f"{path} is not a graftkit statistics file (no kind in its metadata)")
        return cls(kind=kind, tensors=load_file(str(path)), metadata=metadata)
