"""The search state on disk, replaced atomically after every evaluation.

It holds the optimizer (pickled, as it was right after asking for the current
generation), that generation's candidates, and every finished evaluation. A search
killed at any point resumes from it: finished candidates are never evaluated again, and
the unfinished ones of the current generation are evaluated before the optimizer moves on.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graftkit.errors import ConfigError

STATE_FILE = "evolve_state.pkl"


@dataclass
class Evaluation:
    index: int  # position in the search, 0-based
    generation: int
    genes: list[float]
    fitness: float
    seconds: float
    attempts: int = 1


@dataclass
class SearchState:
    fingerprint: str  # the evolve config this state belongs to
    optimizer: Any
    generation: int = 0
    pending: list[list[float]] = field(default_factory=list)  # candidates of the current generation
    pending_start: int = 0  # index of pending[0]
    history: list[Evaluation] = field(default_factory=list)

    @property
    def best(self) -> Evaluation | None:
        return max(self.history, key=lambda e: e.fitness, default=None)

    def done_indices(self) -> set[int]:
        return {e.index for e in self.history}


def save_state(state: SearchState, folder: str | Path) -> Path:
    """Write the state next to its final name, fsync, then rename over it (atomic on POSIX)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / STATE_FILE
    fd, tmp = tempfile.mkstemp(prefix=".evolve_state.", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            pickle.dump(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def load_state(folder: str | Path, fingerprint: str) -> SearchState:
    path = Path(folder) / STATE_FILE
    if not path.is_file():
        raise ConfigError(f"--resume: no search state at {path}", hint="run without --resume to start a new search")
    with path.open("rb") as fh:
        state = pickle.load(fh)  # our own file, written by save_state
    if state.fingerprint != fingerprint:
        raise ConfigError(f"--resume: the state in {path} belongs to a different evolve config",
                          hint="resume with the config that started the search, or use a new output folder")
    return state
