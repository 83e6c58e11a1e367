from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from graftkit import zoo
from graftkit.cli.main import main
from graftkit.errors import MissingPathError, ShapeMismatchError
from graftkit.similarity import linear_cka
from graftkit.similarity.matrix import diagonal_identification, layer_similarity, similarity_matrix
from graftkit.similarity.metrics import METRICS

from .helpers import SENTENCES, tiny_text_model, tokenizer


def _layers(n, widths, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, 4))
    return {f"l{i}": torch.from_numpy(base @ rng.normal(size=(4, w)) + rng.normal(size=(n, w)) * (i + 1) * 0.3)
            for i, w in enumerate(widths)}


@pytest.mark.parametrize("n, widths", [(20, (50, 40, 60)), (200, (5, 3, 7))])  # Gram form, feature form
def test_linear_cka_matrix_equals_pairwise(n, widths):
    a = _layers(n, widths, seed=0)
    b = _layers(n, widths[:2], seed=1)
    m = similarity_matrix(a, b)
    expected = [[linear_cka(x, y) for y in b.values()] for x in a.values()]
    np.testing.assert_allclose(m.numpy(), expected, atol=1e-10)
    self_m = similarity_matrix(a)
    np.testing.assert_allclose(torch.diagonal(self_m).numpy(), 1.0, atol=1e-10)
    assert diagonal_identification(self_m) == 1.0


def test_registry_metric_matrix_equals_direct_calls():
    a = _layers(60, (5, 6))
    b = _layers(60, (4,), seed=3)
    m = similarity_matrix(a, b, "svcca")
    assert m.shape == (2, 1)
    assert float(m[1, 0]) == pytest.approx(METRICS["svcca"](a["l1"], b["l0"]), abs=1e-12)


def test_sample_mismatch_is_refused():
    with pytest.raises(ShapeMismatchError, match="same inputs"):
        similarity_matrix(_layers(30, (3,)), _layers(20, (3,)))


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    a = tiny_text_model(root / "a", seed=0)
    b = tiny_text_model(root / "b", seed=1, hidden_size=48, num_hidden_layers=3, intermediate_size=96)
    return a, b


def test_layer_similarity_across_widths_and_depths(tiny_models):
    a, b = tiny_models
    result = layer_similarity(str(a), str(b), SENTENCES, n=12)
    assert result.matrix.shape == (2, 3)
    assert result.layers_b == ["block.0", "block.1", "block.2"]
    assert result.n == 12 and result.details["widths"] == {"a": 32, "b": 48}
    self_result = layer_similarity(str(a), str(a), SENTENCES)
    np.testing.assert_allclose(torch.diagonal(self_result.matrix).numpy(), 1.0, atol=1e-9)
    streamed = layer_similarity(str(a), str(b), SENTENCES, "minibatch_cka", batch_size=8)
    assert streamed.matrix.shape == (2, 3) and streamed.details["batches"] == 2


def test_all_tokens_needs_same_tokenization(tiny_models):
    import transformers

    a, b = tiny_models
    model_b = transformers.AutoModel.from_pretrained(b)
    same = layer_similarity(str(a), (model_b, tokenizer()), SENTENCES, pooling="all")
    assert same.n > len(SENTENCES)  # tokens, not sentences
    other = tokenizer(words=("film", "the", "and", "a"))
    with pytest.raises(ShapeMismatchError, match="same tokens"):
        layer_similarity(str(a), (model_b, other), SENTENCES, pooling="all")


def test_unknown_model_names_the_zoo():
    with pytest.raises(MissingPathError, match="neither an existing folder nor a zoo model"):
        layer_similarity("no-such-model-xyz", "no-such-model-xyz", SENTENCES)


def test_cli_writes_json_and_heatmap(tiny_models, tmp_path, capsys):
    a, b = tiny_models
    data = tmp_path / "sentences.txt"
    data.write_text("\n".join(SENTENCES))
    out = tmp_path / "out"
    code = main(["similarity", str(a), str(b), "--data", str(data), "--n", "10", "--out", str(out)])
    assert code == 0
    report = json.loads((out / "similarity.json").read_text())
    assert np.array(report["matrix"]).shape == (2, 3) and report["n"] == 10
    assert (out / "heatmap.png").read_bytes()[:4] == b"\x89PNG"
    assert "block.0 ->" in capsys.readouterr().out
    assert main(["similarity", str(a), str(b), "--data", str(data), "--out", str(out)]) == 2  # exists
    assert main(["similarity", str(a), str(b), "--data", str(data), "--metric", "cka_linear"]) == 2


@pytest.mark.slow
def test_real_minilm_l6_vs_l3(datasets_dir):
    if not (zoo.is_cached("all-MiniLM-L6-v2") and zoo.is_cached("paraphrase-MiniLM-L3-v2")):
        pytest.skip("zoo models not materialized (graft zoo get all-MiniLM-L6-v2 paraphrase-MiniLM-L3-v2)")
    from graftkit.data import load_dataset

    texts = load_dataset("sst2").test.texts
    result = layer_similarity("all-MiniLM-L6-v2", "paraphrase-MiniLM-L3-v2", texts, n=64)
    assert result.matrix.shape == (6, 3)
    assert float(result.matrix.max()) > 0.5  # related models: some layers clearly alike
    assert torch.all((result.matrix >= 0) & (result.matrix <= 1))
