"""Properties that hold for any input (hypothesis)."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from graftkit.merge.methods import get_method

finite = st.floats(min_value=-100, max_value=100, allow_nan=False, allow_infinity=False, width=32)
vectors = st.lists(finite, min_size=1, max_size=40)
weights = st.floats(min_value=0.05, max_value=5.0)
FAST = settings(max_examples=40, deadline=None)


def pair(draw_a, draw_b):
    n = min(len(draw_a), len(draw_b))
    return torch.tensor(draw_a[:n]), torch.tensor(draw_b[:n])


@FAST
@given(vectors, st.lists(weights, min_size=2, max_size=4))
def test_linear_of_equal_inputs_is_the_input(values, ws):
    x = torch.tensor(values)
    out = get_method("linear").merge([x] * len(ws), model_params=[{"weight": w} for w in ws])
    assert torch.allclose(out, x, atol=1e-4, rtol=1e-5)


@FAST
@given(vectors, vectors)
def test_slerp_endpoints(a, b):
    x, y = pair(a, b)
    slerp = get_method("slerp")
    assert torch.allclose(slerp.merge([x, y], base_index=0, params={"t": 0.0}), x, atol=1e-3, rtol=1e-4)
    assert torch.allclose(slerp.merge([x, y], base_index=0, params={"t": 1.0}), y, atol=1e-3, rtol=1e-4)


@FAST
@given(vectors, vectors, st.floats(min_value=0, max_value=1))
def test_slerp_of_unit_vectors_stays_on_the_sphere(a, b, t):
    x, y = pair(a, b)
    if x.norm() < 1e-3 or y.norm() < 1e-3:
        return
    x, y = x / x.norm(), y / y.norm()
    if abs(float(x @ y)) > 0.9995:  # the linear branch leaves the sphere by design
        return
    out = get_method("slerp").merge([x, y], base_index=0, params={"t": t})
    assert abs(out.norm().item() - 1) < 1e-3


@FAST
@given(vectors, vectors, weights)
def test_ties_with_one_model_and_density_one_is_task_arithmetic(a, b, w):
    base, model = pair(a, b)
    mp = [{}, {"weight": w}]
    ties = get_method("ties").merge([base, model], base_index=0, model_params=mp, params={"normalize": False})
    ta = get_method("task_arithmetic").merge([base, model], base_index=0, model_params=mp)
    assert torch.allclose(ties, ta, atol=1e-4, rtol=1e-5)
    # with normalize, one model's weight cancels: the model itself
    normalized = get_method("ties").merge([base, model], base_index=0, model_params=mp)
    assert torch.allclose(normalized, model, atol=1e-3, rtol=1e-4)


@FAST
@given(vectors, vectors, vectors)
def test_lambda_zero_returns_the_base(a, b, c):
    n = min(len(a), len(b), len(c))
    base, m1, m2 = (torch.tensor(v[:n]) for v in (a, b, c))
    mp = [{}, {"weight": 1.0, "density": 0.5}, {"weight": 1.0, "density": 0.5}]
    for name in ("task_arithmetic", "ties", "dare_ties", "breadcrumbs"):
        out = get_method(name).merge([base, m1, m2], base_index=0, model_params=mp, params={"lambda": 0.0})
        assert torch.equal(out, base), name


@FAST
@given(vectors, st.integers(min_value=2, max_value=4))
def test_spherical_means_of_equal_inputs_are_the_input(values, count):
    x = torch.tensor(values)
    mp = [{"weight": 1.0}] * count
    assert torch.allclose(get_method("karcher").merge([x] * count), x, atol=1e-3, rtol=1e-4)
    assert torch.allclose(get_method("multislerp").merge([x] * count, model_params=mp), x, atol=1e-3, rtol=1e-4)


@FAST
@given(vectors, st.floats(min_value=0.0, max_value=1.0))
def test_magnitude_trim_keeps_exactly_k_largest(values, density):
    from graftkit.merge.methods.sparsify import magnitude

    x = torch.tensor(values)
    out = magnitude(x, density)
    if density >= 1:
        assert torch.equal(out, x)
        return
    k = 0 if density <= 0 else max(1, int(density * x.numel()))
    kept = (out != 0).sum().item()
    assert kept <= k
    if k:
        # nothing dropped is larger than anything kept
        mask = out != 0
        dropped = x.abs()[~mask]
        if mask.any() and dropped.numel():
            assert dropped.max() <= x.abs()[mask].min()
