"""check_models (cached per checkpoint) and its use by graft merge."""

import shutil
import time

import pytest
import torch
from safetensors.torch import load_file, save_file

from graftkit.errors import ValidationError
from graftkit.genome.compat import check_models
from graftkit.merge import merge, validate
from graftkit.zoo import save_tiny, tiny


@pytest.fixture(scope="module")
def berts(tmp_path_factory):
    root = tmp_path_factory.mktemp("compat")
    a = save_tiny("bert", root / "a", seed=0)
    wide = save_tiny("bert", root / "wide", intermediate_size=128)
    # the same architecture saved with a "bert." prefix on every tensor (as a task model would)
    prefixed = root / "prefixed"
    prefixed.mkdir()
    state = tiny("bert", seed=1).state_dict()
    save_file({f"bert.{k}": v.contiguous() for k, v in state.items()}, prefixed / "model.safetensors")
    shutil.copy(a / "config.json", prefixed / "config.json")
    return {"a": a, "wide": wide, "prefixed": prefixed, "state_b": state}


def test_renamed_checkpoint_is_compatible_and_mapped(berts):
    report = check_models([berts["a"], berts["prefixed"]])
    assert report.compatible, report.describe()
    assert report.param_maps[1]["bert.encoder.layer.0.attention.self.query.weight"] == \
        "encoder.layer.0.attention.self.query.weight"
    assert "mapped by canonical id" in report.describe()


def test_signatures_are_cached_per_checkpoint(berts):
    check_models([berts["a"]])
    start = time.perf_counter()
    report = check_models([berts["a"]])
    assert report.genomes[0].cached and time.perf_counter() - start < 2.0


def test_different_widths_are_reported_with_names(berts):
    report = check_models([berts["a"], berts["wide"]])
    assert not report.compatible
    text = report.describe()
    assert "intermediate.dense" in text and "(64) vs (128)" in text


def test_graft_merge_maps_renamed_tensors_by_canonical_id(berts, tmp_path):
    config = {"merge_method": "linear", "models": [{"model": str(berts["a"]), "parameters": {"weight": 0.5}},
                                                   {"model": str(berts["prefixed"]), "parameters": {"weight": 0.5}}]}
    merge(config, tmp_path / "out", check=False)
    out, a = load_file(tmp_path / "out" / "model.safetensors"), load_file(berts["a"] / "model.safetensors")
    assert out.keys() == a.keys()
    for name in a:
        assert torch.allclose(out[name], (a[name] + berts["state_b"][name]) / 2), name


def test_graft_merge_refuses_other_graphs_unless_told(berts):
    config = {"merge_method": "linear", "models": [{"model": str(berts["a"]), "parameters": {"weight": 0.5}},
                                                   {"model": str(berts["wide"]), "parameters": {"weight": 0.5}}]}
    with pytest.raises(ValidationError, match="first difference at canonical node"):
        validate(config)
    with pytest.raises(ValidationError) as info:
        validate(config, verify=False)
    assert "first difference" not in str(info.value)
