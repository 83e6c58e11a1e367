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
