"""Publishing a model folder (an export or a MoL checkpoint): to the Hugging Face Hub or to a local git repository.

``push(folder, "user/name")`` goes through huggingface_hub's ``HfApi`` (``create_repo`` then
``upload_folder``; ``endpoint`` points it at a private Hub). ``push(folder, "file:///path")``
or an existing local path commits the files into a local git repository (created when
absent), which is how the tests exercise the whole path without a network.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from graftkit.errors import CompositionError

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass
class PushResult:
    target: str
    files: list[str]
    revision: str | None = None  # the commit made (git) or the Hub's commit URL


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and ".git" not in p.parts)


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise CompositionError(f"git {' '.join(args)} failed in {repo}: {done.stderr.strip()}", hint="check the target repository")
    return done.stdout.strip()


def push_local(folder: Path, repo: Path, message: str) -> PushResult:
    """Copy ``folder``'s files into the git repository ``repo`` (initialized when absent) and commit them."""
    repo.mkdir(parents=True, exist_ok=True)
    if not (repo / ".git").exists():
        _git(repo, "init", "-q")
    files = _files(folder)
    for rel in files:
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(folder / rel, repo / rel)
    _git(repo, "add", "--", *files)
    _git(repo, "-c", "user.name=graftkit", "-c", "user.email=graftkit@localhost", "commit", "-q", "--allow-empty", "-m", message)
    return PushResult(target=str(repo), files=files, revision=_git(repo, "rev-parse", "HEAD"))


def push(folder: str | Path, target: str, *, message: str = "Upload with graftkit", private: bool = False,
         token: str | None = None, endpoint: str | None = None) -> PushResult:
    """Publish ``folder``; ``target`` is a Hub repo id (user/name), ``file:///path`` or a local path."""
    folder = Path(folder)
    if not folder.is_dir() or not _files(folder):
        raise CompositionError(f"{folder} is not a folder with files to push", hint="push an export or a `graft fuse train` output")
    if target.startswith("file://"):
        return push_local(folder, Path(target[len("file://"):]), message)
    if target.startswith((".", "/", "~")) or Path(target).exists():
        return push_local(folder, Path(target).expanduser(), message)
    if not _REPO_ID.match(target):
        raise CompositionError(f"{target!r} is neither a Hub repo id (user/name) nor a local path",
                               hint="e.g. `graft push out/fused me/fused-model` or `graft push out/fused file:///srv/models/fused`")
    from huggingface_hub import HfApi

    api = HfApi(endpoint=endpoint, token=token)
    api.create_repo(target, private=private, exist_ok=True, repo_type="model")
    info = api.upload_folder(repo_id=target, folder_path=str(folder), commit_message=message, repo_type="model")
    return PushResult(target=target, files=_files(folder), revision=str(getattr(info, "commit_url", info)))
