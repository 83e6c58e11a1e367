"""Golden numbers for the task-vector family, worked out by hand in each test."""

from __future__ import annotations

import pytest
import torch

from graftkit.merge.methods import get_method
from graftkit.merge.methods.task_arithmetic import elect_sign_mask

BASE = torch.tensor([0.0, 0.0, 0.0, 0.0])
A = torch.tensor([1.0, -2.0, 3.0, 0.0])
B = torch.tensor([-3.0, 1.0, 1.0, 0.5])


def run(name, tensors, weights, params=None, **per_model):
    model_params = [{}] + [
        {"weight": w, **{k: v[i] for k, v in per_model.items()}} for i, w in enumerate(weights)
    ]
    return get_method(name).merge(tensors, base_index=0, model_params=model_params, params=params or {})


def test_task_arithmetic_closed_form():
    # base + lambda (0.5 A + 1.0 B) = 0.8 * ([0.5,-1,1.5,0] + [-3,1,1,0.5])
    out = run("task_arithmetic", [BASE + 1, A + 1, B + 1], [0.5, 1.0], {"lambda": 0.8})
    assert torch.allclose(out, 1 + 0.8 * torch.tensor([-2.5, 0.0, 2.5, 0.5]))


def test_ties_mergekit_semantics_closed_form():
    # density 1: no trim. weighted deltas: A*1 = [1,-2,3,0], B*2 = [-6,2,2,1]
    # sums [-5,0,5,1] -> signs [-,+,+,+] (0 counts as +)
    # agreeing: e0: B only (-6, w 2) -> -3 ; e1: B (2, w 2) -> 1 ; e2: both (3+2)/(1+2) ; e3: B 1/2
    out = run("ties", [BASE, A, B], [1.0, 2.0])
    assert torch.allclose(out, torch.tensor([-3.0, 1.0, 5 / 3, 0.5]))


def test_ties_paper_semantics_closed_form():
    # unweighted sums [-2,-1,4,0.5] -> signs [-,-,+,+]
    # e0: B agrees -> 2*-3 / 1 = -6 ; e1: A agrees -> 1*-2 / 1 = -2 ;
    # e2: both -> (1*3 + 2*1)/2 = 2.5 ; e3: B -> 2*0.5/1 = 1
    out = run("ties", [BASE, A, B], [1.0, 2.0], {"sign_election": "paper"})
    assert torch.allclose(out, torch.tensor([-6.0, -2.0, 2.5, 1.0]))


def test_ties_trims_to_top_density():
    # density 0.5 of 4 entries keeps 2: A keeps 3,-2 ; B keeps -3 and one of the 1s? |B|=[3,1,1,.5]
    # use distinct magnitudes for B instead
    b = torch.tensor([-3.0, 1.0, 2.0, 0.5])
    out = run("ties", [BASE, A, b], [1.0, 1.0], density=[0.5, 0.5])
    # A' = [0,-2,3,0], B' = [-3,0,2,0]; sums [-3,-2,5,0] -> [-,-,+,+]
    # e0 -3/1, e1 -2/1, e2 (3+2)/2, e3 nothing agrees (zeros) -> 0
    assert torch.allclose(out, torch.tensor([-3.0, -2.0, 2.5, 0.0]))


def test_ties_one_model_density_one_equals_task_arithmetic():
    torch.manual_seed(0)
    base, model = torch.randn(50), torch.randn(50)
    ties = get_method("ties").merge([base, model], base_index=0, model_params=[{}, {"weight": 0.7}], params={"normalize": False})
    ta = get_method("task_arithmetic").merge([base, model], base_index=0, model_params=[{}, {"weight": 0.7}])
    assert torch.allclose(ties, ta, atol=1e-6)


def test_sign_election_counts_zero_sum_as_positive():
    deltas = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    assert elect_sign_mask(deltas).tolist() == [[True, False], [False, False]]


def test_dare_density_zero_returns_base_and_density_one_is_task_arithmetic():
    torch.manual_seed(1)
    base, m1, m2 = torch.randn(3, 20)
    mp = [{}, {"weight": 1.0, "density": 0.0}, {"weight": 1.0, "density": 0.0}]
    assert torch.equal(get_method("dare_linear").merge([base, m1, m2], base_index=0, model_params=mp), base)
    mp = [{}, {"weight": 0.5, "density": 1.0}, {"weight": 0.5, "density": 1.0}]
    out = get_method("dare_linear").merge([base, m1, m2], base_index=0, model_params=mp)
    assert torch.allclose(out, base + 0.5 * (m1 - base) + 0.5 * (m2 - base), atol=1e-6)


def test_dare_rescale_modes():
    # a constant delta of 2.0 over 10000 entries, density 0.25:
    # l1 matching keeps the total L1 mass 20000 exactly; paper scales each kept entry by 4 -> 8.0
    base = torch.zeros(10000)
    model = torch.full((10000,), 2.0)
    g = torch.Generator().manual_seed(0)
    l1 = get_method("dare_linear").merge([base, model], base_index=0, model_params=[{}, {"weight": 1.0, "density": 0.25}], generator=g)
    assert l1.abs().sum().item() == pytest.approx(20000.0, rel=1e-5)
    g = torch.Generator().manual_seed(0)
    paper = get_method("dare_linear").merge(
        [base, model], base_index=0, model_params=[{}, {"weight": 1.0, "density": 0.25}],
        params={"rescale_mode": "paper"}, generator=g,
    )
    kept = paper[paper != 0]
    assert torch.allclose(kept, torch.full_like(kept, 8.0))
    assert 0.2 < kept.numel() / 10000 < 0.3


def test_same_seed_same_output_different_seed_different_output():
    torch.manual_seed(2)
    base, m1, m2 = torch.randn(3, 64, 8)
    mp = [{}, {"weight": 1.0, "density": 0.3}, {"weight": 1.0, "density": 0.3}]
    dare = get_method("dare_ties")
    one = dare.merge([base, m1, m2], base_index=0, model_params=mp, tensor_name="w", seed=5)
    two = dare.merge([base, m1, m2], base_index=0, model_params=mp, tensor_name="w", seed=5)
    three = dare.merge([base, m1, m2], base_index=0, model_params=mp, tensor_name="w", seed=6)
    assert torch.equal(one, two)
    assert not torch.equal(one, three)


def test_breadcrumbs_small_tensor_is_not_zeroed():
    # 10 entries, gamma 0.01 -> int(0.1) = 0 outliers removed; density 0.5 keeps the 5 largest
    base = torch.zeros(10)
    model = torch.arange(1.0, 11.0)
    out = get_method("breadcrumbs").merge([base, model], base_index=0, model_params=[{}, {"weight": 1.0, "density": 0.5}])
    assert out.tolist() == [0, 0, 0, 0, 0, 6, 7, 8, 9, 10]


def test_breadcrumbs_drops_outliers_and_small_entries():
    # 200 entries 1..200, gamma 0.01 -> drop the 2 largest; density 0.5 keeps 100: ranks 99..198
    base = torch.zeros(200)
    model = torch.arange(1.0, 201.0)
    out = get_method("breadcrumbs").merge([base, model], base_index=0, model_params=[{}, {"weight": 1.0, "density": 0.5}])
    assert torch.equal(out.nonzero().flatten(), torch.arange(98, 198))


def test_della_keep_probability_follows_rank():
    base = torch.zeros(1, 20000)
    model = torch.arange(1.0, 20001.0).reshape(1, -1)
    g = torch.Generator().manual_seed(0)
    out = get_method("della_linear").merge(
        [base, model], base_index=0, model_params=[{}, {"weight": 1.0, "density": 0.5, "epsilon": 0.3}],
        params={"rescale": False}, generator=g,
    )
    kept = (out != 0).float().reshape(-1)
    # keep probability rises from 0.2 (smallest) to 0.8 (largest)
    assert kept[:2000].mean().item() == pytest.approx(0.23, abs=0.05)
    assert kept[-2000:].mean().item() == pytest.approx(0.77, abs=0.05)


def test_della_rejects_epsilon_outside_range():
    from graftkit.errors import ConfigError

    with pytest.raises(ConfigError, match="epsilon"):
        run("della", [BASE, A, B], [1.0, 1.0], density=[0.1, 0.1], epsilon=[0.2, 0.2])


@pytest.mark.parametrize("name", ["task_arithmetic", "ties", "dare_ties", "dare_linear", "breadcrumbs", "breadcrumbs_ties", "della", "della_linear"])
def test_all_zero_deltas_return_the_base(name):
    base = torch.randn(7, 3)
    mp = [{}, {"weight": 1.0, "density": 0.5}, {"weight": 1.0, "density": 0.5}]
    out = get_method(name).merge([base, base.clone(), base.clone()], base_index=0, model_params=mp)
    assert torch.equal(out, base)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("name", ["task_arithmetic", "ties", "dare_ties"])
def test_half_inputs_compute_in_float32_and_keep_dtype(name, dtype):
    torch.manual_seed(3)
    xs = [torch.randn(16, 4) for _ in range(3)]
    mp = [{}, {"weight": 0.5, "density": 0.7}, {"weight": 0.5, "density": 0.7}]
    full = get_method(name).merge(xs, base_index=0, model_params=mp, tensor_name="w")
    half = get_method(name).merge([x.to(dtype) for x in xs], base_index=0, model_params=mp, tensor_name="w")
    assert half.dtype == dtype
    # inputs rounded to half precision; compute in float32 keeps the error at rounding level
    expected = get_method(name).merge([x.to(dtype).float() for x in xs], base_index=0, model_params=mp, tensor_name="w")
    assert torch.equal(half, expected.to(dtype))
    assert (half.float() - full).abs().max() < 0.05


def _reference_consensus(deltas, weights, sign_election, normalize):
    """The stacked, boolean-mask form of the TIES combination (as mergekit writes it)."""
    stacked = torch.stack(deltas)
    w = torch.tensor(weights).reshape(-1, 1)
    if sign_election == "paper":
        agree = elect_sign_mask(stacked).float()
        count = agree.sum(0)
        return (stacked * w * agree).sum(0) / torch.where(count == 0, torch.ones_like(count), count)
    weighted = stacked * w
    agree = elect_sign_mask(weighted).float()
    mixed = (weighted * agree).sum(0)
    if normalize:
        divisor = (w * agree).sum(0)
        mixed = mixed / torch.where(divisor == 0, torch.ones_like(divisor), divisor)
    return mixed


@pytest.mark.parametrize("weights", [[0.5, 0.5], [0.3, 1.2, 0.7], [1.0, -1.0], [0.4, 0.0, -0.4]])
@pytest.mark.parametrize("sign_election,normalize", [("mergekit", True), ("mergekit", False), ("paper", True)])
def test_combine_deltas_matches_the_boolean_mask_form(weights, sign_election, normalize):
    """The float-only sign election equals the stacked mask form, exact cancellations
    (an elected sum of exactly 0 counts as +) and zero divisors included."""
    from graftkit.merge.methods.task_arithmetic import combine_deltas

    gen = torch.Generator().manual_seed(len(weights))
    deltas = [(torch.randn(4000, generator=gen) * 4).round() / 4 for _ in weights]  # many exact ties and zeros
    deltas[1][:500] = -deltas[0][:500] * weights[0] / weights[1] if weights[1] else deltas[1][:500]
    expected = _reference_consensus(deltas, weights, sign_election, normalize)
    got = combine_deltas([d.clone() for d in deltas], weights, consensus=True, normalize=normalize,
                         sign_election=sign_election)
    assert torch.allclose(got, expected, atol=1e-6, rtol=1e-6)
    base = torch.randn(4000, generator=gen)
    got = combine_deltas([d.clone() for d in deltas], weights, consensus=True, normalize=normalize,
                         sign_election=sign_election, base=base, lam=0.7)
    assert torch.allclose(got, base + 0.7 * expected, atol=1e-6, rtol=1e-6)
