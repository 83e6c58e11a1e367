import pytest
import torch

from graftkit import zoo
from graftkit.compose import MoLRuntime, MoLTrainer, TrainingConfig
from graftkit.data.types import Split
from graftkit.errors import CompositionError

from .conftest import word_tokenizer

TEXTS = ["the cat sat on the mat", "a big red dog runs fast", "the dog is blue and the cat is green",
         "a slow cat sat on a big mat", "the red dog runs and the blue cat sat"] * 4


def _runtime(top_k=None, **extra):
    a, b = zoo.tiny("llama", seed=0), zoo.tiny("llama", seed=1)
    config = {"models": ["a", "b"], "layers": [[["a", 0], ["b", 0]], [["a", 1], ["b", 1]]], "adapter_type": "bottleneck",
              "adapter": {"rank": 4}, "router": {"top_k": top_k}, **extra}
    return MoLRuntime(config, models={"a": a, "b": b}, tokenizer=word_tokenizer())


def test_training_moves_only_adapters_and_routers_and_lowers_the_loss():
    runtime = _runtime()
    frozen = {k: v.clone() for k, v in runtime.experts["a"].model.state_dict().items()}
    trainer = MoLTrainer(runtime, TrainingConfig(adapter_lr=1e-2, router_lr=1e-3, batch_size=4, epochs=3,
                                                 gradient_checkpointing=True))
    assert [g["name"] for g in trainer.optimizer.param_groups] == ["adapters", "routers"]
    assert [g["lr"] for g in trainer.optimizer.param_groups] == [1e-2, 1e-3]
    history = trainer.train_lm(TEXTS)
    assert len(history) == 15
    first, last = sum(h["loss"] for h in history[:3]) / 3, sum(h["loss"] for h in history[-3:]) / 3
    assert last < first
    assert all(torch.equal(v, runtime.experts["a"].model.state_dict()[k]) for k, v in frozen.items())
    assert any(float(layer.router.score.weight.abs().sum()) > 0 for layer in runtime.layers)


def test_gradient_checkpointing_gives_the_same_gradients():
    grads = []
    for ckpt in (False, True):
        runtime = _runtime()
        for layer in runtime.layers:
            torch.nn.init.normal_(layer.adapters_in[0].up.weight, std=0.1)
        if ckpt:
            runtime.gradient_checkpointing_enable()
        runtime.train()
        ids = torch.tensor([[4, 5, 6, 7, 8]])
        runtime(ids, labels=ids).loss.backward()
        grads.append(runtime.layers[0].adapters_in[0].down.weight.grad.clone())
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def test_checkpoint_round_trip_gives_equal_outputs(tmp_path):
    runtime = _runtime()
    trainer = MoLTrainer(runtime, TrainingConfig(adapter_lr=1e-2, batch_size=4, max_steps=3), num_labels=2)
    split = Split("train", texts=TEXTS[:8], labels=[0, 1] * 4)
    trainer.train_classification(split)
    trainer.save_checkpoint(tmp_path / "ckpt")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["mol_config.json", "mol_weights.safetensors"]
    fresh = _runtime()
    other = MoLTrainer(fresh, num_labels=2)
    other.load_checkpoint(tmp_path / "ckpt")
    ids = torch.tensor([[4, 5, 6, 7], [8, 9, 10, 3]])
    with torch.no_grad():
        assert torch.equal(runtime(ids).logits, fresh(ids).logits)
        assert torch.equal(trainer.head.weight, other.head.weight)
    acc_a, acc_b = trainer.evaluate(split), other.evaluate(split)
    assert acc_a.accuracy == acc_b.accuracy and acc_a.loss == acc_b.loss


def test_checkpoint_of_another_configuration_is_refused(tmp_path):
    _runtime().save_checkpoint(tmp_path / "ckpt")
    different = _runtime(adapter_type="linear", adapter={})
    with pytest.raises(CompositionError, match="another MoL configuration.*from_checkpoint"):
        different.load_checkpoint(tmp_path / "ckpt")
    with pytest.raises(CompositionError, match="not a MoL checkpoint"):
        different.load_checkpoint(tmp_path)


def test_from_checkpoint_rebuilds_the_runtime(tmp_path):
    runtime = _runtime()
    torch.nn.init.normal_(runtime.layers[1].router.score.weight)
    runtime.save_checkpoint(tmp_path / "ckpt")
    models = {"a": runtime.experts["a"].model, "b": runtime.experts["b"].model}
    again = MoLRuntime.from_checkpoint(tmp_path / "ckpt", models=models, tokenizer=word_tokenizer())
    ids = torch.tensor([[4, 5, 6]])
    with torch.no_grad():
        assert torch.equal(runtime(ids).logits, again(ids).logits)


def test_evaluate_perplexity_through_graftkit_data():
    runtime = _runtime()
    trainer = MoLTrainer(runtime)
    result = trainer.evaluate(Split("validation", text=" ".join(TEXTS)), window=16)
    assert result.metric == "perplexity" and 1 < result.perplexity < 1000
