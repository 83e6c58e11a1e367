"""The config schema and parameter resolution (gradients, filters, precedence), as mergekit reads them."""

from __future__ import annotations

import pytest

from graftkit.merge.config import ConditionalParameter, ModelRef, load_config
from graftkit.merge.parameters import evaluate, is_missing, resolve


def test_model_references():
    ref = ModelRef.model_validate("models/a@v2+adapters/x")
    assert ref.model.path == "models/a" and ref.model.revision == "v2"
    assert ref.lora.path == "adapters/x"
    assert str(ref) == "models/a@v2+adapters/x"
    assert ModelRef.model_validate("./rel/path").model.path == "./rel/path"


def test_gradient_is_piecewise_linear():
    assert evaluate([0.0, 1.0], "x", 0.25) == pytest.approx(0.25)
    assert evaluate([0.0, 0.5, 0.3], "x", 0.75) == pytest.approx(0.4)
    assert evaluate([0.0, 0.5, 0.3], "x", 1.0) == pytest.approx(0.3)
    assert evaluate(["1e-3", "3e-3"], "x", 0.5) == pytest.approx(2e-3)  # YAML reads these as strings
    assert evaluate([True, False], "x", 0.9) is True  # booleans are picked, not interpolated


def test_filter_list_first_match_wins():
    setting = [ConditionalParameter(filter="self_attn", value=0.1), ConditionalParameter(filter="mlp", value=[0.0, 1.0]),
               ConditionalParameter(value=0.5)]
    assert evaluate(setting, "model.layers.0.self_attn.q_proj.weight", 0.0) == 0.1
    assert evaluate(setting, "model.layers.1.mlp.up_proj.weight", 1.0) == 1.0
    assert evaluate(setting, "model.norm.weight", 0.3) == 0.5
    assert evaluate([ConditionalParameter(filter="mlp", value=1)], "model.norm.weight", 0) is None


def test_precedence_most_specific_first():
    source, slice_, module, global_ = {"weight": 0.1}, {"weight": 0.2, "density": 0.3}, None, {"density": 0.9, "lambda": 2}
    scopes = [source, slice_, module, global_]
    assert resolve("weight", scopes, "t", 0) == 0.1
    assert resolve("density", scopes, "t", 0) == 0.3
    assert resolve("lambda", scopes, "t", 0) == 2
    assert is_missing(resolve("epsilon", scopes, "t", 0))


def test_mergekit_yaml_accepted_unchanged():
    config = load_config(
        "slices:\n"
        "  - sources:\n      - model: a\n        layer_range: [0, 32]\n      - model: b\n        layer_range: [0, 32]\n"
        "merge_method: slerp\nbase_model: a\n"
        "parameters:\n  t:\n    - filter: self_attn\n      value: [0, 0.5, 0.3, 0.7, 1]\n"
        "    - filter: mlp\n      value: [1, 0.5, 0.7, 0.3, 0]\n    - value: 0.5\n"
        "dtype: bfloat16\ntokenizer:\n  source: union\n  pad_to_multiple_of: 64\n"
        "  tokens:\n    <|im_start|>:\n      source: b\n    <|im_end|>:\n      source:\n        kind: zero\n"
        "chat_template: chatml\n"
    )
    assert config.tokenizer_choice() == "union"
    assert [str(r) for r in config.referenced_models()] == ["a", "b"]
    assert "merge_method: slerp" in config.to_yaml()
