import json

import pytest
import torch

from graftkit import zoo
from graftkit.errors import HybridError
from graftkit.hybrid import HybridConfig, HybridModel, MemoryConfig, SSMConfig
from graftkit.hybrid.monitor import gate_statistics, health_report, memory_heatmap, memory_usage
from graftkit.hybrid.trainer import TrainSettings, train_hybrid


class ByteTok:
    def __call__(self, text, return_tensors=None, **_):
        ids = [b % 100 + 1 for b in text.encode()]

        class Enc(dict):
            pass

        e = Enc(input_ids=torch.tensor([ids]) if return_tensors == "pt" else ids)
        e.input_ids = e["input_ids"]
        return e


TEXT = "the cat sat on the mat and the dog ran to the cat. " * 40


def _hybrid():
    torch.manual_seed(0)
    return HybridModel(zoo.tiny("llama"), HybridConfig(layers=[0, 1], ssm=SSMConfig(d_state=4),
                                                      memory=MemoryConfig(slots=16, key_dim=8)))


def test_training_moves_only_the_branches_and_lowers_the_loss(tmp_path):
    model = _hybrid()
    base_before = {n: p.clone() for n, p in model.base.named_parameters() if ".branch." not in n}
    result = train_hybrid(model, TEXT, ByteTok(), TrainSettings(steps=30, seq_len=32, batch_size=4, lr=3e-3),
                          save_to=tmp_path / "hy")
    assert sum(result.losses[-5:]) / 5 < sum(result.losses[:5]) / 5
    assert all(torch.equal(p, base_before[n]) for n, p in model.base.named_parameters() if n in base_before)
    assert 0 < result.trainable_fraction < 1 and result.trainable == model.parameter_counts()["hybrid"]
    meta = json.loads((tmp_path / "hy" / "hybrid_config.json").read_text())
    assert meta["config"]["layers"] == [0, 1]
    with pytest.raises(HybridError, match="fewer than seq_len"):
        train_hybrid(model, "short", ByteTok(), TrainSettings(steps=1, seq_len=32))


def test_monitoring_reports_gates_memory_and_health(tmp_path):
    model = _hybrid()
    stats = gate_statistics(model, ByteTok(), {"a": ["the cat sat"], "b": ["12 + 7 = 19"]})
    g0 = torch.sigmoid(torch.tensor(-2.0)).item()
    assert set(stats["layers"]) == {0, 1} and abs(stats["layers"][0]["mean"] - g0) < 1e-6
    assert set(stats["categories"]) == {"a", "b"}
    usage = memory_usage(model, ByteTok(), ["the cat sat on the mat"])
    assert set(usage) == {0, 1} and abs(float(usage[0].sum()) - 22) < 1e-3  # one unit of attention per token
    png = memory_heatmap(usage, tmp_path / "mem.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    report = health_report(model, ByteTok(), ["the cat sat on the mat"])
    assert report["healthy"] and report["checks"]["drift_from_base"]["detail"]["max_abs_logit_diff"] == 0
    with torch.no_grad():
        model.branches["0"].ssm.D.fill_(float("nan"))
    assert not health_report(model)["healthy"]


def test_warmup_ramps_the_lr_linearly_then_holds_it(monkeypatch):
    from graftkit.hybrid import trainer

    seen = []
    real_step = torch.optim.AdamW.step

    def spy(self, *args, **kwargs):
        seen.append(self.param_groups[0]["lr"])
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", spy)
    model = _hybrid()
    train_hybrid(model, TEXT, ByteTok(), TrainSettings(steps=6, seq_len=16, batch_size=1, lr=1e-3, warmup_steps=4))
    assert seen == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3])
    seen.clear()
    train_hybrid(model, TEXT, ByteTok(), TrainSettings(steps=3, seq_len=16, batch_size=1, lr=1e-3))
    assert seen == pytest.approx([1e-3] * 3)
    assert [trainer.warmup_factor(i, 2) for i in range(3)] == [0.5, 1.0, 1.0]
    with pytest.raises(HybridError, match="warmup_steps"):
        train_hybrid(model, TEXT, ByteTok(), TrainSettings(steps=3, seq_len=16, warmup_steps=-1))
