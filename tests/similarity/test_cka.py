from __future__ import annotations

import numpy as np
import pytest
import torch

from graftkit.errors import DataError, ShapeMismatchError
from graftkit.similarity import debiased_cka, linear_cka, rbf_cka
from graftkit.similarity.cka import cka_from_grams, gram_linear


def test_golden_linear_cka(golden_xy):
    x, y = golden_xy
    assert linear_cka(x, y) == pytest.approx(0.55761, abs=5e-6)


def test_golden_rbf_cka_half_median(golden_xy):
    x, y = golden_xy
    assert rbf_cka(x, y, threshold=0.5) == pytest.approx(0.65483, abs=5e-6)


def test_golden_debiased_linear_cka(golden_xy):
    x, y = golden_xy
    assert debiased_cka(x, y) == pytest.approx(0.51346, abs=5e-6)


def test_feature_space_equals_gram_form(golden_xy):
    x, y = golden_xy
    xt = torch.from_numpy(x - x.mean(0))
    yt = torch.from_numpy(y - y.mean(0))
    assert linear_cka(x, y) == pytest.approx(cka_from_grams(gram_linear(xt), gram_linear(yt)), abs=1e-12)
    assert debiased_cka(x, y) == pytest.approx(
        cka_from_grams(gram_linear(xt), gram_linear(yt), debiased=True), abs=1e-12
    )


def test_wide_features_use_gram_form_and_agree():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20, 50, generator=g, dtype=torch.float64)
    y = x @ torch.randn(50, 30, generator=g, dtype=torch.float64)
    xc, yc = x - x.mean(0), y - y.mean(0)
    expected = torch.linalg.matrix_norm(yc.T @ xc) ** 2 / (
        torch.linalg.matrix_norm(xc.T @ xc) * torch.linalg.matrix_norm(yc.T @ yc)
    )
    assert linear_cka(x, y) == pytest.approx(float(expected), abs=1e-12)


def test_nan_activation_names_the_layer():
    x = np.random.default_rng(0).normal(size=(50, 8))
    y = x.copy()
    y[3, 2] = np.nan
    with pytest.raises(DataError, match=r"layer 'block\.3'.*NaN"):
        linear_cka(x, y, names=("block.1", "block.3"))


def test_sample_mismatch_and_constant_layer():
    x = np.random.default_rng(0).normal(size=(50, 8))
    with pytest.raises(ShapeMismatchError, match="same inputs"):
        linear_cka(x, x[:40])
    with pytest.raises(DataError, match="zero variance"):
        linear_cka(x, np.ones((50, 4)), names=("a", "dead"))
