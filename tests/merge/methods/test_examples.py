"""Every method has a commented example config that parses and names valid parameters."""

from __future__ import annotations

import pytest
import yaml

from graftkit.errors import ConfigError
from graftkit.merge.methods import METHODS, get_method
from graftkit.merge.methods.examples import all_examples, example_config


@pytest.mark.parametrize("name", list(METHODS))
def test_example_parses_and_uses_only_known_parameters(name):
    text = example_config(name)
    assert text.startswith(f"# {name}:")
    config = yaml.safe_load(text)
    method = get_method(name)
    assert config["merge_method"] == name
    assert ("base_model" in config) == (method.uses_base and name != "passthrough")
    method.resolve_params(config.get("parameters", {}))
    for model in config["models"]:
        for key in model.get("parameters", {}):
            assert key in method.model_params, (name, key)
    # every parameter line is commented
    for line in text.splitlines():
        if line.startswith("  ") and ":" in line and "model:" not in line and "parameters:" not in line:
            assert "#" in line, line
    # the engine passes the base model too, listed among the models or not (as mergekit does)
    count = len({m["model"] for m in config["models"]} | ({config["base_model"]} if "base_model" in config else set()))
    method.check_inputs(count, 0 if method.uses_base else None)


def test_examples_cover_every_method_and_unknown_names_fail():
    assert set(all_examples()) == set(METHODS)
    with pytest.raises(ConfigError, match="did you mean"):
        example_config("slurp")
