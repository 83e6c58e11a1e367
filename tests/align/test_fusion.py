"""OT fusion across widths, CCA alignment and zip-merging on tiny MLPs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from .conftest import fit, make_mlp, teacher_data
from graftkit.align import permute_model, random_permutation, spec_for
from graftkit.align.cca import cca_align, cca_transform
from graftkit.align.interpolate import evaluate_classifier
from graftkit.align.ot import ot_fuse, transport_plan
from graftkit.align.zip import permute_match, zip_match, zip_merge
from graftkit.errors import AlignmentError


def widened(narrow: nn.Sequential, seed: int) -> nn.Sequential:
    """A 2x wider copy computing exactly what ``narrow`` computes: every unit duplicated, outgoing weights halved."""
    gen = torch.Generator().manual_seed(seed)
    w = narrow[0].out_features
    wide = make_mlp(seed, width=2 * w)
    src1 = (torch.arange(2 * w) % w)[torch.randperm(2 * w, generator=gen)]
    src2 = (torch.arange(2 * w) % w)[torch.randperm(2 * w, generator=gen)]
    with torch.no_grad():
        wide[0].weight.copy_(narrow[0].weight[src1])
        wide[0].bias.copy_(narrow[0].bias[src1])
        wide[2].weight.copy_(narrow[2].weight[src2][:, src1] / 2)
        wide[2].bias.copy_(narrow[2].bias[src2])
        wide[4].weight.copy_(narrow[4].weight[:, src2] / 2)
        wide[4].bias.copy_(narrow[4].bias)
    return wide.eval()


def test_transport_plan_marginals():
    cost = torch.rand(8, 4, generator=torch.Generator().manual_seed(0))
    for exact in (True, False):
        plan = transport_plan(cost, exact=exact, reg=0.05)
        torch.testing.assert_close(plan.sum(1), torch.full((8,), 1 / 8, dtype=plan.dtype), atol=1e-6, rtol=0)
        torch.testing.assert_close(plan.sum(0), torch.full((4,), 1 / 4, dtype=plan.dtype), atol=1e-6, rtol=0)


@pytest.mark.parametrize("cost", ["activation", "weight"])
def test_ot_fusion_compresses_a_duplicated_wide_model_exactly(cost):
    narrow = make_mlp(0, width=8).eval()
    wide = widened(narrow, 1)
    x = torch.randn(300, 16)
    torch.testing.assert_close(wide(x), narrow(x), atol=1e-5, rtol=0)
    fused = ot_fuse(wide, narrow, [x[:150], x[150:]], cost=cost, narrow_weight=0.0).model
    assert fused[0].weight.shape == narrow[0].weight.shape
    torch.testing.assert_close(fused(x), narrow(x), atol=1e-5, rtol=0)


def test_ot_fusion_of_trained_models_with_repair(task):
    x, y, xt, yt = task
    narrow = fit(make_mlp(0, width=16), x, y, seed=0)
    wide = fit(make_mlp(1, width=48), x, y, seed=1)
    batches = [x[i:i + 500] for i in range(0, len(x), 500)]
    plain = ot_fuse(wide, narrow, batches)
    fixed = ot_fuse(wide, narrow, batches, repair_batches=batches)
    acc = lambda m: evaluate_classifier(m, [(xt, yt)])[1]  # noqa: E731
    chance = 1 / 4
    assert acc(fixed.model) > chance + 0.2
    assert set(plain.transports) == {"P0", "P1"} and plain.transports["P0"].shape == (48, 16)


def test_ot_fusion_refuses_different_depths():
    a = make_mlp(0, width=16)
    b = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 4))
    with pytest.raises(AlignmentError, match="one depth"):
        ot_fuse(a, b, cost="weight")


def test_cca_of_a_permuted_copy_is_that_permutation(trained_pair, task):
    a, _ = trained_pair
    spec = spec_for(a)
    b = permute_model(a, spec, random_permutation(spec, 2))
    aligned = cca_align(a, b, [task[0]])
    x = task[2]
    torch.testing.assert_close(aligned(x), a(x), atol=1e-4, rtol=0)


def test_cca_transform_maps_b_onto_a():
    gen = torch.Generator().manual_seed(0)
    xa = torch.randn(2000, 5, generator=gen, dtype=torch.float64)
    mix = torch.randn(5, 5, generator=gen, dtype=torch.float64)
    xb = xa @ mix  # B holds A's features under an invertible linear map
    xa, xb = xa - xa.mean(0), xb - xb.mean(0)
    t = cca_transform({"aa": xa.T @ xa / 2000, "bb": xb.T @ xb / 2000, "ab": xa.T @ xb / 2000}, eps=1e-10)
    torch.testing.assert_close(xb @ t, xa, atol=1e-5, rtol=0)


def test_zip_match_shapes_and_budget():
    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(500, 12, generator=gen)
    corr = torch.corrcoef(feats.T)
    u = zip_match(corr, alpha=0.3, beta=0.5)
    assert u.shape == (12, 6) and torch.equal(u.sum(1), torch.ones(12, dtype=u.dtype))  # each unit in one group
    p = permute_match(corr)
    assert torch.equal(p[:6].sum(1), torch.ones(6, dtype=p.dtype)) and torch.equal(p.sum(0), torch.full((6,), 2.0, dtype=p.dtype))


def test_zip_of_a_model_with_itself_keeps_its_function(trained_pair, task):
    a, _ = trained_pair
    x = task[0]
    result = zip_merge(a, a, [x], matcher="permute")
    out = result.model(task[2])
    torch.testing.assert_close(out[:, :4], a(task[2]), atol=1e-4, rtol=0)
    torch.testing.assert_close(out[:, 4:], a(task[2]), atol=1e-4, rtol=0)


def test_zip_two_tasks_partial_and_full():
    x, y = teacher_data(3000, seed=7)
    first, second = y < 2, y >= 2  # two disjoint label sets: a 2+2 split of the 4 classes
    a = fit(make_mlp(0, classes=2), x[first], y[first], seed=0)
    b = fit(make_mlp(1, classes=2), x[second], y[second] - 2, seed=1)
    batches = [x[:1000]]
    full = zip_merge(a, b, batches)
    partial = zip_merge(a, b, batches, stop_at=1)
    assert len([m for m in full.model.trunk if isinstance(m, nn.Linear)]) == 2
    assert len([m for m in partial.model.trunk if isinstance(m, nn.Linear)]) == 1
    xt, yt = x[2000:], y[2000:]
    acc = lambda m: (m(xt).argmax(1) == yt).float().mean().item()  # noqa: E731
    assert acc(partial.model) > 0.4 and acc(full.model) > 0.3  # chance is 0.25
    assert 0.0 <= min(full.cross_model_share().values()) <= 1.0
    with pytest.raises(AlignmentError, match="stop_at"):
        zip_merge(a, b, batches, stop_at=5)
