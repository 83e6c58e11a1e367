"""Where the real datasets live: ``$GRAFTKIT_DATA``, else ``../shared/datasets``.

The files are never copied into the project; every loader resolves its folder here
so that one environment variable moves them all.
"""

from __future__ import annotations

import os
from pathlib import Path

from graftkit.errors import DataError

ENV_VAR = "GRAFTKIT_DATA"
_REPO = Path(__file__).resolve().parents[3]


def _candidates() -> list[Path]:
    """The default places, in order: beside the working directory, then beside the repo."""
    return [Path.cwd().parent / "shared" / "datasets", _REPO.parent / "shared" / "datasets"]


def data_root(root: str | Path | None = None) -> Path:
    """The data folder: ``root`` if given, else ``$GRAFTKIT_DATA``, else ``../shared/datasets``."""
    if root is not None:
        path = Path(root).expanduser()
        if not path.is_dir():
            raise DataError(f"data folder {path} does not exist", hint=f"pass an existing folder or set {ENV_VAR}")
        return path
    env = os.environ.get(ENV_VAR)
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            raise DataError(
                f"data folder {path} (from ${ENV_VAR}) does not exist",
                hint=f"point {ENV_VAR} at the folder that holds sst2/, mnist/, ...",
            )
        return path
    for path in _candidates():
        if path.is_dir():
            return path
    tried = " or ".join(str(p) for p in _candidates())
    raise DataError(
        f"no data folder: {tried} does not exist and ${ENV_VAR} is not set",
        hint=f"set {ENV_VAR}=/path/to/datasets, or use the synthetic datasets (synthetic-sentiment, synthetic-topic)",
    )


def dataset_dir(subdir: str, root: str | Path | None = None) -> Path:
    """``<data root>/<subdir>``, checked to exist."""
    base = data_root(root)
    path = base / subdir
    if not path.is_dir():
        raise DataError(
            f"dataset folder {path} does not exist",
            hint=f"the data folder {base} lacks {subdir}/; set {ENV_VAR} to a folder that has it",
        )
    return path


def require_file(path: Path) -> Path:
    """``path`` itself, or a DataError that names it."""
    if not path.is_file():
        raise DataError(f"dataset file {path} does not exist", hint=f"check the data folder or ${ENV_VAR}")
    return path
