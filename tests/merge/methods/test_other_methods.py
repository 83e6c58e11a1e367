"""Golden numbers for the spherical, stock, SCE, RAM and small methods, by hand."""

from __future__ import annotations

import math

import pytest
import torch

from graftkit.errors import MergeError
from graftkit.merge.methods import get_method

R = 1 / math.sqrt(2)


def t(*values):
    return torch.tensor(values, dtype=torch.float32)


# ---- slerp ----------------------------------------------------------------------
def test_slerp_quarter_circle():
    # theta = pi/2: coefficients sin(pi/4)/sin(pi/2) = 1/sqrt2 on the originals (norms kept in)
    out = get_method("slerp").merge([t(2.0, 0.0), t(0.0, 1.0)], base_index=0, params={"t": 0.5})
    assert torch.allclose(out, t(2 * R, R))


@pytest.mark.parametrize("value", [0.0, 1.0])
def test_slerp_endpoints(value):
    a, b = t(1.0, 2.0, 3.0), t(-1.0, 0.5, 2.0)
    out = get_method("slerp").merge([a, b], base_index=0, params={"t": value})
    assert torch.allclose(out, a if value == 0 else b, atol=1e-6)


def test_slerp_antipodal_and_collinear_fall_back_to_lerp():
    a = t(1.0, -2.0, 0.5)
    assert torch.allclose(get_method("slerp").merge([a, -a], base_index=0, params={"t": 0.5}), torch.zeros(3))
    assert torch.allclose(get_method("slerp").merge([a, 3 * a], base_index=0, params={"t": 0.5}), 2 * a)
    # a zero tensor counts as orthogonal to everything (as in mergekit): sin(t pi/2) a
    zero = torch.zeros(3)
    out = get_method("slerp").merge([zero, a], base_index=0, params={"t": 0.25})
    assert torch.allclose(out, math.sin(0.25 * math.pi / 2) * a)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_slerp_half_precision(dtype):
    out = get_method("slerp").merge([t(2.0, 0.0).to(dtype), t(0.0, 1.0).to(dtype)], base_index=0, params={"t": 0.5})
    assert out.dtype == dtype
    assert torch.allclose(out.float(), t(2 * R, R), atol=1e-2)


# ---- nuslerp / multislerp / karcher -----------------------------------------------
def test_nuslerp_t_from_weights():
    # t = 3 / (1 + 3) = 0.75 along the quarter circle: angle 3pi/8
    mp = [{"weight": 1.0}, {"weight": 3.0}]
    out = get_method("nuslerp").merge([t(1.0, 0.0), t(0.0, 1.0)], model_params=mp)
    assert torch.allclose(out, t(math.cos(3 * math.pi / 8), math.sin(3 * math.pi / 8)), atol=1e-6)


def test_nuslerp_with_base_acts_on_task_vectors_and_rows():
    base = t(1.0, 1.0)
    mp = [{}, {"weight": 1.0}, {"weight": 1.0}]
    out = get_method("nuslerp").merge([base, t(2.0, 1.0), t(1.0, 2.0)], base_index=0, model_params=mp)
    assert torch.allclose(out, base + t(R, R), atol=1e-6)
    # per last-dim slice: row 0 rotates [1,0] -> [0,1]; row 1 is collinear ([1,1] and [2,2]) and is lerped
    a = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    b = torch.tensor([[0.0, 1.0], [2.0, 2.0]])
    out = get_method("nuslerp").merge([a, b], model_params=[{"weight": 1.0}, {"weight": 1.0}],
                                      params={"nuslerp_flatten": False})
    assert torch.allclose(out, torch.tensor([[R, R], [1.5, 1.5]]), atol=1e-6)


def test_multislerp_orthogonal_pair_and_antipodes():
    mp = [{"weight": 1.0}, {"weight": 1.0}]
    out = get_method("multislerp").merge([t(1.0, 0.0), t(0.0, 1.0)], model_params=mp)
    assert torch.allclose(out, t(R, R), atol=1e-6)
    a = t(1.0, 2.0)
    assert torch.allclose(get_method("multislerp").merge([a, -a], model_params=mp), torch.zeros(2))
    three = [a, -a, a.clone()]
    with pytest.raises(MergeError, match="cancel"):
        get_method("multislerp").merge(three, model_params=[{"weight": 1.0}, {"weight": 2.0}, {"weight": 1.0}])


def test_karcher_midpoint_times_mean_norm():
    out = get_method("karcher").merge([t(1.0, 0.0), t(0.0, 3.0)])
    assert torch.allclose(out, 2 * t(R, R), atol=1e-5)
    a = t(0.6, 0.8)
    assert torch.allclose(get_method("karcher").merge([a, 3 * a]), 2 * a, atol=1e-6)
    assert torch.equal(get_method("karcher").merge([torch.zeros(2), torch.zeros(2)]), torch.zeros(2))


# ---- model stock ------------------------------------------------------------------
def test_model_stock_ratio_from_the_angle():
    base = torch.zeros(2)
    # cos between [1,0] and [1,1] is 1/sqrt2: t = 2c / (1 + c); mean [1, 0.5]
    c = R
    out = get_method("model_stock").merge([base, t(1.0, 0.0), t(1.0, 1.0)], base_index=0)
    assert torch.allclose(out, (2 * c / (1 + c)) * t(1.0, 0.5), atol=1e-6)
    # orthogonal fine-tunes: t = 0, the base; identical ones: t = 1, the model
    assert torch.allclose(get_method("model_stock").merge([base, t(1.0, 0.0), t(0.0, 1.0)], base_index=0), base)
    assert torch.allclose(get_method("model_stock").merge([base, t(1.0, 2.0), t(1.0, 2.0)], base_index=0), t(1.0, 2.0))
    # antipodal fine-tunes: 1 + (N-1) cos = 0, no finite estimate: the base is kept
    assert torch.equal(get_method("model_stock").merge([base, t(1.0, 2.0), t(-1.0, -2.0)], base_index=0), base)


# ---- sce, ram -----------------------------------------------------------------------
def test_sce_closed_form():
    # deltas a = [2, 0], b = [1, -1]; elected signs [+, -]; energies 2 and 1 -> weights 2/3, 1/3
    # entry 0: (2/3 * 2 + 1/3 * 1) / 1 = 5/3 ; entry 1: only b agrees -> -1
    out = get_method("sce").merge([torch.zeros(2), t(2.0, 0.0), t(1.0, -1.0)], base_index=0)
    assert torch.allclose(out, t(5 / 3, -1.0))


def test_sce_selects_high_variance_entries():
    # variances across models: [0.25, 0, 2.25, 0] -> two nonzero, top 50% keeps entry 2 only
    out = get_method("sce").merge([torch.zeros(4), t(1.0, 1.0, 3.0, 0.0), t(2.0, 1.0, 0.0, 0.0)], base_index=0,
                                  params={"select_topk": 0.5})
    assert out[0] == 0 and out[1] == 0 and out[3] == 0 and out[2] == pytest.approx(3.0)


def test_ram_and_ramplus():
    base = torch.zeros(3)
    a, b = t(1.0, 2.0, 0.0), t(3.0, 0.0, 0.0)
    # entry 0 shared -> mean 2 ; entry 1 only a -> kept whole ; entry 2 untouched
    assert torch.allclose(get_method("ram").merge([base, a, b], base_index=0), t(2.0, 2.0, 0.0))
    # RAM+: a has 1 shared / 1 unique -> rho 1 -> clamp 0.2 -> boost 1 + 0.1 * 0.2 on its unique entry
    assert torch.allclose(get_method("ramplus_tl").merge([base, a, b], base_index=0), t(2.0, 2.04, 0.0))


# ---- nearswap, arcee_fusion, passthrough ------------------------------------------
def test_nearswap_closed_form():
    # |a - b| = [0.5, 2, 0]: weights clamp(1 / d) = [1, 0.5, 1]
    out = get_method("nearswap").merge([torch.zeros(3), t(0.5, 2.0, 0.0)], base_index=0, params={"t": 1.0})
    assert torch.allclose(out, t(0.5, 1.0, 0.0))


def test_arcee_fusion_takes_whole_entries_from_one_side():
    g = torch.Generator().manual_seed(0)
    base = torch.randn(32, 16, generator=g)
    other = base + torch.randn(32, 16, generator=g) * (torch.rand(32, 16, generator=g) < 0.1) * 5
    out = get_method("arcee_fusion").merge([base, other], base_index=0)
    assert torch.all((out == base) | (out == other))
    assert 0 < (out == other).logical_and(other != base).sum() <= (other != base).sum()
    assert torch.equal(get_method("arcee_fusion").merge([base, base.clone()], base_index=0), base)


def test_passthrough_scale_and_small_tensors():
    x = t(1.0, -2.0)
    assert torch.equal(get_method("passthrough").merge([x]), x)
    assert torch.equal(get_method("passthrough").merge([x], model_params=[{"scale": 0.5}]), t(0.5, -1.0))


@pytest.mark.parametrize("name,extra", [
    ("sce", {}), ("ram", {}), ("ramplus_tl", {}), ("model_stock", {}), ("nearswap", {"t": 0.1}), ("arcee_fusion", {}),
])
def test_all_zero_deltas_return_the_base(name, extra):
    base = torch.randn(5, 3)
    count = 2 if name in ("nearswap", "arcee_fusion") else 3
    tensors = [base] + [base.clone() for _ in range(count - 1)]
    out = get_method(name).merge(tensors, base_index=0, params=extra)
    assert torch.allclose(out, base)


def test_integer_buffers_are_copied_when_equal_and_refused_otherwise():
    ids = torch.arange(4)
    assert torch.equal(get_method("linear").merge([ids, ids.clone()], model_params=[{"weight": 1}, {"weight": 1}]), ids)
    with pytest.raises(MergeError, match="non-floating"):
        get_method("linear").merge([ids, ids + 1], model_params=[{"weight": 1}, {"weight": 1}])


def test_linear_zero_weight_sum_is_refused():
    with pytest.raises(MergeError, match="sum to zero"):
        get_method("linear").merge([torch.ones(2), torch.ones(2)], model_params=[{"weight": 1}, {"weight": -1}])


def test_multislerp_unchanged_tensor_returns_the_base():
    # mergekit raises "weighted sum is zero" here for three or more models
    base = t(1.0, 2.0, 3.0)
    mp = [{}] + [{"weight": 1.0}] * 3
    out = get_method("multislerp").merge([base, base.clone(), base.clone(), base.clone()], base_index=0, model_params=mp)
    assert torch.equal(out, base)
