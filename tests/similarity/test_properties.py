"""Property tests: the invariances each metric promises, on random data drawn by hypothesis."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graftkit.similarity.cca import cca_r2, svcca
from graftkit.similarity.metrics import METRICS
from graftkit.similarity.procrustes import procrustes_similarity
from graftkit.similarity.rsa import rsa

SETTINGS = settings(max_examples=20, deadline=None)


@st.composite
def pairs(draw):
    """(X, Y, rng): n samples x d features, Y related to X plus noise, n > 2d so CCA applies."""
    seed = draw(st.integers(0, 2**32 - 1))
    d1 = draw(st.integers(2, 8))
    d2 = draw(st.integers(2, 8))
    n = draw(st.integers(2 * max(d1, d2) + 5, 60))
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d1)) * rng.uniform(0.5, 2.0, size=d1)
    y = x @ rng.normal(size=(d1, d2)) + draw(st.floats(0.1, 2.0)) * rng.normal(size=(n, d2))
    return x, y, rng


def _orthogonal(rng, d):
    q, r = np.linalg.qr(rng.normal(size=(d, d)))
    return q * np.sign(np.diag(r))


def _rsa_euclidean(x, y):
    return rsa(x, y, method="euclidean")


# metric, invariant to orthogonal maps and isotropic scaling, symmetric
INVARIANT = {
    "linear_cka": METRICS["linear_cka"],
    "rbf_cka": METRICS["rbf_cka"],
    "debiased_cka": METRICS["debiased_cka"],
    "cca": METRICS["cca"],
    "svcca": METRICS["svcca"],
    "procrustes": METRICS["procrustes"],
    "rsa_euclidean": _rsa_euclidean,
}


@pytest.mark.parametrize("name", list(INVARIANT))
@SETTINGS
@given(data=pairs(), scale=st.floats(0.01, 100.0))
def test_invariant_to_orthogonal_maps_and_isotropic_scaling(name, data, scale):
    x, y, rng = data
    metric = INVARIANT[name]
    before = metric(x, y)
    after = metric(scale * x @ _orthogonal(rng, x.shape[1]), y @ _orthogonal(rng, y.shape[1]) / scale)
    assert after == pytest.approx(before, abs=1e-7)


@pytest.mark.parametrize("name", list(METRICS))
@SETTINGS
@given(data=pairs())
def test_self_similarity_one_bounded_and_symmetric(name, data):
    x, y, _ = data
    metric = METRICS[name]
    assert metric(x, x) == pytest.approx(1.0, abs=1e-7)
    value = metric(x, y)
    assert -1.0 - 1e-9 <= value <= 1.0 + 1e-9
    if metric.symmetric:
        assert metric(y, x) == pytest.approx(value, abs=1e-8)


@SETTINGS
@given(data=pairs())
def test_cka_not_invariant_to_general_linear_maps_but_cca_is(data):
    x, _, rng = data
    d = x.shape[1]
    # a well-conditioned but strongly anisotropic invertible map
    stretch = _orthogonal(rng, d) @ np.diag(np.geomspace(1.0, 30.0, d)) @ _orthogonal(rng, d)
    stretched = x @ stretch
    assert METRICS["linear_cka"](x, stretched) < 0.999
    assert procrustes_similarity(x, stretched) < 0.999
    assert cca_r2(x, stretched) == pytest.approx(1.0, abs=1e-7)
    assert svcca(x, stretched, keep_variance=1.0) == pytest.approx(1.0, abs=1e-7)
