"""CMA-ES and random search improve a known objective; a stopped search resumes with no candidate lost or repeated."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from graftkit.errors import ConfigError
from graftkit.evolve.run import evolve
from graftkit.evolve.search import CMAES, RandomSearch
from graftkit.evolve.state import load_state
from graftkit.io import Checkpoint

from .conftest import target_config


@pytest.mark.parametrize("cls", [CMAES, RandomSearch])
def test_optimizer_improves_sphere(cls):
    optimum = np.array([0.2, 0.8, 0.3, 0.6])
    opt = cls(4, popsize=6, seed=0)
    first, best = None, -np.inf
    for _ in range(15):
        xs = opt.ask()
        fs = [-float(((x - optimum) ** 2).sum()) for x in xs]
        first = max(fs) if first is None else first
        best = max(best, *fs)
        opt.tell(xs, fs)
    assert best > first
    assert best > -0.05 if cls is CMAES else best > -0.2


@pytest.mark.parametrize("cls", [CMAES, RandomSearch])
def test_first_candidate_is_the_start_point(cls):
    opt = cls(5, popsize=4, seed=3)
    first = opt.ask()
    assert np.array_equal(first[0], np.full(5, 0.5))
    assert not np.array_equal(first[1], first[0])
    opt.tell(first, [0.0, 1.0, 0.5, 0.2])
    assert not any(np.array_equal(x, np.full(5, 0.5)) for x in opt.ask())


@pytest.mark.parametrize("optimizer", ["cma", "random"])
def test_search_improves_known_merge_objective(evolve_family, tmp_path, optimizer):
    base, a, b, target = evolve_family
    result = evolve(target_config(base, a, b, target, optimizer=optimizer, budget=8), tmp_path / "out")
    fits = [e.fitness for e in sorted(result.history, key=lambda e: e.index)]
    assert len(fits) == 8
    from graftkit.evolve.run import load_evolve_config
    from graftkit.evolve.space import validate_space
    from graftkit.evolve.workers import CandidateEvaluator

    cfg = load_evolve_config(target_config(base, a, b, target))
    space = validate_space(cfg.space)
    centre = CandidateEvaluator(space, cfg.objective, str(base)).evaluate(list(space.centre()))
    assert result.best.fitness > centre  # better than the plain average (weights 0.5 / 0.5)
    # and closer to the known optimum (weights 0.8 / 0.2) than the average is
    assert np.linalg.norm(np.array(result.best.genes) - [0.8, 0.2]) < 0.5 * np.linalg.norm([0.3, 0.3])
    # outputs: a valid merge YAML for the best, a progress table, the plot, the merged model
    recipe = yaml.safe_load((tmp_path / "out" / "best_recipe.yaml").read_text())
    assert recipe == result.best_config
    assert (tmp_path / "out" / "fitness.png").stat().st_size > 1000
    assert len((tmp_path / "out" / "progress.md").read_text().splitlines()) == 2 + 8
    assert len(Checkpoint.open(tmp_path / "out" / "merged").names()) == len(Checkpoint.open(base).names())


def test_killed_search_resumes_without_loss_or_repeat(evolve_family, tmp_path):
    base, a, b, target = evolve_family
    cfg = target_config(base, a, b, target, optimizer="cma", budget=10)
    full = evolve(cfg, tmp_path / "full", final_merge=False)
    out = tmp_path / "resumed"
    evolve(cfg, out, stop_after=5, final_merge=False)  # "killed" in the middle of generation 2
    state = load_state(out, full.history and _fingerprint(cfg))
    assert sorted(e.index for e in state.history) == [0, 1, 2, 3, 4]
    with pytest.raises(ConfigError, match="--resume"):
        evolve(cfg, out)
    evolve(cfg, out, resume=True, stop_after=2, final_merge=False)
    resumed = evolve(cfg, out, resume=True, final_merge=False)
    indices = [e.index for e in resumed.history]
    assert sorted(indices) == list(range(10))  # none lost, none evaluated twice
    # the same candidates and fitness values as the uninterrupted run
    for x, y in zip(sorted(full.history, key=lambda e: e.index), sorted(resumed.history, key=lambda e: e.index)):
        assert x.genes == y.genes and x.fitness == pytest.approx(y.fitness)


def test_resume_refuses_another_config(evolve_family, tmp_path):
    base, a, b, target = evolve_family
    evolve(target_config(base, a, b, target, budget=4), tmp_path / "out", final_merge=False)
    with pytest.raises(ConfigError, match="different evolve config"):
        evolve(target_config(base, a, b, target, budget=4, seed=1), tmp_path / "out", resume=True)


def _fingerprint(cfg: dict) -> str:
    from graftkit.evolve.run import load_evolve_config

    return load_evolve_config(cfg).fingerprint


def test_cli_evolve_and_resume(evolve_family, tmp_path):
    from graftkit.cli.main import main

    base, a, b, target = evolve_family
    cfg = target_config(base, a, b, target, optimizer="random", budget=4)
    path = tmp_path / "evolve.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "out"
    assert main(["evolve", str(path), str(out), "--workers", "0", "--budget", "2", "--no-merge"]) == 0
    assert main(["evolve", str(path), str(out), "--workers", "0"]) == 2  # a search is already there
    assert main(["evolve", str(path), str(out), "--resume", "--workers", "0", "--budget", "4"]) == 0
    state = load_state(out, _fingerprint(cfg))
    assert sorted(e.index for e in state.history) == [0, 1, 2, 3]
    merged = yaml.safe_load((out / "best_recipe.yaml").read_text())
    assert merged["merge_method"] == "task_arithmetic" and (out / "merged" / "config.json").is_file()


def test_state_is_json_and_a_tampered_record_is_refused(evolve_family, tmp_path):
    import json

    base, a, b, target = evolve_family
    cfg = target_config(base, a, b, target, optimizer="cma", budget=10)
    out = tmp_path / "out"
    evolve(cfg, out, stop_after=6, final_merge=False)
    path = out / "evolve_state.json"
    raw = json.loads(path.read_text())  # plain JSON: nothing on disk is unpickled
    assert raw["generation"] == 2 and len(raw["history"]) == 6
    raw["history"][1]["genes"][0] += 0.01  # a candidate the optimizer never proposed
    path.write_text(json.dumps(raw))
    with pytest.raises(ConfigError, match="does not propose the candidates"):
        evolve(cfg, out, resume=True, final_merge=False)


def test_a_pickled_state_is_never_loaded(evolve_family, tmp_path):
    base, a, b, target = evolve_family
    cfg = target_config(base, a, b, target, budget=4)
    out = tmp_path / "old"
    out.mkdir()
    (out / "evolve_state.pkl").write_bytes(b"\x80\x04not a state")
    with pytest.raises(ConfigError, match="never unpickled"):
        evolve(cfg, out, resume=True, final_merge=False)
    with pytest.raises(ConfigError, match="already holds a search"):
        evolve(cfg, out, final_merge=False)
