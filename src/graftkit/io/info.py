"""What a checkpoint says about one tensor, and the dtype names of the safetensors format."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

# safetensors dtype string <-> torch dtype (the subset torch can hold)
SAFETENSORS_DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "U16": torch.uint16,
    "U32": torch.uint32,
    "U64": torch.uint64,
    "BOOL": torch.bool,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
}
TORCH_TO_SAFETENSORS: dict[torch.dtype, str] = {v: k for k, v in SAFETENSORS_DTYPES.items()}


def dtype_size(dtype: torch.dtype) -> int:
    """Bytes per element of ``dtype`` (read from the dtype itself; no tensor is built)."""
    return dtype.itemsize


@dataclass(frozen=True)
class TensorInfo:
    """Name, shape and dtype of one tensor, and the file that holds it (None for a planned output)."""

    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype
    file: Path | None = None

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def nbytes(self) -> int:
        return self.numel * dtype_size(self.dtype)
