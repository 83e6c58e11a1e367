"""GGUF files (llama.cpp), dequantized to torch tensors on read.

The header is parsed here (``gguf.GGUFReader`` decodes every vocabulary string into numpy
objects and takes seconds on a 50k-token model; listing needs only the tensor table).
The data stays memory-mapped; ``gguf.quants.dequantize`` decodes block quantizations.
GGUF lists dimensions innermost first: torch shapes are the reverse. Tensor names stay
GGUF names (``blk.0.attn_q.weight``); mapping them to HF names is the zoo's job.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from graftkit.errors import CorruptFileError, UnsupportedFormatError
from graftkit.io.info import TensorInfo

_FETCH_AGAIN = "the file is damaged or was cut off while copying or downloading; fetch it again"
_MAGIC = b"GGUF"
_DEFAULT_ALIGNMENT = 32
# GGUF metadata value types -> struct format (8 = string, 9 = array)
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
# GGML types stored as plain numbers: read as they are
_PLAIN = {
    "F32": (torch.float32, np.float32),
    "F16": (torch.float16, np.float16),
    "BF16": (torch.bfloat16, np.int16),  # bits reinterpreted by torch
    "F64": (torch.float64, np.float64),
    "I8": (torch.int8, np.int8),
    "I16": (torch.int16, np.int16),
    "I32": (torch.int32, np.int32),
    "I64": (torch.int64, np.int64),
}


def supported_types() -> tuple[str, ...]:
    """GGML types graftkit reads: plain numbers, and every block quantization gguf can dequantize."""
    from gguf.quants import _type_traits

    return tuple(_PLAIN) + tuple(sorted(q.name for q in _type_traits if q.name not in _PLAIN))


@dataclass(frozen=True)
class _Array:
    """A metadata array, kept as its length only (vocabularies are large and not needed to list tensors)."""

    length: int


class _Cursor:
    """Sequential little-endian reads over the mapped header."""

    def __init__(self, buf: mmap.mmap, path: Path) -> None:
        self.buf, self.pos, self.path = buf, 0, path

    def take(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.buf):
            raise CorruptFileError(f"{self.path} is truncated: its GGUF header ends early (at byte {self.pos})",
                                   hint=_FETCH_AGAIN)
        (value,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += size
        return value

    def string(self) -> str:
        n = self.take("<Q")
        if self.pos + n > len(self.buf):
            raise CorruptFileError(f"{self.path} is truncated: its GGUF header ends early (at byte {self.pos})",
                                   hint=_FETCH_AGAIN)
        raw = self.buf[self.pos:self.pos + n]
        self.pos += n
        return raw.decode("utf-8", errors="replace")

    def value(self, kind: int) -> Any:
        if kind in _SCALARS:
            return self.take(_SCALARS[kind])
        if kind == 8:
            return self.string()
        if kind == 9:
            item, count = self.take("<I"), self.take("<Q")
            if item in _SCALARS:  # fixed-size items: skip in one step
                self.pos += struct.calcsize(_SCALARS[item]) * count
            else:
                for _ in range(count):
                    self.value(item)
            return _Array(count)
        raise CorruptFileError(f"{self.path}: unknown GGUF metadata type {kind} at byte {self.pos}", hint=_FETCH_AGAIN)


class GGUFShard:
    """One ``.gguf`` file: tensor table parsed on open, each tensor decoded from the mapped data on read."""

    format = "gguf"

    def __init__(self, path: Path) -> None:
        from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

        self.path = path
        size = path.stat().st_size
        if size < 24:
            raise CorruptFileError(f"{path} is truncated: {size} bytes, too short for a GGUF header", hint=_FETCH_AGAIN)
        with open(path, "rb") as f:
            self._map: mmap.mmap | None = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            cur = _Cursor(self._map, path)
            if self._map[:4] != _MAGIC:
                raise CorruptFileError(f"{path} is not a GGUF file (it does not start with 'GGUF')")
            cur.pos = 4
            version = cur.take("<I")
            if version not in (2, 3):
                raise UnsupportedFormatError(f"{path} is GGUF version {version}; graftkit reads versions 2 and 3",
                                             hint="convert it with a current llama.cpp")
            n_tensors, n_fields = cur.take("<Q"), cur.take("<Q")
            self.metadata: dict[str, Any] = {}
            for _ in range(n_fields):
                key = cur.string()
                self.metadata[key] = cur.value(cur.take("<I"))
            table = []
            for _ in range(n_tensors):
                name = cur.string()
                dims = [cur.take("<Q") for _ in range(cur.take("<I"))]
                table.append((name, dims, cur.take("<I"), cur.take("<Q")))
            alignment = self.metadata.get("general.alignment", _DEFAULT_ALIGNMENT)
            if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
                raise CorruptFileError(f"{path}: general.alignment {alignment!r} is not a power of two",
                                       hint=_FETCH_AGAIN)
            data_start = cur.pos + (-cur.pos % alignment)
            supported = supported_types()
            self.infos: dict[str, TensorInfo] = {}
            self._spans: dict[str, tuple[Any, int, int]] = {}
            for name, dims, type_id, offset in table:
                try:
                    qtype = GGMLQuantizationType(type_id)
                except ValueError:
                    raise UnsupportedFormatError(f"{path}: tensor {name!r} has unknown GGML type {type_id}",
                                                 hint=f"supported types: {', '.join(supported)}") from None
                if qtype.name not in supported:
                    raise UnsupportedFormatError(
                        f"{path}: tensor {name!r} is stored as GGUF type {qtype.name}, which graftkit cannot dequantize",
                        hint=f"supported types: {', '.join(supported)}; re-quantize the model to one of them "
                        "(for example with llama.cpp's llama-quantize to Q8_0) or use its safetensors original",
                    )
                shape = tuple(int(d) for d in reversed(dims))
                block, type_size = GGML_QUANT_SIZES[qtype]
                numel = int(np.prod(shape, dtype=np.int64)) if shape else 1
                begin = data_start + offset
                end = begin + numel // block * type_size
                if numel % block or end > size:
                    raise CorruptFileError(
                        f"{path} is truncated: tensor {name!r} ends at byte {end}, the file has {size} bytes"
                        if end > size else f"{path}: tensor {name!r} of shape {list(shape)} does not fill whole "
                        f"{qtype.name} blocks of {block}", hint=_FETCH_AGAIN)
                dtype = _PLAIN[qtype.name][0] if qtype.name in _PLAIN else torch.float32
                self.infos[name] = TensorInfo(name, shape, dtype, path)
                self._spans[name] = (qtype, begin, end)
        except BaseException:
            self.close()
            raise

    def read(self, name: str) -> torch.Tensor:
        from gguf.quants import dequantize, quant_shape_to_byte_shape

        qtype, begin, end = self._spans[name]
        shape = self.infos[name].shape
        raw = np.frombuffer(self._map, dtype=np.uint8, count=end - begin, offset=begin)
        if qtype.name in _PLAIN:
            torch_dtype, np_dtype = _PLAIN[qtype.name]
            values = torch.from_numpy(raw.view(np_dtype).copy())
            return (values.view(torch_dtype) if torch_dtype == torch.bfloat16 else values).reshape(shape)
        blocks = raw.reshape(quant_shape_to_byte_shape(shape, qtype) if shape else (-1,))
        return torch.from_numpy(np.ascontiguousarray(dequantize(blocks, qtype), dtype=np.float32)).reshape(shape)

    def field(self, key: str) -> Any:
        """The value of metadata ``key`` (number or string), or None (arrays: use ``field_length``)."""
        value = self.metadata.get(key)
        return None if isinstance(value, _Array) else value

    def field_length(self, key: str) -> int | None:
        """The number of items of array field ``key``."""
        value = self.metadata.get(key)
        return value.length if isinstance(value, _Array) else None

    def close(self) -> None:
        mapped, self._map = getattr(self, "_map", None), None
        if mapped is not None:
            try:
                mapped.close()
            except BufferError:  # a numpy view still points into it; the mapping ends with that view
                pass
