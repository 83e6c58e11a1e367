"""graft inspect on checkpoints."""

import json

import pytest

from graftkit.cli.main import main
from graftkit.zoo import save_tiny


@pytest.fixture(scope="module")
def llamas(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    return save_tiny("llama", root / "a"), save_tiny("llama", root / "b", seed=2), \
        save_tiny("llama", root / "w", hidden_size=64)


def test_inspect_json_has_signature_parameters_and_genes(llamas, capsys):
    assert main(["inspect", str(llamas[0]), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["signature"].startswith("gk1-") and data["model_type"] == "llama"
    row = next(r for r in data["parameters"] if r["name"] == "model.embed_tokens.weight")
    assert row == {"name": "model.embed_tokens.weight", "id": "P0", "shape": [128, 32], "dtype": "float32"}
    assert len({layer["gene"] for layer in data["layers"]}) == 1
    assert any(g["label"] == "LlamaAttention" and g["count"] == 2 for g in data["genes"])


def test_inspect_text_output(llamas, capsys):
    assert main(["inspect", str(llamas[0])]) == 0
    out = capsys.readouterr().out
    assert "signature" in out and "P0" in out and "LlamaDecoderLayer" in out


def test_inspect_against_reports_the_first_diverging_node(llamas, capsys):
    with pytest.raises(SystemExit) as info:
        main(["inspect", str(llamas[0]), "--against", str(llamas[2])])
    assert info.value.code == 1
    out = capsys.readouterr().out
    assert "first difference at canonical node 0" in out and "model.embed_tokens.weight" in out
    assert main(["inspect", str(llamas[0]), "--against", str(llamas[1])]) == 0
    assert "compute the same graph" in capsys.readouterr().out
