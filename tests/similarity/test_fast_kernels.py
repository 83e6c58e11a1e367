"""The fast routes of the metric kernels give the same numbers as the plain formulas."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist, squareform
from scipy.stats import rankdata

from graftkit.errors import ConfigError
from graftkit.similarity import cka as cka_mod
from graftkit.similarity.cka import cka_from_grams, gram_rbf, rbf_cka
from graftkit.similarity.metrics import minibatch_cka
from graftkit.similarity.precision import FLOAT32_TOLERANCE, product_dtype
from graftkit.similarity.procrustes import procrustes_similarity
from graftkit.similarity.ranks import average_ranks
from graftkit.similarity.rsa import rdm, rdm_upper, upper_triangle
from graftkit.similarity.streaming import MinibatchCKA

rsa_mod = importlib.import_module("graftkit.similarity.rsa")  # the package exports a function of that name


@pytest.mark.parametrize("values", [
    np.array([0.0, -0.0, 1.0, -1.0, -0.0, 2.5, 2.5]),
    np.round(np.random.default_rng(0).normal(size=20_000), 2),  # many ties, negatives
    np.random.default_rng(1).uniform(0.5, 0.5 + 1e-9, size=100_000),  # truncated keys collide
])
def test_average_ranks_equal_scipy(values):
    assert np.array_equal(average_ranks(torch.from_numpy(values)).numpy() + 1, rankdata(values))


@pytest.mark.parametrize("method", ["correlation", "euclidean"])
def test_rdm_upper_is_the_upper_triangle(method, monkeypatch):
    monkeypatch.setattr(rsa_mod, "ROW_BLOCK", 64)  # several blocks, the last one partial
    x = np.random.default_rng(2).normal(size=(150, 9))
    expected = upper_triangle(rdm(x, method)).numpy()
    np.testing.assert_allclose(rdm_upper(x, method).numpy(), expected, atol=1e-12)
    np.testing.assert_allclose(rdm_upper(x, method).numpy(),
                               pdist(x, "correlation" if method == "correlation" else "euclidean"), atol=1e-10)


@pytest.mark.parametrize("n", [201, 256])  # odd and even number of matrix entries
def test_median_from_upper_triangle_is_numpys_median(n, monkeypatch):
    monkeypatch.setattr(cka_mod, "ROW_BLOCK", 64)
    x = torch.from_numpy(np.random.default_rng(n).normal(size=(n, 4)))
    blocks, upper = cka_mod._squared_distance_blocks(x, (x * x).sum(1))
    full = squareform(pdist(x.numpy(), "sqeuclidean"))
    np.testing.assert_allclose(np.sort(upper), np.sort(full[np.triu_indices(n, 1)]), atol=1e-12)
    assert cka_mod._median_from_upper(upper, n) == pytest.approx(float(np.median(full)), abs=1e-12)
    assert float(blocks.row_sums()[3]) == pytest.approx(full[3].sum(), abs=1e-9)


def test_rbf_cka_block_route_equals_full_gram_formula(monkeypatch):
    monkeypatch.setattr(cka_mod, "ROW_BLOCK", 96)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(301, 12)) * rng.uniform(0.2, 3, size=12) + 5.0
    y = np.tanh(x @ rng.normal(size=(12, 7))) + 0.3 * rng.normal(size=(301, 7))
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    expected = cka_from_grams(gram_rbf(xt, 0.5), gram_rbf(yt, 0.5))
    assert rbf_cka(x, y, threshold=0.5, precision="float64") == pytest.approx(expected, abs=1e-12)


def test_float32_route_stays_within_the_documented_tolerance():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(700, 40)) * rng.uniform(0.1, 5, size=40) + 3.0
    y = x @ rng.normal(size=(40, 30)) / 5 + rng.normal(size=(700, 30))
    for metric in (rbf_cka, procrustes_similarity, minibatch_cka):
        exact = metric(x, y, precision="float64")
        fast = metric(x, y, precision="float32")
        assert abs(fast - exact) <= FLOAT32_TOLERANCE, metric.__name__
        assert fast != exact or metric is procrustes_similarity  # the float32 route really ran
    assert product_dtype("auto", 10_000 * 10_000 * 768) == torch.float32
    assert product_dtype("auto", 500 * 500 * 768) == torch.float64
    with pytest.raises(ConfigError):
        product_dtype("half", 1)


@pytest.mark.parametrize("n", [1000, 1003, 1006])  # last chunk: none, skipped (< 4 samples), kept
def test_batched_minibatch_cka_equals_streaming_accumulator(n):
    rng = np.random.default_rng(n)
    x = rng.normal(size=(n, 20)) + 2.0
    y = x[:, :10] ** 2 + rng.normal(size=(n, 10))
    acc = MinibatchCKA(["x"], ["y"])
    for start in range(0, n, 100):
        acc.update([torch.from_numpy(x[start : start + 100])], [torch.from_numpy(y[start : start + 100])])
    assert minibatch_cka(x, y, batch_size=100, precision="float64") == pytest.approx(
        float(acc.value()[0, 0]), abs=1e-10)


def test_nan_is_still_refused_by_the_fast_finiteness_check():
    from graftkit.errors import DataError

    x = np.random.default_rng(5).normal(size=(50, 4))
    x[7, 2] = np.nan
    with pytest.raises(DataError, match="sample 7"):
        rbf_cka(x, x)
    with pytest.raises(DataError, match="constant"):  # a dead layer on the float32 route too
        procrustes_similarity(np.ones((50, 3)), np.nan_to_num(x), precision="float32")
    from graftkit.similarity.checks import as_features

    big = np.full((50, 4), 1e308)  # the sum overflows to inf, yet every value is finite
    assert as_features(big).shape == (50, 4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_chunk_grams_equal_the_general_product_and_leave_inputs_alone(dtype):
    from graftkit.similarity.symmetric import chunk_grams

    chunks = torch.randn(3, 9, 5, generator=torch.Generator().manual_seed(0), dtype=dtype)
    grams = chunk_grams(chunks)
    torch.testing.assert_close(grams, torch.bmm(chunks, chunks.transpose(1, 2)))
    torch.testing.assert_close(grams, grams.transpose(1, 2), rtol=0, atol=0)  # both triangles filled
    x = torch.randn(40, 6, dtype=dtype) + 5.0
    before = x.clone()
    minibatch_cka(x, x * 2.0, batch_size=8, precision="float32")
    minibatch_cka(x, x * 2.0, batch_size=8, precision="float64")
    assert torch.equal(x, before)  # chunks are centered on copies


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_column_gram_equals_the_general_product_for_any_layout(dtype):
    from graftkit.similarity.symmetric import column_gram

    x = torch.randn(30, 7, generator=torch.Generator().manual_seed(1), dtype=dtype)
    for view in (x, x[::2], x.T.contiguous().T):  # contiguous, strided rows, column-major
        gram = column_gram(view)
        torch.testing.assert_close(gram, view.T @ view)
        torch.testing.assert_close(gram, gram.T, rtol=0, atol=0)  # both triangles filled
    w = x.clone().requires_grad_(True)  # autograd keeps the torch product
    column_gram(w).sum().backward()
    assert w.grad is not None
    half = torch.randn(10, 3).half()
    torch.testing.assert_close(column_gram(half), half.T @ half)
