"""RegMean searched as in its paper: each model's own calibration data, alpha per layer group, start at a
hand-tuned recipe."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from graftkit.errors import ConfigError
from graftkit.evolve import ResidentMerger, validate_space
from graftkit.evolve.run import evolve, load_evolve_config
from graftkit.io import Checkpoint
from graftkit.merge import merge

from ..merge.helpers import perturbed_family, with_word_tokenizer

WORDS = ["<unk>", "</s>"] + [f"w{i}" for i in range(126)]


def _texts(offset: int) -> list[str]:
    return [" ".join(f"w{(7 * i + j + offset) % 120}" for j in range(12)) for i in range(8)]


@pytest.fixture()
def family(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAFTKIT_CACHE", str(tmp_path / "cache"))
    folders = perturbed_family(tmp_path, "llama", n=2, scale=0.05)
    for folder in folders:
        with_word_tokenizer(folder, WORDS)
    return folders


def _config(base, a, b, **extra) -> dict:
    return {
        "models": [{"model": str(a), "statistics": {"texts": _texts(0), "max_length": 16}},
                   {"model": str(b), "statistics": {"texts": _texts(50), "max_length": 16}}],
        "base_model": str(base), "method": "regmean", "layer_groups": 2, "global_params": ["alpha"],
        "ranges": {"weight": [0, 2], "alpha": [0.5, 1.0]}, "start": {"weight": 1.0, "alpha": 0.95},
        "objective": {"kind": "target", "target": str(base)}, **extra,
    }


def test_candidates_carry_each_models_statistics_and_alpha_per_group(family, tmp_path):
    base, a, b = family
    space = validate_space(load_evolve_config(_config(base, a, b)).space)
    assert space.dim == 2 * 2 + 2  # (2 models x weight + alpha) x 2 layer groups
    x0 = space.start_point()
    np.testing.assert_allclose(x0, [0.5, 0.5, 0.5, 0.5, 0.9, 0.9])
    cfg = space.config(x0)
    assert [m["statistics"]["texts"] for m in cfg["models"]] == [_texts(0), _texts(50)]
    assert cfg["parameters"] == {"alpha": [0.95, 0.95]}
    assert [m["parameters"]["weight"] for m in cfg["models"]] == [[1.0, 1.0], [1.0, 1.0]]
    # the start point is the hand-tuned recipe; resident and graft merge agree on it and on a moved candidate
    hand = {"merge_method": "regmean", "parameters": {"alpha": 0.95}, "dtype": "float32",
            "models": [{k: v for k, v in m.items() if k != "parameters"} for m in cfg["models"]]}
    merge(hand, tmp_path / "hand", check=False, verify=False)
    resident = ResidentMerger(base)
    moved = space.config(np.array([0.2, 0.8, 0.6, 0.3, 0.1, 1.0]))
    assert moved["parameters"] == {"alpha": [0.55, 1.0]}
    for recipe, folder in ((cfg, tmp_path / "hand"), (moved, None)):
        state = resident.apply(recipe).state_dict()
        if folder is None:
            folder = tmp_path / "moved"
            merge(recipe, folder, check=False, verify=False)
        ck = Checkpoint.open(folder)
        for name in ck.names():
            torch.testing.assert_close(state[name], ck[name], rtol=1e-5, atol=1e-6, msg=name)
    name = "model.layers.0.mlp.up_proj.weight"
    assert not torch.allclose(Checkpoint.open(tmp_path / "hand")[name], Checkpoint.open(tmp_path / "moved")[name])


def test_statistics_are_computed_once_per_model(family, monkeypatch):
    import graftkit.merge.data_aware as data_aware

    base, a, b = family
    space = validate_space(load_evolve_config(_config(base, a, b)).space)
    calls = []
    real = data_aware.attach_statistics
    monkeypatch.setattr(data_aware, "attach_statistics", lambda plan, *a: calls.append(1) or real(plan, *a))
    resident = ResidentMerger(base)
    for g in (0.2, 0.5, 0.8):
        resident.apply(space.config(np.full(space.dim, g)))
    assert len(calls) == 1


def test_search_scores_the_start_point_first(family, tmp_path):
    base, a, b = family
    raw = _config(base, a, b, search={"budget": 2, "popsize": 2, "seed": 0, "workers": 0})
    result = evolve(raw, tmp_path / "evo", final_merge=False)
    first = min(result.history, key=lambda e: e.index)
    space = load_evolve_config(raw).space
    np.testing.assert_allclose(first.genes, space.start_point())


@pytest.mark.parametrize("change,match", [
    ({"global_params": ["beta"]}, "not a numeric parameter of regmean"),
    ({"ranges": {"weight": [0, 2]}}, "'alpha' has no range"),
    ({"start": {"alpha": 1.5}}, "outside its range"),
    ({"start": {"density": 0.5}}, "not searched"),
    ({"method": "ties", "global_params": []}, "per-model statistics are for fisher, regmean, regmean_plus"),
    ({"space": "both"}, "need the parameters space"),
])
def test_bad_regmean_spaces_are_config_errors(change, match, tmp_path):
    raw = _config(tmp_path / "base", tmp_path / "a", tmp_path / "b", **change)
    with pytest.raises(ConfigError, match=match):
        load_evolve_config(raw)


def test_models_entry_with_unknown_keys_is_a_config_error(tmp_path):
    raw = _config(tmp_path / "base", tmp_path / "a", tmp_path / "b")
    raw["models"][0]["weight"] = 1.0
    with pytest.raises(ConfigError, match="known keys of a models entry"):
        load_evolve_config(raw)


def test_filters_give_matching_tensors_their_own_genes(family, tmp_path):
    base, a, b = family
    raw = _config(base, a, b, filters={"up_proj": ["alpha", "weight"]})
    space = validate_space(load_evolve_config(raw).space)
    assert space.dim == 2 * 2 + 2 + 1 + 2  # groups as before, then up_proj's alpha and its weight per model
    x0 = space.start_point()
    np.testing.assert_allclose(x0[-3:], [0.9, 0.5, 0.5])  # filter genes start at the start values too
    x = np.array([0.5, 0.5, 0.5, 0.5, 0.9, 0.9, 0.1, 0.25, 1.0])
    cfg = space.config(x)
    assert cfg["parameters"] == {"alpha": [{"filter": "up_proj", "value": 0.55}, {"value": [0.95, 0.95]}]}
    assert [m["parameters"]["weight"] for m in cfg["models"]] == [
        [{"filter": "up_proj", "value": 0.5}, {"value": [1.0, 1.0]}],
        [{"filter": "up_proj", "value": 2.0}, {"value": [1.0, 1.0]}]]
    # graft merge reads the filter lists; the resident merger agrees with it tensor for tensor
    merge(cfg, tmp_path / "filtered", check=False, verify=False)
    merge(space.config(x0), tmp_path / "start", check=False, verify=False)
    state = ResidentMerger(base).apply(cfg).state_dict()
    filtered, start = Checkpoint.open(tmp_path / "filtered"), Checkpoint.open(tmp_path / "start")
    for name in filtered.names():
        torch.testing.assert_close(state[name], filtered[name], rtol=1e-5, atol=1e-6, msg=name)
        if name.endswith("mlp.up_proj.weight"):  # only the filtered tensors moved
            assert not torch.allclose(filtered[name], start[name]), name
        else:
            torch.testing.assert_close(filtered[name], start[name], msg=name)


@pytest.mark.parametrize("filters,match", [
    ({"up_proj": ["density"]}, "does not search"),
    ({"up_proj": []}, "lists no parameters"),
    ({"*": ["alpha"]}, "not a tensor-name substring"),
    (["up_proj"], "must map tensor-name substrings"),
])
def test_bad_filters_are_config_errors(filters, match, tmp_path):
    raw = _config(tmp_path / "base", tmp_path / "a", tmp_path / "b", filters=filters)
    with pytest.raises(ConfigError, match=match):
        load_evolve_config(raw)


def test_regmean_plus_grams_follow_each_candidate(family, tmp_path):
    """RegMean++'s Grams depend on the candidate's merged earlier blocks: the resident merger recomputes them for
    every candidate and agrees with `graft merge` on two different candidates in a row."""
    base, a, b = family
    raw = _config(base, a, b, method="regmean_plus", layer_groups=1, filters={"up_proj": ["alpha"]})
    space = validate_space(load_evolve_config(raw).space)
    assert space.dim == 2 + 1 + 1
    resident = ResidentMerger(base)
    first, second = space.config(space.start_point()), space.config(np.array([0.1, 0.9, 0.2, 0.6]))
    assert second["merge_method"] == "regmean_plus"
    outputs = []
    for k, recipe in enumerate((first, second)):
        state = {n: t.clone() for n, t in resident.apply(recipe).state_dict().items()}
        merge(recipe, tmp_path / f"m{k}", check=False, verify=False)
        ck = Checkpoint.open(tmp_path / f"m{k}")
        for name in ck.names():
            torch.testing.assert_close(state[name], ck[name], rtol=1e-5, atol=1e-6, msg=name)
        outputs.append(ck["model.layers.1.self_attn.q_proj.weight"])
    assert not torch.allclose(outputs[0], outputs[1])


def test_regmean_plus_has_only_the_parameters_space(tmp_path):
    raw = _config(tmp_path / "base", tmp_path / "a", tmp_path / "b", method="regmean_plus", space="both")
    with pytest.raises(ConfigError, match="block by block"):
        load_evolve_config(raw)
