"""GGUF files (llama.cpp), dequantized to torch tensors on read with the ``gguf`` package.

GGUF lists dimensions innermost first; torch shapes are the reverse. Tensor names stay
GGUF names (``blk.0.attn_q.weight``); mapping them to HF names is the zoo's job.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from graftkit.errors import CorruptFileError, UnsupportedFormatError
from graftkit.io.info import TensorInfo

# GGML types stored as plain numbers: read as they are
_PLAIN = {
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "F64": torch.float64,
    "I8": torch.int8,
    "I16": torch.int16,
    "I32": torch.int32,
    "I64": torch.int64,
}
# block quantizations decoded with gguf.quants.dequantize (to float32); each checked in tests/io
QUANTIZED = ("Q8_0", "Q4_0", "Q4_1", "Q4_K", "Q5_K", "Q6_K")
SUPPORTED_TYPES = tuple(_PLAIN) + QUANTIZED


class GGUFShard:
    """One ``.gguf`` file: tensor table parsed on open (the data stays memory-mapped), decoded per tensor."""

    format = "gguf"

    def __init__(self, path: Path) -> None:
        from gguf import GGUFReader

        self.path = path
        try:
            self._reader: Any = GGUFReader(path)
        except Exception as e:  # the reader signals a bad file with ValueError, IndexError, struct errors...
            raise CorruptFileError(
                f"{path} is truncated or not a GGUF file: {e}",
                hint="the file is damaged or was cut off while copying or downloading; fetch it again",
            ) from None
        self._tensors = {t.name: t for t in self._reader.tensors}
        self.infos: dict[str, TensorInfo] = {}
        for t in self._reader.tensors:
            type_name = t.tensor_type.name
            if type_name not in SUPPORTED_TYPES:
                raise UnsupportedFormatError(
                    f"{path}: tensor {t.name!r} is stored as GGUF type {type_name}, which graftkit cannot dequantize",
                    hint=f"supported types: {', '.join(SUPPORTED_TYPES)}; re-quantize the model to one of them "
                    "(for example with llama.cpp's llama-quantize to Q8_0) or use its safetensors original",
                )
            shape = tuple(int(d) for d in reversed(t.shape.tolist()))
            self.infos[t.name] = TensorInfo(t.name, shape, _PLAIN.get(type_name, torch.float32), path)

    def read(self, name: str) -> torch.Tensor:
        from gguf.quants import dequantize

        t = self._tensors[name]
        info = self.infos[name]
        type_name = t.tensor_type.name
        if type_name == "BF16":
            bits = np.array(t.data, copy=True).view(np.int16)
            return torch.from_numpy(bits).view(torch.bfloat16).reshape(info.shape)
        if type_name in _PLAIN:
            return torch.from_numpy(np.array(t.data, copy=True)).reshape(info.shape)
        return torch.from_numpy(np.ascontiguousarray(dequantize(t.data, t.tensor_type))).reshape(info.shape)

    def field(self, key: str) -> Any:
        """The value of metadata ``key`` (a number, string or list), or None."""
        f = self._reader.get_field(key)
        if f is None:
            return None
        try:
            return f.contents()
        except Exception:  # a field of a type the reader cannot decode: treat as absent
            return None

    def field_length(self, key: str) -> int | None:
        """The number of items of array field ``key`` without decoding them (vocabularies are large)."""
        f = self._reader.get_field(key)
        return None if f is None else len(f.data)

    def close(self) -> None:
        self._tensors = {}
        self._reader = None
