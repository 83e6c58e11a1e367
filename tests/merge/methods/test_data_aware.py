"""Fisher merging and RegMean: closed forms worked out in each test."""

from __future__ import annotations

import math

import pytest
import torch

from graftkit.errors import MergeError
from graftkit.merge.methods import get_method


def fisher(tensors, fishers, weights=None, **params):
    weights = weights or [1.0] * len(tensors)
    mp = [{"weight": w, "fisher": f, "fisher_norm": float(f.norm())} for w, f in zip(weights, fishers)]
    return get_method("fisher").merge(tensors, model_params=mp, params=params)


def test_fisher_unnormalized_closed_form():
    # entry 0: (1*1 + 1*3) / 2 = 2 ; entry 1: model 1 has no information (floored to 1e-6)
    # -> (1e-6 * 2 + 1 * 6) / (1 + 1e-6)
    out = fisher([torch.tensor([1.0, 2.0]), torch.tensor([3.0, 6.0])],
                 [torch.tensor([1.0, 0.0]), torch.tensor([1.0, 1.0])], normalize_fisher=False)
    assert torch.allclose(out, torch.tensor([2.0, (2e-6 + 6) / (1 + 1e-6)]))


def test_fisher_normalized_closed_form():
    # ||F1|| = 1, ||F2|| = sqrt(2): F2 / ||F2|| = [1/sqrt2, 1/sqrt2]; weights 2 and 1
    r = 1 / math.sqrt(2)
    out = fisher([torch.tensor([1.0, 2.0]), torch.tensor([3.0, 6.0])],
                 [torch.tensor([1.0, 0.0]), torch.tensor([1.0, 1.0])], weights=[2.0, 1.0])
    e0 = (2 * 1 * 1 + r * 3) / (2 + r)
    e1 = (2 * 1e-6 * 2 + r * 6) / (2 * 1e-6 + r)
    assert torch.allclose(out, torch.tensor([e0, e1]))


def test_fisher_with_equal_fishers_is_the_weighted_mean():
    torch.manual_seed(0)
    xs = [torch.randn(5, 4) for _ in range(3)]
    f = torch.rand(5, 4) + 0.1
    out = fisher(xs, [f, f, f], weights=[1.0, 2.0, 1.0], normalize_fisher=False)
    assert torch.allclose(out, (xs[0] + 2 * xs[1] + xs[2]) / 4, atol=1e-6)


def test_fisher_without_statistics_averages_and_partial_statistics_fail():
    xs = [torch.zeros(3), torch.ones(3)]
    out = get_method("fisher").merge(xs, model_params=[{}, {}])
    assert torch.allclose(out, torch.full((3,), 0.5))
    with pytest.raises(MergeError, match="no Fisher"):
        get_method("fisher").merge(xs, model_params=[{"fisher": torch.ones(3), "fisher_norm": 1.0}, {}])


def test_fisher_leaves_the_base_out():
    xs = [torch.full((2,), 100.0), torch.zeros(2), torch.ones(2)]
    out = get_method("fisher").merge(xs, base_index=0, model_params=[{}, {}, {}])
    assert torch.allclose(out, torch.full((2,), 0.5))


def regmean(weights, grams, model_weights=None, alpha=1.0):
    model_weights = model_weights or [1.0] * len(weights)
    mp = [{"weight": w, "gram": g} for w, g in zip(model_weights, grams)]
    return get_method("regmean").merge(weights, model_params=mp, params={"alpha": alpha})


def test_regmean_exact_regression_matches_least_squares():
    # alpha = 1: W minimises sum_i ||X_i W^T - X_i W_i^T||^2, the least-squares fit on stacked data
    g = torch.Generator().manual_seed(0)
    xs = [torch.randn(40, 6, generator=g, dtype=torch.float64) for _ in range(2)]
    ws = [torch.randn(3, 6, generator=g, dtype=torch.float64) for _ in range(2)]
    grams = [x.T @ x / 40 for x in xs]
    out = regmean(ws, grams)
    stacked_x = torch.cat(xs)
    stacked_y = torch.cat([x @ w.T for x, w in zip(xs, ws)])
    expected = torch.linalg.lstsq(stacked_x, stacked_y).solution.T
    assert torch.allclose(out, expected, atol=1e-8)


def test_regmean_alpha_zero_is_a_per_feature_weighted_mean():
    # diagonal Grams: W[:, j] = sum_i g_ij W_i[:, j] / sum_i g_ij
    w1 = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    w2 = torch.tensor([[5.0, 6.0], [7.0, 8.0]])
    g1 = torch.tensor([[1.0, 0.7], [0.7, 3.0]])
    g2 = torch.tensor([[3.0, -0.2], [-0.2, 1.0]])
    out = regmean([w1, w2], [g1, g2], alpha=0.0)
    expected = torch.stack([(1 * w1[:, 0] + 3 * w2[:, 0]) / 4, (3 * w1[:, 1] + 1 * w2[:, 1]) / 4], dim=1)
    assert torch.allclose(out, expected)


def test_regmean_identity_grams_give_the_mean_and_one_model_gives_itself():
    torch.manual_seed(1)
    w1, w2 = torch.randn(4, 3), torch.randn(4, 3)
    eye = torch.eye(3)
    assert torch.allclose(regmean([w1, w2], [eye, eye], alpha=0.5), (w1 + w2) / 2, atol=1e-6)
    g = torch.rand(3, 3)
    assert torch.allclose(regmean([w1], [g @ g.T + eye]), w1, atol=1e-5)


def test_regmean_singular_gram_falls_back_to_pseudo_inverse():
    w1, w2 = torch.ones(2, 2), 3 * torch.ones(2, 2)
    zero = torch.zeros(2, 2)
    out = regmean([w1, w2], [zero, zero])
    assert torch.isfinite(out).all()


def test_regmean_non_linear_tensors_are_averaged():
    out = get_method("regmean").merge([torch.zeros(4), torch.ones(4)], model_params=[{}, {}])
    assert torch.allclose(out, torch.full((4,), 0.5))
