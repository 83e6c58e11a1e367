from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.linalg import orthogonal_procrustes
from scipy.spatial.distance import pdist
from scipy.stats import spearmanr

from graftkit.errors import ConfigError, DataError, ShapeMismatchError
from graftkit.similarity import cca as cca_mod
from graftkit.similarity import debiased_cka, linear_cka
from graftkit.similarity.metrics import METRICS, get_metric, minibatch_cka
from graftkit.similarity.procrustes import procrustes_distance
from graftkit.similarity.rsa import average_ranks, rdm, rsa, upper_triangle
from graftkit.similarity.streaming import GramAccumulator, MinibatchCKA
from graftkit.similarity.weights import weight_correlation, weight_correlations


def _qr_canonical(x, y):
    """Independent reference: canonical correlations from QR bases (numpy)."""
    qx, _ = np.linalg.qr(x)
    qy, _ = np.linalg.qr(y)
    a, s, _ = np.linalg.svd(qx.T @ qy)
    return qx, a, s


def test_golden_cca_r2(golden_xy):
    x, y = golden_xy
    # the CKA notebook's 0.54312 runs CCA on uncentered data
    assert cca_mod.cca_r2(x, y, center=False) == pytest.approx(0.54312, abs=5e-6)
    xc, yc = x - x.mean(0), y - y.mean(0)
    _, _, s = _qr_canonical(xc, yc)
    assert cca_mod.cca_r2(x, y) == pytest.approx(float((s**2).mean()), abs=1e-10)


def test_svcca_full_variance_is_mean_canonical_correlation(golden_xy):
    x, y = golden_xy
    _, _, s = _qr_canonical(x - x.mean(0), y - y.mean(0))
    assert cca_mod.svcca(x, y, keep_variance=1.0) == pytest.approx(float(s.mean()), abs=1e-10)
    assert cca_mod.svcca(x, y, dims=10) == pytest.approx(float(s.mean()), abs=1e-10)


def test_svcca_ignores_low_variance_noise_directions():
    rng = np.random.default_rng(0)
    signal = rng.normal(size=(400, 4)) * 10
    x = np.hstack([signal, rng.normal(size=(400, 20)) * 0.01])
    y = np.hstack([signal @ rng.normal(size=(4, 4)), rng.normal(size=(400, 30)) * 0.01])
    assert cca_mod.svcca(x, y) > 0.999
    assert cca_mod.cca_r2(x, y) < 0.6  # plain CCA is diluted by the unrelated noise directions


def test_pwcca_matches_paper_definition():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 12))
    y = x[:, :6] @ rng.normal(size=(6, 8)) + 0.7 * rng.normal(size=(300, 8))
    xc, yc = x - x.mean(0), y - y.mean(0)
    qx, a, s = _qr_canonical(xc, yc)
    variates = qx @ a[:, : len(s)]
    weights = np.abs(variates.T @ xc).sum(1)
    expected = float((weights / weights.sum() * s).sum())
    assert cca_mod.pwcca(x, y) == pytest.approx(expected, abs=1e-8)
    assert cca_mod.pwcca(x, x) == pytest.approx(1.0, abs=1e-9)


def test_too_few_samples_for_cca_family_names_layer_and_fix():
    x = np.random.default_rng(0).normal(size=(50, 64))
    for fn in (cca_mod.cca_r2, cca_mod.svcca, cca_mod.pwcca):
        with pytest.raises(DataError, match=r"layer 'block\.2'.*50 samples x 64 features.*at least 65 inputs"):
            fn(x, x, names=("block.2", "block.5"))
    assert linear_cka(x, x) == pytest.approx(1.0)  # CKA has no such limit


def test_rank_deficient_features_do_not_inflate_cca():
    rng = np.random.default_rng(2)
    base = rng.normal(size=(200, 5))
    x = np.hstack([base, base @ rng.normal(size=(5, 5))])  # rank 5 in 10 columns
    y = rng.normal(size=(200, 5))
    assert cca_mod.cca_r2(x, y) < 0.1


def test_rdm_and_rsa_match_scipy():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(30, 7))
    y = x + rng.normal(size=(30, 7))
    rx = upper_triangle(rdm(x)).numpy()
    np.testing.assert_allclose(rx, pdist(x, metric="correlation"), atol=1e-12)
    ry = upper_triangle(rdm(y, "euclidean")).numpy()
    np.testing.assert_allclose(ry, pdist(y), atol=1e-10)
    expected = spearmanr(pdist(x, "correlation"), pdist(y, "correlation")).statistic
    assert rsa(x, y) == pytest.approx(expected, abs=1e-12)
    expected_p = np.corrcoef(pdist(x, "correlation"), pdist(y, "correlation"))[0, 1]
    assert rsa(x, y, correlation="pearson") == pytest.approx(expected_p, abs=1e-12)


def test_average_ranks_handle_ties():
    from scipy.stats import rankdata

    v = torch.tensor([3.0, 1.0, 3.0, 2.0, 1.0, 3.0], dtype=torch.float64)
    np.testing.assert_allclose(average_ranks(v).numpy() + 1, rankdata(v.numpy()))


def test_procrustes_matches_scipy_residual():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(60, 6))
    y = x @ rng.normal(size=(6, 6)) + rng.normal(size=(60, 6))
    xn = (x - x.mean(0)) / np.linalg.norm(x - x.mean(0))
    yn = (y - y.mean(0)) / np.linalg.norm(y - y.mean(0))
    r, _ = orthogonal_procrustes(yn, xn)
    residual = np.linalg.norm(xn - yn @ r) ** 2
    assert procrustes_distance(x, y) == pytest.approx(residual, abs=1e-10)
    assert procrustes_distance(x, 3 * x) == pytest.approx(0.0, abs=1e-12)


def test_weight_correlation():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(8, 5, generator=g)
    b = a + 0.5 * torch.randn(8, 5, generator=g)
    expected = np.corrcoef(a.flatten().numpy(), b.flatten().numpy())[0, 1]
    assert weight_correlation(a, b) == pytest.approx(expected, abs=1e-6)
    with pytest.raises(ShapeMismatchError, match=r"tensor 'w'.*align the models first"):
        weight_correlation(a, b.T, name="w")
    out = weight_correlations({"w": a, "ln": torch.ones(5), "x": a[:2]}, {"w": b, "ln": torch.ones(5), "x": a})
    assert list(out) == ["w"]


def test_gram_accumulator_is_exact_over_batches():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(500, 16)) + 3.0
    y = x @ rng.normal(size=(16, 9)) + rng.normal(size=(500, 9))
    acc = GramAccumulator(("a", "b"))
    for start in range(0, 500, 64):
        acc.update(x[start : start + 64], y[start : start + 64])
    assert acc.n == 500
    assert acc.value() == pytest.approx(linear_cka(x, y), abs=1e-10)


def test_minibatch_cka_single_batch_equals_debiased_and_converges():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(2048, 8))
    y = x @ rng.normal(size=(8, 8)) + rng.normal(size=(2048, 8))
    one = MinibatchCKA(["x"], ["y"])
    one.update([x[:200]], [y[:200]])
    assert float(one.value()[0, 0]) == pytest.approx(debiased_cka(x[:200], y[:200]), abs=1e-10)
    assert minibatch_cka(x, y, batch_size=128) == pytest.approx(linear_cka(x, y), abs=0.02)


def test_minibatch_cka_matrix_layout_and_small_batches():
    rng = np.random.default_rng(7)
    a = [rng.normal(size=(10, 4)) for _ in range(2)]
    b = [rng.normal(size=(10, 3)) for _ in range(3)]
    acc = MinibatchCKA(["a0", "a1"], ["b0", "b1", "b2"])
    acc.update(a, b)
    acc.update([t[:3] for t in a], [t[:3] for t in b])
    assert acc.value().shape == (2, 3) and acc.batches == 1 and acc.skipped == 1
    assert float(acc.value()[0, 0]) == pytest.approx(debiased_cka(a[0], b[0]), abs=1e-10)


def test_registry_and_suggestions():
    assert {"linear_cka", "rbf_cka", "debiased_cka", "minibatch_cka", "cca", "svcca", "pwcca",
            "rsa", "rsa_pearson", "procrustes"} <= set(METRICS)
    with pytest.raises(ConfigError, match="did you mean linear_cka"):
        get_metric("linear_ckaa")
    x = np.random.default_rng(8).normal(size=(50, 5))
    for metric in METRICS.values():
        assert metric(x, x) == pytest.approx(1.0, abs=1e-6), metric.name
