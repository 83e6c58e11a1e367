"""Turn the model references of a config into local folders.

mergekit takes any path that is not absolute-and-present for a hub name, so
``./experts/a`` fails after the weights are written. Here a reference is, in order:
a path relative to the working directory, a path relative to the config file's folder,
or a name from the graftkit zoo. Revisions (``@rev``) only make sense for hub models,
which this offline toolkit does not download, so a revision on a local path is an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from graftkit.merge.config import ModelPath, ModelRef


@dataclass(frozen=True)
class ResolvedRef:
    """A config reference with the folders it points at (``None`` where it cannot be found)."""

    ref: ModelRef
    path: Path | None
    lora_path: Path | None
    problem: str | None = None

    @property
    def label(self) -> str:
        return str(self.ref)


def _resolve_path(mp: ModelPath, config_dir: Path | None) -> tuple[Path | None, str | None]:
    candidates = [Path(mp.path).expanduser()]
    if config_dir is not None and not Path(mp.path).is_absolute():
        candidates.append(config_dir / mp.path)
    for cand in candidates:
        if cand.exists():
            if mp.revision:
                return None, (
                    f"{mp}: a revision (@{mp.revision}) was given for the local path {cand}; "
                    "remove '@...' (revisions apply to hub downloads, which graftkit does not do)"
                )
            return cand.resolve(), None
    zoo_path = _zoo_path(mp.path)
    if zoo_path is not None:
        return zoo_path, None
    tried = ", ".join(str(c.absolute()) for c in candidates)
    return None, f"model {mp} not found (looked at {tried}; not a graftkit zoo name either)"


def _zoo_path(name: str) -> Path | None:
    """The zoo folder of ``name`` when it is a zoo model (materialized on first use)."""
    try:
        from graftkit import zoo
    except ImportError:
        return None
    if not hasattr(zoo, "get") or not hasattr(zoo, "list_models"):
        return None
    names = set()
    for entry in zoo.list_models():
        names.add(entry.name)
        names.update(getattr(entry, "aliases", ()) or ())
    if name not in names:
        return None
    return Path(zoo.get(name))


def resolve_ref(ref: ModelRef, config_dir: Path | None = None) -> ResolvedRef:
    """Find the folders of one reference; a problem message instead of an exception."""
    path, problem = _resolve_path(ref.model, config_dir)
    lora_path = None
    if ref.lora is not None:
        lora_path, lora_problem = _resolve_path(ref.lora, config_dir)
        problem = problem or (lora_problem and f"LoRA adapter of {ref}: {lora_problem}")
    return ResolvedRef(ref=ref, path=path, lora_path=lora_path, problem=problem)
