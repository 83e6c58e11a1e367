"""Fisher and Gram statistics: golden values on tiny models, the cache, and the lookup."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from graftkit.merge.statistics import (
    ModelStatistics,
    compute_fisher,
    compute_grams,
    from_texts,
    statistics_for,
)


def test_fisher_is_the_mean_squared_per_example_gradient():
    # loss 0.5 (w.x - t)^2, w = [1, 2]: grad = (w.x - t) x
    # x1 = [1, 0], t1 = 0 -> residual 1 -> grad [1, 0]
    # x2 = [1, 1], t2 = 1 -> residual 2 -> grad [2, 2]
    # Fisher = ([1, 0]^2 + [2, 2]^2) / 2 = [2.5, 2]
    model = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 2.0]]))

    def loss(m, batch):
        return 0.5 * (m(batch["x"]).squeeze(-1) - batch["t"]).square().sum()

    batches = [{"x": torch.tensor([[1.0, 0.0], [1.0, 1.0]]), "t": torch.tensor([0.0, 1.0])}]
    fisher = compute_fisher(model, batches, loss_fn=loss)
    assert torch.allclose(fisher["weight"], torch.tensor([[2.5, 2.0]]))
    assert model.weight.grad is None
    # per batch: the mean gradient [1.5, 1] squared
    batched = compute_fisher(model, batches, loss_fn=lambda m, b: loss(m, b) / 2, per_example=False)
    assert torch.allclose(batched["weight"], torch.tensor([[2.25, 1.0]]))


class Tower(nn.Module):
    def __init__(self):
        super().__init__()
        self.first = nn.Linear(2, 3)
        self.second = nn.Linear(3, 1)

    def forward(self, x, attention_mask=None):
        return self.second(torch.relu(self.first(x)))


def test_gram_is_the_mean_outer_product_of_non_padding_inputs():
    torch.manual_seed(0)
    model = Tower()
    x = torch.tensor([[[1.0, 2.0], [9.0, 9.0]], [[0.0, 1.0], [3.0, -1.0]]])
    mask = torch.tensor([[1, 0], [1, 1]])
    grams, counts = compute_grams(model, [{"x": x, "attention_mask": mask}])
    kept = torch.tensor([[1.0, 2.0], [0.0, 1.0], [3.0, -1.0]])
    assert counts["first"] == 3
    assert torch.allclose(grams["first"], kept.T @ kept / 3)
    hidden = torch.relu(model.first(kept))
    assert torch.allclose(grams["second"], hidden.T @ hidden / 3, atol=1e-6)


def test_lookup_maps_weight_names_to_statistics():
    grams = ModelStatistics("gram", {"bert.encoder.layer.0.output.dense": torch.eye(2)})
    assert torch.equal(grams.lookup("bert.encoder.layer.0.output.dense.weight")["gram"], torch.eye(2))
    assert torch.equal(grams.lookup("encoder.layer.0.output.dense.weight")["gram"], torch.eye(2))
    assert grams.lookup("bert.encoder.layer.0.output.dense.bias") == {}
    assert grams.lookup("bert.embeddings.word_embeddings.weight") == {}
    fisher = ModelStatistics("fisher", {"a.weight": torch.tensor([3.0, 4.0])})
    found = fisher.lookup("a.weight")
    assert found["fisher_norm"] == pytest.approx(5.0)
    assert fisher.lookup("b.weight") == {}


def test_statistics_round_trip(tmp_path):
    stats = ModelStatistics("fisher", {"w": torch.rand(3, 2)}, {"data": "x"})
    loaded = ModelStatistics.load(stats.save(tmp_path / "s.safetensors"))
    assert loaded.kind == "fisher" and loaded.metadata["data"] == "x"
    assert torch.equal(loaded.tensors["w"], stats.tensors["w"])
    assert loaded.fisher_norm == pytest.approx(stats.fisher_norm)


def _tiny_classifier(folder):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from graftkit.zoo import save_tiny

    words = ["[UNK]", "[PAD]", "[CLS]", "[SEP]", "good", "bad", "film", "very", "not"]
    tok = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]").save_pretrained(folder)
    save_tiny("bert", folder, head="sequence-classification", num_labels=2)
    return folder


def test_statistics_for_computes_once_then_reads_the_cache(tmp_path, monkeypatch):
    folder = _tiny_classifier(tmp_path / "model")
    calib = from_texts(["good film", "bad film", "very good", "not good film"], [1, 0, 1, 0])
    fisher = statistics_for("fisher", folder, calib, batch_size=2, cache_dir=tmp_path / "cache")
    names = set(fisher.tensors)
    assert "bert.encoder.layer.0.attention.self.query.weight" in names
    assert all(torch.isfinite(t).all() for t in fisher.tensors.values())
    grams = statistics_for("gram", folder, calib, batch_size=2, cache_dir=tmp_path / "cache")
    assert grams.lookup("bert.encoder.layer.1.output.dense.weight")["gram"].shape == (64, 64)
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 2

    import graftkit.merge.statistics.compute as compute

    monkeypatch.setattr(compute, "compute_statistics", lambda *a, **k: pytest.fail("cache was not used"))
    again = statistics_for("fisher", folder, calib, batch_size=2, cache_dir=tmp_path / "cache")
    assert torch.equal(again.tensors["classifier.weight"], fisher.tensors["classifier.weight"])
    other = from_texts(["bad film"], [0])
    with pytest.raises(pytest.fail.Exception):
        statistics_for("fisher", folder, other, batch_size=2, cache_dir=tmp_path / "cache")


@pytest.mark.slow
def test_calibration_set_from_a_real_dataset(datasets_dir):
    from graftkit.merge.statistics import calibration_set

    calib = calibration_set("sst2", examples=32, seed=1)
    assert len(calib) == 32 and calib.labels is not None and set(calib.labels) <= {0, 1}
    assert calibration_set("sst2", examples=32, seed=1).texts == calib.texts


def test_per_example_fisher_ignores_padding_on_either_side():
    # a model whose loss depends on every position it is given: padding would change the gradient
    class Sum(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.tensor(2.0))

        def forward(self, input_ids, attention_mask=None):
            return self.scale * input_ids.float().sum()

    def loss(m, batch):
        return m(batch["input_ids"], batch.get("attention_mask"))

    ids = torch.tensor([[3, 4, 0], [0, 0, 5]])
    mask = torch.tensor([[1, 1, 0], [0, 0, 1]])
    fisher = compute_fisher(Sum(), [{"input_ids": ids + 7 * (1 - mask), "attention_mask": mask}], loss_fn=loss)
    # gradients d(loss)/d(scale) = sum of the kept ids: 7 and 5 -> (49 + 25) / 2
    assert fisher["scale"].item() == pytest.approx(37.0)


class Siblings(nn.Module):
    """q and k read the same tensor; v reads it after an in-place change."""

    def __init__(self):
        super().__init__()
        self.q, self.k, self.v = nn.Linear(3, 2), nn.Linear(3, 2), nn.Linear(3, 2)

    def forward(self, x, attention_mask=None):
        h = x + 0
        out = self.q(h) + self.k(h)
        h.mul_(2)
        return out + self.v(h)


def test_siblings_share_one_product_and_an_in_place_change_is_seen():
    x = torch.randn(2, 4, 3)
    grams, counts = compute_grams(Siblings(), [{"x": x}])
    flat = x.reshape(-1, 3)
    assert counts == {"q": 8, "k": 8, "v": 8}
    assert torch.allclose(grams["q"], flat.T @ flat / 8, atol=1e-6)
    assert torch.allclose(grams["k"], grams["q"])
    assert torch.allclose(grams["v"], 4 * grams["q"], atol=1e-5)
    grams["q"] += 1  # each module's Gram is its own tensor
    assert not torch.allclose(grams["k"], grams["q"])
