"""Safetensors headers, read and written by hand so that listing a file never touches tensor data.

Format: 8 bytes little-endian header length N, N bytes of JSON
(``{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}``),
then the tensor bytes; offsets count from the end of the header.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import torch

from graftkit.errors import CorruptFileError, UnsupportedFormatError
from graftkit.io.info import SAFETENSORS_DTYPES, TORCH_TO_SAFETENSORS, TensorInfo

_MAX_HEADER = 100 * 1024 * 1024  # the safetensors library's own limit
_ALIGN = 8


def read_header(path: Path) -> tuple[dict[str, TensorInfo], dict[str, str]]:
    """Parse and check the header of ``path``: tensor infos in file order, and ``__metadata__``.

    Checks what a truncated or damaged file breaks: the header length, the JSON, and
    that every tensor's byte range matches its shape and lies inside the file.
    """
    size = path.stat().st_size
    fix = "the file is damaged or was cut off while copying or downloading; fetch it again"
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise CorruptFileError(f"{path} is truncated: {size} bytes, too short for a safetensors header", hint=fix)
        (n,) = struct.unpack("<Q", head)
        if n > _MAX_HEADER or 8 + n > size:
            raise CorruptFileError(
                f"{path} is truncated or not a safetensors file: header says {n} bytes of JSON, "
                f"the file has {size} bytes",
                hint=fix,
            )
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CorruptFileError(f"{path} has a malformed safetensors header: {e}", hint=fix) from None
    if not isinstance(header, dict):
        raise CorruptFileError(f"{path} has a malformed safetensors header: not a JSON object", hint=fix)
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict):
        raise CorruptFileError(f"{path} has a malformed safetensors header: __metadata__ is not an object", hint=fix)
    data_size = size - 8 - n
    entries: list[tuple[int, TensorInfo]] = []
    for name, entry in header.items():
        try:
            dtype_name, shape, (begin, end) = entry["dtype"], entry["shape"], entry["data_offsets"]
            shape = tuple(int(d) for d in shape)
        except (KeyError, TypeError, ValueError):
            raise CorruptFileError(f"{path}: malformed header entry for tensor {name!r}", hint=fix) from None
        if dtype_name not in SAFETENSORS_DTYPES:
            raise UnsupportedFormatError(
                f"{path}: tensor {name!r} has dtype {dtype_name}, which torch cannot hold",
                hint=f"supported: {', '.join(SAFETENSORS_DTYPES)}",
            )
        info = TensorInfo(name, shape, SAFETENSORS_DTYPES[dtype_name], path)
        if end - begin != info.nbytes or begin < 0:
            raise CorruptFileError(
                f"{path}: tensor {name!r} has {end - begin} bytes for shape {list(shape)} {dtype_name} "
                f"({info.nbytes} expected)",
                hint=fix,
            )
        if end > data_size:
            raise CorruptFileError(
                f"{path} is truncated: tensor {name!r} ends at byte {8 + n + end}, the file has {size} bytes",
                hint=fix,
            )
        entries.append((begin, info))
    entries.sort(key=lambda e: e[0])
    return {info.name: info for _, info in entries}, {str(k): str(v) for k, v in metadata.items()}


def build_header(infos: list[TensorInfo], metadata: dict[str, str] | None = None) -> tuple[bytes, dict[str, int]]:
    """The encoded header (length prefix included) for tensors stored in ``infos`` order.

    Returns the header bytes and each tensor's absolute byte offset in the file.
    """
    header: dict[str, Any] = {"__metadata__": dict(metadata or {"format": "pt"})}
    offset = 0
    relative: dict[str, int] = {}
    for info in infos:
        if info.dtype not in TORCH_TO_SAFETENSORS:
            raise UnsupportedFormatError(f"tensor {info.name!r} has dtype {info.dtype}, which safetensors cannot store")
        header[info.name] = {
            "dtype": TORCH_TO_SAFETENSORS[info.dtype],
            "shape": list(info.shape),
            "data_offsets": [offset, offset + info.nbytes],
        }
        relative[info.name] = offset
        offset += info.nbytes
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % _ALIGN)
    start = 8 + len(raw)
    return struct.pack("<Q", len(raw)) + raw, {k: start + v for k, v in relative.items()}


def tensor_bytes(tensor: torch.Tensor) -> memoryview:
    """The raw little-endian bytes of ``tensor`` (made contiguous, moved to CPU), without a second copy."""
    t = tensor.detach()
    if t.device.type != "cpu":
        t = t.cpu()
    t = t.contiguous().reshape(-1).view(torch.uint8)
    return memoryview(t.numpy()).cast("B")


class SafetensorsShard:
    """One ``.safetensors`` file: header parsed on open, tensors read through one memory-mapped handle."""

    format = "safetensors"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.infos, self.metadata = read_header(path)
        self._handle: Any = None

    def read(self, name: str) -> torch.Tensor:
        from safetensors import SafetensorError, safe_open

        try:
            if self._handle is None:
                self._handle = safe_open(str(self.path), framework="pt")
            return self._handle.get_tensor(name)
        except SafetensorError as e:
            raise CorruptFileError(f"{self.path}: cannot read tensor {name!r}: {e}") from None

    def close(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None and hasattr(handle, "__exit__"):
            handle.__exit__(None, None, None)
