"""Write a folder completely or not at all.

Everything that graftkit writes as a folder (merged models, zoo entries, adapters)
goes through ``atomic_directory``: work happens in a hidden temporary folder beside
the target, and only a complete result is renamed into place. An interrupted run
leaves the target as it was (absent, or the previous complete version).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from graftkit.errors import CheckpointError


@contextmanager
def atomic_directory(target: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder that becomes ``target`` when the block ends without error.

    With ``overwrite`` an existing ``target`` is replaced only after the new folder is
    complete (it is moved aside, the new one renamed in, then the old one removed).
    """
    target = Path(target).absolute()
    if target.exists() and not overwrite:
        raise CheckpointError(
            f"output folder {target} already exists", hint="choose another path or pass overwrite"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if target.exists():
        old = target.parent / f".{target.name}.old-{os.getpid()}"
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
