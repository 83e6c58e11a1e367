"""``zoo.json``: what a materialized folder was built from and the sha256 of every file in it.

The cheap check (every ``get``) compares file names and sizes with the manifest; the full
check (``verify=True``) hashes every file again.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graftkit.zoo.packages import installed_version, sha256_file
from graftkit.zoo.registry import ZooEntry

MANIFEST = "zoo.json"
FORMAT = 1


@dataclass
class Check:
    """The outcome of checking a folder against its manifest; ``problems`` is empty when it passed."""

    folder: Path
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)


def write_manifest(entry: ZooEntry, folder: Path, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Hash every file of ``folder`` and write ``zoo.json`` beside them."""
    files = {}
    for path in _files(folder):
        rel = path.relative_to(folder).as_posix()
        big = path.stat().st_size > (64 << 20)
        files[rel] = {
            "size": path.stat().st_size,
            "sha256": sha256_file(path, f"hash {rel}" if big else None),
        }
    manifest = {
        "format": FORMAT,
        "name": entry.name,
        "model_type": entry.model_type,
        "architecture": entry.architecture,
        "dtype": entry.dtype,
        "sources": [
            {"package": p.name, "version": installed_version(p.name) or p.version} for p in entry.packages
        ],
        "source_sha256": {s.path: s.sha256 for s in entry.sources},
        "files": files,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **(extra or {}),
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The manifest of ``folder``, or None when it is absent or unreadable."""
    try:
        data = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == FORMAT else None


def check_folder(entry: ZooEntry, folder: Path, full: bool = False) -> Check:
    """Compare ``folder`` with its manifest: names and sizes always, sha256 with ``full``."""
    if not folder.is_dir():
        return Check(folder, [f"{folder} does not exist"])
    manifest = read_manifest(folder)
    if manifest is None:
        return Check(folder, [f"{folder / MANIFEST} is missing or unreadable"])
    problems = []
    if manifest.get("name") != entry.name:
        problems.append(f"{folder / MANIFEST} describes {manifest.get('name')!r}, not {entry.name!r}")
    if manifest.get("source_sha256") != {s.path: s.sha256 for s in entry.sources}:
        problems.append(f"{folder} was built from other source files than this graftkit pins")
    recorded: dict[str, dict[str, Any]] = manifest.get("files", {})
    present = {p.relative_to(folder).as_posix(): p for p in _files(folder)}
    for rel in sorted(set(recorded) - set(present)):
        problems.append(f"{folder / rel} is missing")
    for rel in sorted(set(present) - set(recorded)):
        problems.append(f"{folder / rel} is not in the manifest")
    for rel in sorted(set(recorded) & set(present)):
        path, want = present[rel], recorded[rel]
        size = path.stat().st_size
        if size != want.get("size"):
            problems.append(f"{path} has {size} bytes, the manifest says {want.get('size')}")
        elif full and sha256_file(path, f"verify {rel}" if size > (64 << 20) else None) != want.get("sha256"):
            problems.append(f"{path} has a different sha256 than the manifest records (corrupted)")
    return Check(folder, problems)
