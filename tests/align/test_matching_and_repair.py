"""Activation matching, interpolation barriers, REPAIR and BatchNorm reset on tiny trained MLPs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from graftkit.align import permute_model, random_permutation, recovered_fraction, spec_for, state_tensors, weight_matching
from graftkit.align.activation_matching import activation_matching
from graftkit.align.interpolate import evaluate_classifier, interpolate_model, interpolation_curve, loss_barrier
from graftkit.align.repair import channel_stats, repair, reset_batchnorm
from graftkit.errors import AlignmentError


def _batches(x, size=500):
    return [x[i:i + size] for i in range(0, len(x), size)]


def test_activation_matching_recovers_planted_permutation(task):
    from .conftest import make_mlp

    a = make_mlp(3).eval()  # untrained: no dead ReLU units, whose order cannot be recovered (nor matters)
    spec = spec_for(a)
    planted = random_permutation(spec, seed=4)
    b = permute_model(a, spec, planted)
    result = activation_matching(spec, a, b, _batches(task[0]))
    assert min(recovered_fraction(spec, planted, result.perm).values()) == 1.0


def test_loss_barrier_definition():
    assert loss_barrier([1.0, 2.0, 3.0]) == pytest.approx(1.0)  # max 3 - mean(1, 3)
    assert loss_barrier([0.5, 0.4, 0.5]) == pytest.approx(0.0)


def test_matching_lowers_the_barrier_and_repair_helps(trained_pair, task):
    a, b = trained_pair
    x, _, xt, yt = task
    test = [(xt, yt)]
    evaluate = lambda m: evaluate_classifier(m, test)  # noqa: E731
    spec = spec_for(a)
    b_wm = permute_model(b, spec, weight_matching(spec, state_tensors(a), state_tensors(b)).perm)
    b_am = permute_model(b, spec, activation_matching(spec, a, b, _batches(x)).perm)
    naive = interpolation_curve(a, b, evaluate, steps=5).barrier
    wm = interpolation_curve(a, b_wm, evaluate, steps=5).barrier
    am = interpolation_curve(a, b_am, evaluate, steps=5).barrier
    assert wm < naive and am < naive
    sites = list(spec.repair_sites.values())
    mid = interpolate_model(a, b_am, 0.5)
    fixed = repair(mid, [a, b_am], [0.5, 0.5], sites, _batches(x))
    # after REPAIR every repaired unit has the interpolated endpoint statistics
    target_a, target_b = channel_stats(a, sites, _batches(x)), channel_stats(b_am, sites, _batches(x))
    after = channel_stats(fixed, sites, _batches(x))
    for site in sites:
        want = 0.5 * (target_a[site][1] + target_b[site][1])
        torch.testing.assert_close(after[site][1], want, atol=1e-4, rtol=1e-3)


def test_reset_batchnorm_recomputes_statistics():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 2)).eval()
    x = torch.randn(400, 8) * 3 + 1
    fixed = reset_batchnorm(model, _batches(x, 100))
    h = model[0](x)
    torch.testing.assert_close(fixed[1].running_mean, h.mean(0).detach(), atol=1e-4, rtol=1e-4)
    assert not fixed.training and fixed[1].momentum == 0.1


def test_nan_activations_name_the_layer(trained_pair, task):
    a, b = trained_pair
    spec = spec_for(a)
    broken = permute_model(b, spec, random_permutation(spec, 0))
    with torch.no_grad():
        broken[2].weight[0, 0] = float("nan")
    with pytest.raises(AlignmentError, match=r"layer '3'.*NaN"):
        activation_matching(spec, a, broken, _batches(task[0]))
