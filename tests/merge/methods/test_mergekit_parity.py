"""Tensor-level parity with mergekit's own kernels (mergekit.merge_methods.merge_tensors).

Random sparsification: mergekit draws from torch's global RNG with
``torch.bernoulli``; seeding it with ``torch.manual_seed(s)`` right before the call
and giving graftkit ``torch.Generator().manual_seed(s)`` gives the same masks.
"""

from __future__ import annotations

import pytest
import torch

mergekit_api = pytest.importorskip("mergekit.merge_methods")

from graftkit.merge.methods import get_method  # noqa: E402

TOL = 1e-5


def inputs(count: int, shape=(24, 16), seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(shape, generator=g)
    return [base] + [base + 0.3 * torch.randn(shape, generator=g) for _ in range(count - 1)]


def compare(name, tensors, *, base_index, mk_params, gk_params=None, gk_model=None, seed=None):
    if seed is not None:
        torch.manual_seed(seed)
    expected = mergekit_api.merge_tensors(tensors, name, parameters=mk_params, base_index=base_index)
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    got = get_method(name).merge(
        tensors, base_index=base_index, model_params=gk_model, params=gk_params or {}, generator=generator
    )
    assert got.shape == expected.shape and got.dtype == expected.dtype
    assert (got - expected).abs().max().item() <= TOL, name


def per_model(count, base_index, **values):
    """graftkit per-model dicts from mergekit-style lists over the non-base inputs."""
    out, j = [], 0
    for i in range(count):
        if i == base_index:
            out.append({})
            continue
        out.append({k: v[j] for k, v in values.items()})
        j += 1
    return out


@pytest.mark.parametrize("shape", [(24, 16), (7,), (3, 2)])
def test_linear(shape):
    ts = inputs(3, shape)
    w = [0.2, 0.5, 0.3]
    compare("linear", ts, base_index=None, mk_params={"weight": w}, gk_model=[{"weight": x} for x in w])
    compare("linear", ts, base_index=None, mk_params={"weight": w, "normalize": False},
            gk_params={"normalize": False}, gk_model=[{"weight": x} for x in w])


FAMILY = ["task_arithmetic", "ties", "dare_ties", "dare_linear", "breadcrumbs", "breadcrumbs_ties", "della", "della_linear"]


@pytest.mark.parametrize("name", FAMILY)
@pytest.mark.parametrize("shape", [(24, 16), (50,), (4, 3)])
def test_task_vector_family(name, shape):
    ts = inputs(4, shape, seed=1)
    values = {"weight": [0.7, 0.4, 1.1], "density": [0.5, 0.3, 0.8]}
    if name.startswith("della"):
        values["epsilon"] = [0.1, 0.2, 0.15]
    if name.startswith("breadcrumbs"):
        values["gamma"] = [0.05, 0.01, 0.1]
    mk = {**values, "lambda": 0.9}
    compare(name, ts, base_index=0, mk_params=mk, gk_params={"lambda": 0.9}, gk_model=per_model(4, 0, **values), seed=7)
    flipped = {"normalize": True, "rescale": False} if name != "ties" else {"normalize": False, "rescale": True}
    compare(name, ts, base_index=0, mk_params={**mk, **flipped}, gk_params={"lambda": 0.9, **flipped},
            gk_model=per_model(4, 0, **values), seed=8)


@pytest.mark.parametrize("name", FAMILY)
def test_task_vector_family_base_not_first(name):
    ts = inputs(3, (10, 10), seed=2)
    values = {"weight": [0.5, 0.5], "density": [0.6, 0.6]}
    compare(name, ts, base_index=1, mk_params=values, gk_model=per_model(3, 1, **values), seed=3)


@pytest.mark.parametrize("t", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("base_index", [0, 1])
def test_slerp(t, base_index):
    ts = inputs(2, (12, 5), seed=3)
    compare("slerp", ts, base_index=base_index, mk_params={"t": t}, gk_params={"t": t})
    # collinear and antipodal pairs take the linear branch in both
    compare("slerp", [ts[0], 2 * ts[0]], base_index=base_index, mk_params={"t": t}, gk_params={"t": t})
    compare("slerp", [ts[0], -ts[0]], base_index=base_index, mk_params={"t": t}, gk_params={"t": t})


@pytest.mark.parametrize("row_wise", [False, True])
@pytest.mark.parametrize("flatten", [True, False])
@pytest.mark.parametrize("with_base", [True, False])
def test_nuslerp(row_wise, flatten, with_base):
    ts = inputs(3, (9, 6), seed=4)
    params = {"nuslerp_row_wise": row_wise, "nuslerp_flatten": flatten}
    if with_base:
        compare("nuslerp", ts, base_index=0, mk_params={**params, "weight": [0.3, 0.9]}, gk_params=params,
                gk_model=per_model(3, 0, weight=[0.3, 0.9]))
    else:
        compare("nuslerp", ts[1:], base_index=None, mk_params={**params, "weight": [0.3, 0.9]}, gk_params=params,
                gk_model=[{"weight": 0.3}, {"weight": 0.9}])
    # collinear rows take the linear branch
    a = ts[1]
    compare("nuslerp", [a, 3 * a], base_index=None, mk_params={**params, "weight": [1.0, 1.0]}, gk_params=params,
            gk_model=[{"weight": 1.0}, {"weight": 1.0}])


@pytest.mark.parametrize("count", [2, 3, 4])
@pytest.mark.parametrize("with_base", [True, False])
def test_multislerp(count, with_base):
    ts = inputs(count + 1, (11, 7), seed=5)
    weights = [0.2, 0.5, 0.9, 0.4][:count]
    if with_base:
        compare("multislerp", ts, base_index=0, mk_params={"weight": weights},
                gk_model=per_model(count + 1, 0, weight=weights))
    else:
        compare("multislerp", ts[1:], base_index=None, mk_params={"weight": weights, "normalize_weights": False},
                gk_params={"normalize_weights": False}, gk_model=[{"weight": w} for w in weights])
    a = ts[1]
    compare("multislerp", [a, -a], base_index=None, mk_params={"weight": [1.0, 1.0]},
            gk_model=[{"weight": 1.0}, {"weight": 1.0}])


@pytest.mark.parametrize("count", [2, 3, 5])
def test_karcher(count):
    ts = inputs(count, (13, 4), seed=6)
    compare("karcher", ts, base_index=None, mk_params={})
    compare("karcher", ts, base_index=None, mk_params={"max_iter": 3, "tol": 1e-3}, gk_params={"max_iter": 3, "tol": 1e-3})
    compare("karcher", [ts[0], torch.zeros_like(ts[0])], base_index=None, mk_params={})


@pytest.mark.parametrize("select_topk", [1.0, 0.5, 0.1])
@pytest.mark.parametrize("shape", [(12, 9), (30,)])
def test_sce(select_topk, shape):
    ts = inputs(4, shape, seed=7)
    compare("sce", ts, base_index=0, mk_params={"select_topk": select_topk}, gk_params={"select_topk": select_topk})


def sparse_inputs(count, shape, seed):
    """Deltas that are zero on random entries, so RAM's overlap counting matters."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(shape, generator=g)
    return [base] + [base + torch.randn(shape, generator=g) * (torch.rand(shape, generator=g) < 0.4) for _ in range(count - 1)]


@pytest.mark.parametrize("name", ["ram", "ramplus_tl"])
def test_ram(name):
    ts = sparse_inputs(4, (20, 10), seed=8)
    compare(name, ts, base_index=0, mk_params={})
    params = {"epsilon": 0.1} if name == "ram" else {"r": 0.5, "alpha": 0.7, "epsilon": 0.1}
    compare(name, ts, base_index=0, mk_params=params, gk_params=params)


@pytest.mark.parametrize("filter_wise", [False, True])
@pytest.mark.parametrize("count", [3, 4])
@pytest.mark.parametrize("shape", [(10, 6), (17,)])
def test_model_stock(filter_wise, count, shape):
    ts = inputs(count, shape, seed=9)
    compare("model_stock", ts, base_index=0, mk_params={"filter_wise": filter_wise}, gk_params={"filter_wise": filter_wise})


@pytest.mark.parametrize("t", [1e-4, 0.1, 5.0])
def test_nearswap(t):
    ts = inputs(2, (15, 5), seed=10)
    compare("nearswap", ts, base_index=0, mk_params={"t": t}, gk_params={"t": t})
    compare("nearswap", ts, base_index=1, mk_params={"t": t}, gk_params={"t": t})


@pytest.mark.parametrize("shape", [(32, 64), (200,)])
def test_arcee_fusion(shape):
    ts = inputs(2, shape, seed=11)
    compare("arcee_fusion", ts, base_index=0, mk_params={})


def test_passthrough():
    (x,) = inputs(1, (4, 4))
    compare("passthrough", [x], base_index=None, mk_params={})
    compare("passthrough", [x], base_index=None, mk_params={"scale": [0.5]}, gk_model=[{"scale": 0.5}])
