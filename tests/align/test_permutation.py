"""Applying a permutation keeps a model's function; weight matching undoes a planted one."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from graftkit.align import (
    HeadGroup,
    permute_model,
    random_permutation,
    recovered_fraction,
    spec_for,
    state_tensors,
    weight_matching,
)
from graftkit.errors import AlignmentError
from graftkit.zoo import tiny


def mlp(seed: int = 0, width: int = 16) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(10, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 3))


def cnn_bn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 6, 3), nn.BatchNorm2d(6), nn.ReLU(),
        nn.Flatten(), nn.Linear(6 * 6 * 6, 5),
    )
    for bn in (model[1], model[4]):  # non-trivial statistics, so that a wrong permutation shows
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.normal_()
        bn.bias.data.normal_()
    return model.eval()


@pytest.mark.parametrize("make,x", [(mlp, torch.randn(5, 10)), (cnn_bn, torch.randn(4, 3, 8, 8))])
def test_chain_permutation_keeps_outputs(make, x):
    model = make()
    spec = spec_for(model)
    perm = random_permutation(spec, seed=1)
    permuted = permute_model(model, spec, perm)
    assert not torch.equal(state_tensors(model)["0.weight"], state_tensors(permuted)["0.weight"])
    torch.testing.assert_close(permuted(x), model(x), atol=1e-5, rtol=0)


def _inputs():
    ids = torch.randint(0, 128, (2, 7), generator=torch.Generator().manual_seed(0))
    mask = torch.ones(2, 7, dtype=torch.long)
    mask[1, 5:] = 0
    return ids, mask


@pytest.mark.parametrize("arch,head", [("bert", None), ("bert", "sequence-classification"),
                                       ("llama", None), ("qwen2", None)])
def test_transformer_permutation_keeps_outputs(arch, head):
    model = tiny(arch, head=head)
    spec = spec_for(model)
    perm = random_permutation(spec, seed=3)
    permuted = permute_model(model, spec, perm)
    ids, mask = _inputs()
    with torch.no_grad():
        a = model(input_ids=ids, attention_mask=mask)
        b = permuted(input_ids=ids, attention_mask=mask)
    if hasattr(a, "logits"):
        torch.testing.assert_close(b.logits, a.logits, atol=1e-5, rtol=0)
    else:  # a base model's hidden states come out in the permuted residual basis
        torch.testing.assert_close(b.last_hidden_state, a.last_hidden_state[..., perm["R"]], atol=1e-5, rtol=0)
        torch.testing.assert_close(b.pooler_output, a.pooler_output, atol=1e-5, rtol=0)


def test_llama_heads_are_rotary_and_grouped():
    spec = spec_for(tiny("llama"))
    attn = spec.groups["L0.attn"]
    assert isinstance(attn, HeadGroup) and attn.rotary and attn.num_kv_heads == 2 and attn.num_heads == 4
    perm = random_permutation(spec, seed=0)["L0.attn"]
    assert torch.equal(perm.qk, torch.arange(attn.head_dim).repeat(2, 1))  # pinned by rotary


def test_residual_false_keeps_hidden_basis():
    model = tiny("bert")
    spec = spec_for(model, residual=False)
    assert "R" not in spec.groups
    permuted = permute_model(model, spec, random_permutation(spec, seed=2))
    ids, mask = _inputs()
    with torch.no_grad():
        torch.testing.assert_close(
            permuted(input_ids=ids, attention_mask=mask).last_hidden_state,
            model(input_ids=ids, attention_mask=mask).last_hidden_state, atol=1e-5, rtol=0)


@pytest.mark.parametrize("make", [mlp, cnn_bn, lambda: tiny("bert"), lambda: tiny("llama")])
def test_weight_matching_recovers_planted_permutation(make):
    model = make()
    spec = spec_for(model)
    planted = random_permutation(spec, seed=5)
    b = permute_model(model, spec, planted)
    result = weight_matching(spec, state_tensors(model), state_tensors(b))
    assert result.converged
    assert min(recovered_fraction(spec, planted, result.perm).values()) == 1.0


def test_weight_matching_improves_alignment_of_independent_models():
    a, b = mlp(0, 32), mlp(1, 32)
    spec = spec_for(a)
    pa, pb = state_tensors(a), state_tensors(b)
    before = sum(float((pa[k] - pb[k]).pow(2).sum()) for k in pa)
    result = weight_matching(spec, pa, pb, seed=0)
    aligned = state_tensors(permute_model(b, spec, result.perm))
    after = sum(float((pa[k] - aligned[k]).pow(2).sum()) for k in pa)
    assert after < 0.9 * before


def test_different_widths_are_refused_with_the_fix():
    a, b = mlp(0, 16), mlp(1, 24)
    with pytest.raises(AlignmentError, match="ot_fuse"):
        weight_matching(spec_for(a), state_tensors(a), state_tensors(b))


def test_different_architectures_are_refused():
    a = tiny("bert")
    b = tiny("bert", num_hidden_layers=3)
    with pytest.raises(AlignmentError, match="layer mapping"):
        weight_matching(spec_for(a), state_tensors(a), state_tensors(b))


def test_unknown_module_in_chain_is_named():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Embedding(3, 8), nn.Linear(8, 2))
    with pytest.raises(AlignmentError, match="Embedding"):
        spec_for(model)


def test_layer_mapping_makes_different_depths_matchable():
    from graftkit.align import select_layers, spec_from_config

    shallow = tiny("bert", num_hidden_layers=2)
    deep = tiny("bert", num_hidden_layers=4, seed=1)
    spec = spec_for(shallow)
    picked = select_layers(state_tensors(deep), [1, 3])
    assert "encoder.layer.1.output.dense.weight" in picked and "encoder.layer.3.output.dense.weight" not in picked
    torch.testing.assert_close(picked["encoder.layer.1.output.dense.weight"],
                               state_tensors(deep)["encoder.layer.3.output.dense.weight"])
    result = weight_matching(spec, state_tensors(shallow), picked)
    assert result.converged
    assert set(spec_from_config(picked, shallow.config.to_dict()).groups) == set(spec.groups)
    with pytest.raises(AlignmentError, match="do not exist"):
        select_layers(state_tensors(deep), [7])
