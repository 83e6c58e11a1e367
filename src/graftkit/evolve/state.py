"""The search state on disk (JSON), replaced atomically after every evaluation.

It holds the current generation's candidates and every finished evaluation, never the
optimizer object: a resumed search builds a fresh optimizer with the config's seed and
replays the recorded generations into it (ask, check that it proposes exactly the recorded
candidates, tell their recorded fitness). Both optimizers are deterministic given their
seed, so the replayed one is in the state the killed one was in, and nothing on disk is
unpickled: a state folder from someone else can be resumed safely. A search killed at any
point resumes from it: finished candidates are never evaluated again, and the unfinished
ones of the current generation are evaluated before the optimizer moves on.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from graftkit.errors import ConfigError

STATE_FILE = "evolve_state.json"
PICKLED_STATE_FILE = "evolve_state.pkl"  # written by graftkit before the JSON state; refused, never loaded
_FORMAT = 1


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
    optimizer: Any  # as it was right after asking for the current generation; not saved (replayed on load)
    generation: int = 0
    pending: list[list[float]] = field(default_factory=list)  # candidates of the current generation
    pending_start: int = 0  # index of pending[0]
    history: list[Evaluation] = field(default_factory=list)

    @property
    def best(self) -> Evaluation | None:
        return max(self.history, key=lambda e: e.fitness, default=None)

    def done_indices(self) -> set[int]:
        return {e.index for e in self.history}


def has_state(folder: str | Path) -> bool:
    """Whether ``folder`` holds a search (this format, or the pickle of graftkit before it)."""
    folder = Path(folder)
    return (folder / STATE_FILE).exists() or (folder / PICKLED_STATE_FILE).exists()


def save_state(state: SearchState, folder: str | Path) -> Path:
    """Write the state next to its final name, fsync, then rename over it (atomic on POSIX)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / STATE_FILE
    payload = {"format": _FORMAT, "fingerprint": state.fingerprint, "generation": state.generation,
               "pending": state.pending, "pending_start": state.pending_start,
               "history": [asdict(e) for e in state.history]}
    fd, tmp = tempfile.mkstemp(prefix=".evolve_state.", dir=folder)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def load_state(folder: str | Path, fingerprint: str, make_optimizer: Callable[[], Any] | None = None) -> SearchState:
    """The saved state of ``folder``, its optimizer rebuilt by ``make_optimizer()`` and replayed
    (without ``make_optimizer``, only the record: ``optimizer`` is None)."""
    path = Path(folder) / STATE_FILE
    if not path.is_file():
        if (Path(folder) / PICKLED_STATE_FILE).exists():
            raise ConfigError(f"--resume: {folder} holds a pickled search state from an older graftkit, which is "
                              "never unpickled (it could run code)", hint="start the search again in a new folder")
        raise ConfigError(f"--resume: no search state at {path}", hint="run without --resume to start a new search")
    try:
        raw = json.loads(path.read_text())
        if raw.get("format") != _FORMAT:
            raise ValueError(f"format {raw.get('format')!r}, this graftkit writes {_FORMAT}")
        state = SearchState(fingerprint=raw["fingerprint"], optimizer=None, generation=int(raw["generation"]),
                            pending=[[float(g) for g in x] for x in raw["pending"]],
                            pending_start=int(raw["pending_start"]),
                            history=[Evaluation(**e) for e in raw["history"]])
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"--resume: the search state {path} is not readable ({exc})",
                          hint="start the search again in a new folder") from None
    if state.fingerprint != fingerprint:
        raise ConfigError(f"--resume: the state in {path} belongs to a different evolve config",
                          hint="resume with the config that started the search, or use a new output folder")
    if make_optimizer is not None:
        state.optimizer = _replay(state, make_optimizer(), path)
    return state


def _replay(state: SearchState, optimizer: Any, path: Path) -> Any:
    """Ask and tell ``optimizer`` every recorded generation, checking each proposal against the record."""
    by_generation: dict[int, list[Evaluation]] = {}
    for e in sorted(state.history, key=lambda e: e.index):
        by_generation.setdefault(e.generation, []).append(e)
    for generation in range(1, state.generation + 1):
        asked = optimizer.ask()
        current = generation == state.generation and state.pending
        recorded = state.pending if current else [e.genes for e in by_generation.get(generation, [])]
        if len(recorded) != len(asked) or not np.allclose(np.asarray(recorded), np.asarray(asked), rtol=0, atol=1e-12):
            raise ConfigError(f"--resume: the optimizer does not propose the candidates recorded in {path} "
                              f"(generation {generation})",
                              hint="the state was edited, or written with another version of the optimizer; "
                                   "start the search again in a new folder")
        if not current:
            fitness = [e.fitness for e in by_generation[generation]]
            optimizer.tell([np.asarray(g) for g in recorded], fitness)
    return optimizer
