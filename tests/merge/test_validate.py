"""Validation finds every problem in one pass, from headers only (no tensor is read)."""

from __future__ import annotations

import pytest

from graftkit.errors import ValidationError
from graftkit.merge import validate
from graftkit.merge.config import load_config

from .helpers import perturbed_family


@pytest.fixture
def no_tensor_reads(monkeypatch):
    from graftkit.io import Checkpoint

    def refuse(self, name):
        raise AssertionError(f"validation read tensor {name}")

    monkeypatch.setattr(Checkpoint, "__getitem__", refuse)


def problems_of(text: str) -> list[str]:
    with pytest.raises(ValidationError) as info:
        validate(text)
    return info.value.problems


def test_many_problems_reported_together(llama_family, tmp_path, no_tensor_reads):
    b, f1, f2, _ = llama_family
    text = (
        "merge_method: ties\n"
        "models:\n"
        f"  - model: {f1}\n    parameters: {{weight: 0.5, desnity: 0.5}}\n"
        f"  - model: {f2}\n    parameters: {{weight: 0.5}}\n"
        f"  - model: {tmp_path / 'nowhere'}\n    parameters: {{weight: 0.5}}\n"
        "parameters: {lamda: 1.0}\n"
    )
    found = "\n".join(problems_of(text))
    assert "'desnity'" in found and "did you mean 'density'" in found
    assert "'lamda'" in found and "did you mean 'lambda'" in found
    assert "nowhere" in found and "not found" in found


def test_missing_base_and_bad_ranges_and_unequal_slices(llama_family, no_tensor_reads):
    b, f1, f2, _ = llama_family
    text = (
        "merge_method: ties\n"
        "slices:\n"
        f"  - sources:\n      - model: {f1}\n        layer_range: [0, 5]\n"
        f"      - model: {f2}\n        layer_range: [0, 2]\n"
        f"  - sources:\n      - model: {f1}\n        layer_range: [0, 1]\n"
        f"      - model: {f2}\n        layer_range: [0, 2]\n"
        "parameters: {weight: 0.5}\n"
    )
    found = "\n".join(problems_of(text))
    assert "needs a base model" in found
    assert "layer_range [0, 5] is out of bounds" in found and "2 layers" in found
    assert "unequal lengths [1, 2]" in found


def test_unknown_method_and_unknown_key(llama_family):
    b, f1, _, _ = llama_family
    found = "\n".join(problems_of(f"merge_method: tie\nbase_modle: {b}\nmodels:\n  - model: {f1}\n"))
    assert "base_modle" in found and "did you mean 'base_model'" in found
    found = "\n".join(problems_of(f"merge_method: tie\nmodels:\n  - model: {f1}\n"))
    assert "unknown merge method 'tie'" in found and "did you mean 'ties'" in found


def test_missing_required_parameter(llama_family, no_tensor_reads):
    b, f1, f2, _ = llama_family
    found = "\n".join(problems_of(f"merge_method: linear\nmodels:\n  - model: {f1}\n  - model: {f2}\n"))
    assert "needs 'weight'" in found


def test_shape_and_architecture_mismatch(llama_family, tmp_path, no_tensor_reads):
    b = llama_family[0]
    wide = perturbed_family(tmp_path, "llama", n=0, hidden_size=48)[0]
    found = "\n".join(problems_of(
        f"merge_method: linear\nmodels:\n  - model: {b}\n    parameters: {{weight: 1}}\n"
        f"  - model: {wide}\n    parameters: {{weight: 1}}\n"))
    assert "hidden sizes differ" in found
    narrow_mlp = perturbed_family(tmp_path / "m", "llama", n=0, intermediate_size=48)[0]
    found = "\n".join(problems_of(
        f"merge_method: linear\nmodels:\n  - model: {b}\n    parameters: {{weight: 1}}\n"
        f"  - model: {narrow_mlp}\n    parameters: {{weight: 1}}\n"))
    assert "shape mismatch for tensor model.layers.0.mlp.down_proj.weight" in found


def test_schema_errors_are_listed():
    with pytest.raises(ValidationError) as info:
        load_config("merge_method: linear\nmodels:\n  - model: a\nslices:\n  - sources: []\n")
    assert any("exactly one of 'models', 'slices' or 'modules'" in p for p in info.value.problems)


def test_valid_config_plans_every_tensor(llama_family, no_tensor_reads):
    b, f1, f2, _ = llama_family
    plan = validate(f"merge_method: ties\nbase_model: {b}\nmodels:\n  - model: {f1}\n    parameters: {{weight: 1}}\n"
                    f"  - model: {f2}\n    parameters: {{weight: 1}}\n")
    from graftkit.io import Checkpoint

    assert len(plan.tasks) == len(Checkpoint.open(b).names())
    assert plan.tasks[0].base_index == 2  # the base is appended after the models, as in mergekit
