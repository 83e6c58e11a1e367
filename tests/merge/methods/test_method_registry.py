"""The registry and the parameter schema: names, defaults, validation errors."""

from __future__ import annotations

import pytest
import torch

from graftkit.errors import ConfigError
from graftkit.merge.methods import METHODS, get_method, tensor_generator


def test_misspelled_method_suggests_the_right_name():
    with pytest.raises(ConfigError, match="did you mean 'ties'"):
        get_method("tiez")


def test_misspelled_parameter_suggests_the_right_name():
    ties = get_method("ties")
    with pytest.raises(ConfigError, match="did you mean 'lambda'"):
        ties.resolve_params({"lamda": 0.5})
    with pytest.raises(ConfigError, match="did you mean 'density'"):
        ties.resolve_model_params([{}, {"weight": 1.0, "densty": 0.5}], 2, 0)


def test_defaults_match_mergekit():
    ties = get_method("ties")
    assert ties.requires_base
    assert ties.resolve_params({}) == {
        "int8_mask": False, "normalize": True, "rescale": False, "lambda": 1.0,
        "rescale_mode": "l1", "sign_election": "mergekit",
    }
    assert get_method("dare_ties").global_params["rescale"].default is True
    assert get_method("dare_ties").global_params["normalize"].default is False
    assert get_method("della").global_params["normalize"].default is True
    assert get_method("della").model_params["epsilon"].default == 0.15
    assert get_method("breadcrumbs").model_params["gamma"].default == 0.01
    assert get_method("task_arithmetic").global_params["normalize"].default is False
    assert get_method("linear").model_params["weight"].required
    assert get_method("slerp").global_params["t"].required


def test_missing_base_and_wrong_count_are_config_errors():
    x = torch.ones(3)
    with pytest.raises(ConfigError, match="base"):
        get_method("ties").merge([x, x], base_index=None, model_params=[{"weight": 1}, {"weight": 1}])
    with pytest.raises(ConfigError, match="exactly 2"):
        get_method("slerp").merge([x, x, x], base_index=0, params={"t": 0.5})


def test_required_per_model_parameter_is_reported():
    with pytest.raises(ConfigError, match="needs 'weight'"):
        get_method("linear").merge([torch.ones(2), torch.ones(2)], model_params=[{"weight": 1}, {}])


def test_global_weight_broadcasts_to_every_model():
    out = get_method("linear").merge([torch.zeros(2), torch.ones(2)], params={"weight": 1.0})
    assert torch.equal(out, torch.full((2,), 0.5))


def test_bad_type_is_reported():
    with pytest.raises(ConfigError, match="must be a number"):
        get_method("slerp").merge([torch.ones(2), torch.ones(2)], base_index=0, params={"t": "half"})


def test_generator_depends_on_seed_and_name_only():
    a = torch.rand(5, generator=tensor_generator(1, "w"))
    assert torch.equal(a, torch.rand(5, generator=tensor_generator(1, "w")))
    assert not torch.equal(a, torch.rand(5, generator=tensor_generator(2, "w")))
    assert not torch.equal(a, torch.rand(5, generator=tensor_generator(1, "v")))


def test_every_method_has_reference_and_schema():
    for method in METHODS.values():
        assert method.name and method.description
        for spec in {**method.global_params, **method.model_params}.values():
            assert spec.description, (method.name, spec.name)
