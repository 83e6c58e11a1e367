"""The Ray paths: a worker killed mid-evaluation is retried, `graft evolve` on actors, distributed merge == local merge.

One local Ray session (loopback, 2 CPUs, no dashboard) for the whole module; ray.shutdown() after.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from graftkit.io import Checkpoint
from graftkit.merge import merge

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def ray_session(tmp_path_factory):
    root = tmp_path_factory.mktemp("ray_env")
    env = {
        "GRAFTKIT_EVOLVE_CRASH_MARKER": str(root / "crashed"),
        "GRAFTKIT_EVOLVE_CALL_LOG": str(root / "calls.log"),
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    from graftkit.evolve.workers import init_ray

    ray = init_ray(num_cpus=2)
    yield ray, root
    ray.shutdown()
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def test_killed_worker_candidate_is_retried(ray_session, evolve_family, tmp_path):
    from graftkit.evolve.run import evolve

    _, root = ray_session
    base, a, b, _ = evolve_family
    cfg = {"models": [str(a), str(b)], "base_model": str(base), "method": "linear",
           "objective": {"kind": "python", "function": "faulty:crash_on_first_call"},
           "search": {"optimizer": "random", "budget": 3, "popsize": 3, "workers": 1}}
    result = evolve(cfg, tmp_path / "out", final_merge=False)
    assert (root / "crashed").exists()  # a worker really died
    assert sorted(e.index for e in result.history) == [0, 1, 2]
    assert [e.attempts for e in sorted(result.history, key=lambda e: e.index)] == [2, 1, 1]
    assert len((root / "calls.log").read_text().splitlines()) == 3  # each candidate scored exactly once
    assert (tmp_path / "out" / "best_recipe.yaml").is_file()


def test_distributed_merge_equals_local(ray_session, evolve_family, tmp_path):
    from graftkit.evolve.distributed import distributed_merge

    base, a, b, _ = evolve_family
    cfg = {"merge_method": "dare_ties", "base_model": str(base),
           "models": [{"model": str(a), "parameters": {"weight": 0.7, "density": 0.6}},
                      {"model": str(b), "parameters": {"weight": 0.4, "density": 0.5}}]}
    merge(cfg, tmp_path / "local", check=False, seed=3)
    distributed_merge(cfg, tmp_path / "dist", workers=2, chunk_bytes=20_000, seed=3)
    local, dist = Checkpoint.open(tmp_path / "local"), Checkpoint.open(tmp_path / "dist")
    assert local.names() == dist.names()
    for name in local.names():
        assert torch.equal(local[name], dist[name]), name
    assert (tmp_path / "dist" / "config.json").is_file()
