import pytest
import torch

from graftkit import zoo
from graftkit.errors import HybridError
from graftkit.hybrid import HybridConfig, HybridModel, MemoryConfig, SSMConfig


def _ids(model, n=2, length=24):
    return torch.randint(0, model.config.vocab_size, (n, length), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gemma3_text"])
@pytest.mark.parametrize("memory", [None, MemoryConfig(slots=16, key_dim=8), MemoryConfig(slots=16, key_dim=8, product_keys=True, top_k=4)])
def test_wrapped_model_equals_the_base_at_init(arch, memory):
    base = zoo.tiny(arch)
    ids = _ids(base)
    with torch.no_grad():
        ref = base(input_ids=ids).logits
        hybrid = HybridModel(base, HybridConfig(layers=[0, 1], memory=memory, ssm=SSMConfig(d_state=4)))
        out = hybrid(input_ids=ids).logits
    assert (out - ref).abs().max() < 1e-5


def test_literal_blend_equals_the_base_only_with_a_closed_gate():
    base = zoo.tiny("llama")
    ids = _ids(base)
    with torch.no_grad():
        ref = base(input_ids=ids).logits
        closed = HybridModel(base, HybridConfig(layers=[0], anchor=False, gate_bias=-30.0))
        assert (closed(input_ids=ids).logits - ref).abs().max() < 1e-5
        closed.branches["0"].gate.net[2].bias.fill_(0.0)  # g = 0.5: half of the attention output is gone
        assert (closed(input_ids=ids).logits - ref).abs().max() > 1e-3


def test_only_hybrid_parameters_train_and_the_fraction_is_reported():
    base = zoo.tiny("llama")
    hybrid = HybridModel(base, HybridConfig(layers=[1]))
    trainable = {n for n, p in hybrid.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("branches.1.") or ".branch." in n for n in trainable)
    counts = hybrid.parameter_counts()
    assert counts["hybrid"] == sum(p.numel() for p in hybrid.trainable_parameters())
    assert 0 < counts["trainable_fraction"] < 1


@pytest.mark.parametrize("layers,match", [([5], "out of range"), ([-1], "out of range"), ([], "names no layers"),
                                          ([0, 0], "repeat")])
def test_bad_layer_indices_fail_before_building(layers, match):
    base = zoo.tiny("llama")
    with pytest.raises(HybridError, match=match):
        HybridModel(base, HybridConfig(layers=layers))
    assert all(type(l.self_attn).__name__ != "HybridAttention" for l in base.model.layers)


def test_unsupported_base_is_refused():
    with pytest.raises(HybridError, match="unsupported base model"):
        HybridModel(zoo.tiny("bert"), HybridConfig(layers=[0]))
    with pytest.raises(HybridError, match="product-key memory needs a square"):
        HybridModel(zoo.tiny("llama"), HybridConfig(layers=[0], memory=MemoryConfig(slots=10, product_keys=True)))


def test_save_and_load_round_trip(tmp_path):
    base = zoo.tiny("llama")
    hybrid = HybridModel(base, HybridConfig(layers=[0], memory=MemoryConfig(slots=9, key_dim=4, product_keys=True, top_k=2)))
    with torch.no_grad():
        for p in hybrid.trainable_parameters():
            p.add_(torch.randn_like(p) * 0.1)
        ids = _ids(base)
        before = hybrid(input_ids=ids).logits
    hybrid.save(tmp_path / "hy")
    assert (tmp_path / "hy" / "hybrid.safetensors").is_file()
    again = HybridModel.load(tmp_path / "hy", base=zoo.tiny("llama"))
    with torch.no_grad():
        assert torch.allclose(again(input_ids=ids).logits, before, atol=1e-6)
    with pytest.raises(HybridError, match="no hybrid_config.json"):
        HybridModel.load(tmp_path)


@pytest.mark.slow
def test_smollm2_wrapped_equals_base():
    from graftkit.hybrid import load_base

    base, tok = load_base("SmolLM2-135M-Instruct")
    ids = tok("To be, or not to be, that is the question.", return_tensors="pt").input_ids
    with torch.no_grad():
        ref = base(input_ids=ids).logits
        hybrid = HybridModel(base, HybridConfig(layers=[3, 15, 29], memory=MemoryConfig(slots=64)))
        out = hybrid(input_ids=ids).logits
    assert (out - ref).abs().max() < 1e-5
    counts = hybrid.parameter_counts()
    assert counts["base"] == sum(p.numel() for p in base.parameters()) - counts["hybrid"]
    assert 0.01 < counts["trainable_fraction"] < 0.05  # three 576-wide SSM branches + 64-slot memories: ~3%


def test_ssd_branch_equals_the_base_at_init_trains_and_round_trips(tmp_path):
    base = zoo.tiny("llama")
    ids = _ids(base)
    with torch.no_grad():
        ref = base(input_ids=ids).logits
    hybrid = HybridModel(base, HybridConfig(layers=[0, 1], ssm=SSMConfig(kind="ssd", d_state=4, head_dim=8, chunk=8),
                                            gate_bias=0.0))
    with torch.no_grad():
        assert (hybrid(input_ids=ids).logits - ref).abs().max() < 1e-5
    loss = hybrid(input_ids=ids).logits.logsumexp(-1).mean()
    loss.backward()
    assert all(p.grad is not None for p in hybrid.branches["0"].ssm.out_proj.parameters())
    with torch.no_grad():
        for p in hybrid.trainable_parameters():
            p.add_(torch.randn_like(p) * 0.1)
        before = hybrid(input_ids=ids).logits
    hybrid.save(tmp_path / "hy")
    again = HybridModel.load(tmp_path / "hy", base=zoo.tiny("llama"))
    with torch.no_grad():
        after = again(input_ids=ids).logits
    assert torch.allclose(after, before, atol=1e-5) and (after - ref).abs().max() > 1e-3
