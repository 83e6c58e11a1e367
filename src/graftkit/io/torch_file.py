"""PyTorch pickle checkpoints (``pytorch_model.bin``, ``.pt``), read only through ``weights_only=True``."""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import torch

from graftkit.errors import CorruptFileError, UnsafeFileError, UnsupportedFormatError
from graftkit.io.info import TensorInfo

# keys under which training scripts commonly nest the state dict
_NESTED_KEYS = ("state_dict", "model_state_dict", "model", "module")


def _load(path: Path) -> Any:
    """``torch.load`` with ``weights_only`` and ``mmap`` (legacy non-zip files cannot be mapped: read whole)."""
    try:
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as e:
            if "mmap" not in str(e):
                raise
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"GLOBAL (\S+)", str(e))
        what = f" (it needs {found.group(1)})" if found else ""
        raise UnsafeFileError(
            f"{path} contains arbitrary Python objects, not only tensors, so it cannot be loaded safely{what}",
            hint="convert it to safetensors from a trusted environment, e.g. "
            "safetensors.torch.save_file(torch.load(path, weights_only=False), 'model.safetensors'), "
            "and use that file",
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise CorruptFileError(
            f"{path} is truncated or not a PyTorch checkpoint: {str(e).splitlines()[0] if str(e) else type(e).__name__}",
            hint="the file is damaged or was cut off while copying or downloading; fetch it again",
        ) from None


def _state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, dict):
        tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
        if tensors:
            return tensors
        for key in _NESTED_KEYS:
            if isinstance(obj.get(key), dict):
                nested = {k: v for k, v in obj[key].items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
                if nested:
                    return nested
    raise UnsupportedFormatError(
        f"{path} holds no dictionary of named tensors (found {type(obj).__name__})",
        hint="save the model's state_dict() (torch.save(model.state_dict(), path)) or convert it to safetensors",
    )


class TorchShard:
    """One pickle checkpoint, loaded on first use with its storages memory-mapped."""

    format = "bin"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._tensors: dict[str, torch.Tensor] | None = None
        self._infos: dict[str, TensorInfo] | None = None

    def _load(self) -> dict[str, torch.Tensor]:
        if self._tensors is None:
            self._tensors = _state_dict(_load(self.path), self.path)
        return self._tensors

    @property
    def infos(self) -> dict[str, TensorInfo]:
        if self._infos is None:
            self._infos = {k: TensorInfo(k, tuple(v.shape), v.dtype, self.path) for k, v in self._load().items()}
        return self._infos

    def read(self, name: str) -> torch.Tensor:
        return self._load()[name]

    def close(self) -> None:
        self._tensors = None
