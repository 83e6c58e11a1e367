"""Optimizers over genes in [0, 1]: CMA-ES (the ``cma`` package) and a random-search baseline.

Both use ask/tell by generation and are deterministic given their seed, so a killed search
is resumed by replaying its recorded generations into a fresh optimizer (``state.py``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from graftkit.errors import ConfigError


class RandomSearch:
    """Uniform samples in the unit cube; the first candidate is the centre (the plain average)."""

    def __init__(self, dim: int, *, popsize: int = 4, seed: int = 0, x0: np.ndarray | None = None) -> None:
        self.dim = dim
        self.popsize = popsize
        self.rng = np.random.default_rng(seed)
        self.x0 = np.full(dim, 0.5) if x0 is None else np.asarray(x0, dtype=float)
        self.generation = 0

    def ask(self) -> list[np.ndarray]:
        xs = [self.rng.random(self.dim) for _ in range(self.popsize)]
        if self.generation == 0:
            xs[0] = self.x0.copy()
        self.generation += 1
        return xs

    def tell(self, xs: list[np.ndarray], fitness: list[float]) -> None:
        return None


class CMAES:
    """CMA-ES maximizing fitness (cma minimizes, so it is told the negated values), bounded to [0, 1].

    The start point itself is the first candidate (injected into the first generation), so
    with a small budget and a noisy fitness the search is never left without having scored
    the recipe it started from.
    """

    def __init__(self, dim: int, *, popsize: int = 4, seed: int = 0, sigma: float = 0.25,
                 x0: np.ndarray | None = None) -> None:
        import cma

        if dim < 2:
            raise ConfigError(f"CMA-ES needs at least 2 genes, the space has {dim}",
                              hint="use optimizer: random, or more layer groups")
        opts: dict[str, Any] = {"bounds": [0.0, 1.0], "popsize": popsize, "seed": seed + 1, "verbose": -9}
        start = np.full(dim, 0.5) if x0 is None else np.asarray(x0, dtype=float)
        self.es = cma.CMAEvolutionStrategy(list(start), sigma, opts)
        self.es.inject([start], force=True)
        self.generation = 0

    def ask(self) -> list[np.ndarray]:
        self.generation += 1
        return [np.asarray(x, dtype=float) for x in self.es.ask()]  # bounded by cma; told back unchanged

    def tell(self, xs: list[np.ndarray], fitness: list[float]) -> None:
        self.es.tell([list(x) for x in xs], [-f for f in fitness])


def make_optimizer(name: str, dim: int, *, popsize: int = 4, seed: int = 0, sigma: float = 0.25,
                   x0: np.ndarray | None = None) -> Any:
    """``x0``: the start point (scored first); the centre of the cube when None."""
    if name == "cma":
        return CMAES(dim, popsize=popsize, seed=seed, sigma=sigma, x0=x0)
    if name == "random":
        return RandomSearch(dim, popsize=popsize, seed=seed, x0=x0)
    raise ConfigError(f"optimizer {name!r} is unknown", hint="use cma or random")
