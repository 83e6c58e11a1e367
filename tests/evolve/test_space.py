"""Search spaces -> valid merge configs; bad spaces fail before any worker starts; resident == graft merge."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from graftkit.errors import ConfigError, GraftError
from graftkit.evolve import ResidentMerger, SearchSpace, validate_space
from graftkit.evolve.objective import ObjectiveSpec
from graftkit.evolve.run import evolve
from graftkit.io import Checkpoint
from graftkit.merge import merge

from .conftest import target_config

CASES = [
    ("parameters", "linear", False),
    ("parameters", "linear", True),
    ("both", "linear", True),
    ("parameters", "task_arithmetic", True),
    ("parameters", "ties", True),
    ("parameters", "dare_ties", True),
    ("parameters", "slerp", True),
    ("dataflow", "linear", False),
    ("dataflow", "linear", True),
    ("both", "ties", True),
    ("both", "slerp", True),
]


@pytest.mark.parametrize("kind,method,with_base", CASES)
def test_resident_merge_equals_graft_merge(evolve_family, tmp_path, kind, method, with_base):
    base, a, b, _ = evolve_family
    models = [str(a)] if method == "slerp" else [str(a), str(b)]
    space = validate_space(SearchSpace(models=models, method=method, kind=kind, layer_groups=2,
                                       base_model=str(base) if with_base else None))
    x = np.random.default_rng(len(kind) + len(method)).random(space.dim)
    cfg = space.config(x)
    model = ResidentMerger(base).apply(cfg)
    merge(cfg, tmp_path / "out", check=False, verify=False)
    ck = Checkpoint.open(tmp_path / "out")
    state = model.state_dict()
    assert set(ck.names()) <= set(state)
    for name in ck.names():
        assert torch.equal(ck[name], state[name]), name
    if kind == "dataflow" and with_base:  # the centre keeps layer order; a hop is scaled
        layers = [s["sources"][0]["layer_range"][0] for s in space.config(space.centre())["slices"]]
        assert layers == list(range(space.num_layers))


def test_resident_model_is_reset_between_candidates(evolve_family):
    """A second candidate gives the same tensors as that candidate alone (nothing leaks from the first)."""
    base, a, b, _ = evolve_family
    space = validate_space(SearchSpace(models=[str(a), str(b)], method="ties", base_model=str(base), layer_groups=2))
    one = ResidentMerger(base)
    one.apply(space.config(np.zeros(space.dim)))
    first = {k: v.clone() for k, v in one.apply(space.config(np.full(space.dim, 0.7))).state_dict().items()}
    fresh = ResidentMerger(base).apply(space.config(np.full(space.dim, 0.7))).state_dict()
    assert all(torch.equal(first[k], fresh[k]) for k in fresh)


def test_dataflow_hop_scales_layer(evolve_family):
    base, a, b, _ = evolve_family
    space = validate_space(SearchSpace(models=[str(a), str(b)], kind="dataflow"))
    x = space.centre()
    per = len(space.layer_models) + 2
    x[per + 1] = 1.0  # slot 1 picks model b (slot 0 picks a): a hop
    x[per + 3] = 1.0  # hop scale at the top of its range
    cfg = space.config(x)
    assert cfg["slices"][1]["sources"][0]["model"] == str(b)
    assert cfg["slices"][1]["sources"][0]["parameters"] == {"scale": 1.5}
    model = ResidentMerger(a).apply(cfg)
    name = "model.layers.1.mlp.up_proj.weight"
    assert torch.allclose(model.state_dict()[name], 1.5 * Checkpoint.open(b)[name])


def test_missing_model_fails_before_any_worker(evolve_family, tmp_path):
    import ray

    base, a, b, target = evolve_family
    cfg = target_config(base, a, tmp_path / "nope", target, workers=2)
    with pytest.raises(GraftError, match="nope"):
        evolve(cfg, tmp_path / "out")
    assert not ray.is_initialized()
    assert not (tmp_path / "out").exists()


def test_missing_layers_fail_before_any_worker(evolve_family, tmp_path):
    import ray

    base, a, b, target = evolve_family
    cfg = {**target_config(base, a, b, target, workers=2), "space": "dataflow", "slots": 99}
    with pytest.raises(GraftError, match="slots=99"):
        evolve(cfg, tmp_path / "out")
    cfg = {**target_config(base, a, b, target, workers=2), "layer_groups": 5}
    with pytest.raises(GraftError, match="layer_groups=5"):
        evolve(cfg, tmp_path / "out")
    assert not ray.is_initialized()


def test_unknown_method_and_keys(evolve_family):
    base, a, b, _ = evolve_family
    with pytest.raises(ConfigError, match="model_stock"):
        SearchSpace(models=[str(a)], method="model_stock")
    with pytest.raises(ConfigError, match="slerp interpolates exactly two"):
        SearchSpace(models=[str(a), str(b)], method="slerp", base_model=str(base))
    from graftkit.evolve.run import load_evolve_config

    with pytest.raises(ConfigError, match="unknown evolve config key"):
        load_evolve_config({"models": [str(a)], "objectiv": {}})


def test_test_split_refused_unless_forced():
    with pytest.raises(ConfigError, match="test split"):
        ObjectiveSpec(kind="accuracy", tasks=[{"dataset": "sst2", "split": "test"}])
    spec = ObjectiveSpec(kind="accuracy", tasks=[{"dataset": "sst2", "split": "test"}], force_test=True)
    assert spec.tasks[0].split == "test"
    assert ObjectiveSpec(kind="accuracy", tasks=[{"dataset": "sst2"}]).tasks[0].split == "validation"
