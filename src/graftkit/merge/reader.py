"""Read input tensors with plain file reads instead of memory maps.

A memory-mapped safetensors file keeps every page it has touched in the process's
resident set until the mapping closes, so a streaming merge over three 2 GB inputs
would "use" 6 GB of RSS although it holds one tensor at a time. For safetensors
shards this reader copies each tensor's bytes straight from the file into a fresh
tensor (positional ``preadv``, no intermediate copy), so only the tensors in flight
count; other formats go through ``Checkpoint.__getitem__``.
"""

from __future__ import annotations

import json
import os
import struct
import threading
from pathlib import Path
from typing import Any

import torch

from graftkit.io.info import SAFETENSORS_DTYPES


class DirectReader:
    """Reads tensors of one checkpoint by offset; thread-safe (one open file per shard, positional reads)."""

    def __init__(self, checkpoint: Any) -> None:
        self.checkpoint = checkpoint
        self._offsets: dict[Path, dict[str, tuple[int, int]]] = {}
        self._files: dict[Path, int] = {}
        self._lock = threading.Lock()

    def _layout(self, path: Path) -> dict[str, tuple[int, int]]:
        with self._lock:
            if path not in self._offsets:
                fd = os.open(path, os.O_RDONLY)
                head = os.pread(fd, 8, 0)
                (n,) = struct.unpack("<Q", head)
                header = json.loads(os.pread(fd, n, 8))
                header.pop("__metadata__", None)
                self._offsets[path] = {k: (8 + n + v["data_offsets"][0], 8 + n + v["data_offsets"][1])
                                       for k, v in header.items()}
                self._files[path] = fd
            return self._offsets[path]

    def read(self, name: str) -> torch.Tensor:
        info = self.checkpoint.info(name)
        return self.read_rows(name, 0, info.shape[0] if info.shape else 1) if info.shape else self._whole(name)

    def _whole(self, name: str) -> torch.Tensor:
        return self.checkpoint[name]

    def read_rows(self, name: str, start: int, stop: int) -> torch.Tensor:
        """Rows ``start:stop`` of tensor ``name`` (the first axis), reading only those bytes."""
        info = self.checkpoint.info(name)
        path = info.file
        if path is None or path.suffix != ".safetensors" or info.dtype not in SAFETENSORS_DTYPES.values():
            return self.checkpoint[name][start:stop]
        first, _ = self._layout(path)[name]
        row_bytes = info.nbytes // max(1, info.shape[0])
        begin, end = first + start * row_bytes, first + stop * row_bytes
        out = torch.empty((stop - start, *info.shape[1:]), dtype=info.dtype)
        if end > begin:
            view = memoryview(out.reshape(-1).view(torch.uint8).numpy())
            fd = self._files[path]
            done = 0
            while done < end - begin:
                got = os.preadv(fd, [view[done:]], begin + done)
                if got <= 0:
                    raise OSError(f"{path}: unexpected end of file reading tensor {name!r}")
                done += got
        return out

    def close(self) -> None:
        with self._lock:
            for fd in self._files.values():
                os.close(fd)
            self._files.clear()
            self._offsets.clear()
