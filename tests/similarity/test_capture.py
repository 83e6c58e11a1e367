from __future__ import annotations

import pytest
import torch
from torch import nn

from graftkit import zoo
from graftkit.errors import ConfigError
from graftkit.similarity import capture, linear_cka
from graftkit.similarity.capture import LayerRecorder, pool


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 8), nn.Dropout(0.5), nn.Linear(8, 3))


def test_plain_model_default_layers_and_batches():
    model = _mlp()
    data = torch.randn(40, 6)
    acts = capture(model, [data[:16], data[16:32], (data[32:], torch.zeros(8))])
    assert acts.layers == ["0", "1", "2", "3", "4"]
    assert acts.n == 40
    with torch.no_grad():
        expected = model[0](data)
    torch.testing.assert_close(acts["0"], expected)
    assert model.training  # restored after capture


def test_capture_runs_in_eval_mode_so_a_model_matches_itself():
    model = _mlp().train()
    data = torch.randn(64, 6)
    a = capture(model, [data], layers=["3"])
    b = capture(model, [data], layers=["3"])
    assert linear_cka(a["3"], b["3"]) == pytest.approx(1.0, abs=1e-9)


def test_unknown_layer_suggests():
    with pytest.raises(ConfigError, match="no layer '9'.*valid names include: 0, 1"):
        capture(_mlp(), [torch.randn(2, 6)], layers=["9"])
    with pytest.raises(ConfigError, match="did you mean block.1"):
        capture(zoo.tiny("bert"), [], layers=["blocks.1"])
    with pytest.raises(ConfigError, match="pooling"):
        capture(_mlp(), [torch.randn(2, 6)], pooling="avg")


def test_mean_pooling_honours_mask():
    h = torch.arange(2 * 3 * 2, dtype=torch.float32).reshape(2, 3, 2)
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    torch.testing.assert_close(pool(h, "mean", mask, "x"), torch.tensor([[1.0, 2.0], [6.0, 7.0]]))
    torch.testing.assert_close(pool(h, "first", mask, "x"), h[:, 0])
    torch.testing.assert_close(pool(h, "last", mask, "x"), torch.stack([h[0, 1], h[1, 0]]))
    assert pool(h, "all", mask, "x").shape == (3, 2)
    conv = torch.randn(4, 5, 3, 3)
    assert pool(conv, "mean", None, "c").shape == (4, 5)
    assert pool(conv, "all", None, "c").shape == (36, 5)


def _bert_batches(model, n_batches=3, batch=4, length=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_batches):
        ids = torch.randint(5, model.config.vocab_size, (batch, length), generator=g)
        mask = torch.ones(batch, length, dtype=torch.long)
        mask[0, 4:] = 0
        out.append({"input_ids": ids, "attention_mask": mask})
    return out


def test_hf_hidden_states_and_padding_invariance():
    model = zoo.tiny("bert")
    batches = _bert_batches(model)
    acts = capture(model, batches)
    assert acts.layers == ["block.0", "block.1"]
    assert acts["block.1"].shape == (12, 32)
    # the padded sentence's mean equals the same sentence run alone without padding
    alone = capture(model, [{"input_ids": batches[0]["input_ids"][:1, :4],
                             "attention_mask": torch.ones(1, 4, dtype=torch.long)}])
    torch.testing.assert_close(acts["block.1"][0], alone["block.1"][0], atol=1e-5, rtol=1e-5)


def test_hf_module_hook_and_hidden_state_agree():
    model = zoo.tiny("bert")
    batches = _bert_batches(model, n_batches=1)
    acts = capture(model, batches, layers=["block.1", "encoder.layer.1"], pooling="first")
    torch.testing.assert_close(acts["block.1"], acts["encoder.layer.1"])


def test_all_tokens_reservoir_keeps_same_tokens_per_layer():
    model = zoo.tiny("bert")
    batches = _bert_batches(model, n_batches=4)
    full = capture(model, batches, layers=["block.0", "encoder.layer.0"], pooling="all", max_tokens=1000)
    assert full.n == 4 * 28 - 3 * 4  # masked tokens dropped
    sub = capture(model, batches, layers=["block.0", "encoder.layer.0"], pooling="all", max_tokens=20)
    assert sub.n == 20
    torch.testing.assert_close(sub["block.0"], sub["encoder.layer.0"])
    rows = {tuple(r.tolist()) for r in full["block.0"]}
    assert all(tuple(r.tolist()) in rows for r in sub["block.0"])


def test_streaming_callback_without_storage():
    model = _mlp()
    seen = []
    acts = capture(model, [torch.randn(5, 6), torch.randn(7, 6)], layers=["2"],
                   on_batch=lambda f: seen.append(f["2"].shape[0]), keep=False)
    assert seen == [5, 7] and len(acts) == 0


def test_recorder_removes_hooks():
    model = _mlp()
    with LayerRecorder(model, ["0"]) as rec:
        rec(torch.randn(2, 6))
    assert not model[0]._forward_hooks
