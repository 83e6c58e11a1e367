"""Evaluate candidates on Ray actors, locally on loopback by default; retry a failed worker's candidate.

Each actor holds a resident model (``graftkit.evolve.resident``): inputs are read once
per actor, and each candidate is merged in memory and scored. An actor that dies
mid-evaluation (killed, out of memory, os._exit) is replaced and its candidate
submitted again, up to ``retries`` times.
"""

from __future__ import annotations

import os
import time
from typing import Any, Iterable

import numpy as np

from graftkit.errors import GraftError

LOCAL_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # otherwise Ray binds every interface
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "disabled",
}

class CandidateEvaluator:
    """Space + resident model + objective: genes -> fitness. Runs in-process or inside an actor."""

    def __init__(self, space: Any, objective_spec: Any, reference: str, seed: int = 0) -> None:
        from graftkit.evolve.objective import Objective
        from graftkit.evolve.resident import ResidentMerger

        self.space = space
        self.resident = ResidentMerger(reference, config_dir=space.config_dir, seed=seed)
        self.objective = Objective(objective_spec, tokenizer_path=reference)

    def evaluate(self, genes: list[float]) -> float:
        model = self.resident.apply(self.space.config(np.asarray(genes)))
        return self.objective(model)

def init_ray(address: str | None = None, num_cpus: int | None = None) -> Any:
    """``ray.init`` on loopback (a local head) or joining ``address``; returns the ray module."""
    for key, value in LOCAL_ENV.items():
        os.environ.setdefault(key, value)
    import ray

    if ray.is_initialized():
        return ray
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(num_cpus=num_cpus or 2, include_dashboard=False, _node_ip_address="127.0.0.1",
                 log_to_driver=False, configure_logging=False)
    return ray

class RayPool:
    """``workers`` actors; ``run(candidates)`` yields (index, fitness, seconds, attempts) as they finish."""

    def __init__(self, make_args: tuple, workers: int, *, retries: int = 3, actor_options: dict | None = None) -> None:
        import ray

        self.ray = ray
        self.make_args = make_args
        self.retries = retries
        self.options = {"num_cpus": 1, "max_restarts": 0, "max_task_retries": 0, **(actor_options or {})}
        self.remote_cls = ray.remote(CandidateEvaluator)
        self.actors = [self._new_actor() for _ in range(workers)]

    def _new_actor(self) -> Any:
        return self.remote_cls.options(**self.options).remote(*self.make_args)

    def run(self, candidates: Iterable[tuple[int, list[float]]]) -> Iterable[tuple[int, float, float, int]]:
        from ray.exceptions import RayActorError, WorkerCrashedError

        queue = list(candidates)
        attempts: dict[int, int] = {}
        genes_of = dict(queue)
        idle = list(range(len(self.actors)))
        running: dict[Any, tuple[int, int, float]] = {}  # ref -> (index, actor slot, start)
        while queue or running:
            while queue and idle:
                index, genes = queue.pop(0)
                slot = idle.pop()
                attempts[index] = attempts.get(index, 0) + 1
                ref = self.actors[slot].evaluate.remote(genes)
                running[ref] = (index, slot, time.perf_counter())
            done, _ = self.ray.wait(list(running), num_returns=1)
            ref = done[0]
            index, slot, start = running.pop(ref)
            try:
                fitness = self.ray.get(ref)
            except (RayActorError, WorkerCrashedError) as exc:
                self.actors[slot] = self._new_actor()  # the dead worker is replaced
                idle.append(slot)
                if attempts[index] > self.retries:
                    raise GraftError(f"candidate {index} failed on {attempts[index]} workers: {exc}",
                                     hint="see the Ray worker logs; the search state is saved, fix and --resume") from None
                queue.insert(0, (index, genes_of[index]))
                continue
            idle.append(slot)
            yield index, float(fitness), time.perf_counter() - start, attempts[index]

    def close(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)
        self.actors = []

class LocalPool:
    """The same interface, evaluated in this process (``--workers 0``): no Ray at all."""

    def __init__(self, make_args: tuple) -> None:
        self.evaluator = CandidateEvaluator(*make_args)

    def run(self, candidates: Iterable[tuple[int, list[float]]]) -> Iterable[tuple[int, float, float, int]]:
        for index, genes in candidates:
            start = time.perf_counter()
            yield index, self.evaluator.evaluate(genes), time.perf_counter() - start, 1

    def close(self) -> None:
        return None

def make_pool(make_args: tuple, workers: int, **kwargs: Any) -> Any:
    return LocalPool(make_args) if workers == 0 else RayPool(make_args, workers, **kwargs)
