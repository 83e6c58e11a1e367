"""graft transplant: blocks of several models into one HF folder, verified by genes."""

import pytest
import torch
import yaml
from transformers import AutoModelForCausalLM

from graftkit.cli.main import main
from graftkit.errors import ValidationError
from graftkit.genome.transplant import transplant
from graftkit.zoo import save_tiny


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("transplant")
    return {
        "root": root,
        "a": save_tiny("llama", root / "a", seed=0),
        "b": save_tiny("llama", root / "b", seed=1),
        "c": save_tiny("llama", root / "c", intermediate_size=128),
    }


def _spec(root, name, body):
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def test_layers_from_two_models_and_the_head_of_one(folders, tmp_path):
    root = folders["root"]
    spec = _spec(root, "mix", {"models": {"A": "a", "B": "b"}, "base": "A", "head": "B",
                               "layers": [{"model": "A", "range": [0, 1]}, {"model": "B", "range": [1, 2]}]})
    transplant(spec, tmp_path / "out")
    out, info = AutoModelForCausalLM.from_pretrained(tmp_path / "out", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    a = AutoModelForCausalLM.from_pretrained(folders["a"]).state_dict()
    b = AutoModelForCausalLM.from_pretrained(folders["b"]).state_dict()
    got = out.state_dict()
    for name in ("model.layers.0.self_attn.q_proj.weight", "model.embed_tokens.weight"):
        assert torch.equal(got[name], a[name])
    for name in ("model.layers.1.mlp.up_proj.weight", "lm_head.weight", "model.norm.weight"):
        assert torch.equal(got[name], b[name])


def test_identity_transplant_reproduces_the_model(folders, tmp_path):
    spec = _spec(folders["root"], "same", {"models": {"A": "a"}, "layers": [{"model": "A", "range": [0, 2]}]})
    transplant(spec, tmp_path / "out")
    ids = torch.randint(0, 128, (2, 6))
    want = AutoModelForCausalLM.from_pretrained(folders["a"])(ids).logits
    assert torch.equal(AutoModelForCausalLM.from_pretrained(tmp_path / "out")(ids).logits, want)


def test_a_layer_with_another_gene_is_refused_before_writing(folders, tmp_path):
    spec = _spec(folders["root"], "bad", {"models": {"A": "a", "C": "c"},
                                          "layers": [{"model": "A", "range": [0, 1]}, {"model": "C", "range": [1, 2]}]})
    with pytest.raises(ValidationError, match=r"output layer 1 <- C layer 1 \(model.layers.1, LlamaDecoderLayer"):
        transplant(spec, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert main(["transplant", str(spec), str(tmp_path / "out2")]) == 2
    assert not (tmp_path / "out2").exists()


def test_bad_specs_list_every_problem(folders, tmp_path):
    spec = _spec(folders["root"], "typo", {"models": {"A": "a"}, "base": "Z", "layers": [{"model": "A", "range": [3, 1]}]})
    with pytest.raises(ValidationError) as info:
        transplant(spec, tmp_path / "out")
    assert len(info.value.problems) == 2
    far = _spec(folders["root"], "far", {"models": {"A": "a"}, "layers": [{"model": "A", "range": [0, 5]}]})
    with pytest.raises(ValidationError, match="A has 2 layers"):
        transplant(far, tmp_path / "out")


def test_encoder_of_one_expert_with_the_head_of_another(tmp_path, capsys):
    from transformers import AutoModelForSequenceClassification as Classifier

    a = save_tiny("bert", tmp_path / "a", head="sequence-classification", seed=0)
    b = save_tiny("bert", tmp_path / "b", head="sequence-classification", seed=1)
    spec = _spec(tmp_path, "experts", {"models": {"A": "a", "B": "b"}, "base": "A", "head": "B",
                                       "layers": [{"model": "A", "range": [0, 2]}]})
    assert main(["transplant", str(spec), str(tmp_path / "dry"), "--dry-run"]) == 0
    assert "layer   1 <- A layer 1" in capsys.readouterr().out and not (tmp_path / "dry").exists()
    assert main(["transplant", str(spec), str(tmp_path / "out")]) == 0
    out, info = Classifier.from_pretrained(tmp_path / "out", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    got, sa, sb = out.state_dict(), Classifier.from_pretrained(a).state_dict(), Classifier.from_pretrained(b).state_dict()
    for name in ("classifier.weight", "bert.pooler.dense.weight"):
        assert torch.equal(got[name], sb[name])
    for name in ("bert.encoder.layer.1.output.dense.weight", "bert.embeddings.word_embeddings.weight"):
        assert torch.equal(got[name], sa[name])
