"""The task-vector family: task_arithmetic, ties, dare_*, breadcrumbs*, della*.

One function covers them all, as in the papers' shared form:
delta_i = model_i - base; sparsify each delta; weight it; optionally keep only
entries that agree with an elected sign; sum; optionally normalize; scale by
lambda; add to the base.

mergekit semantics (default, ``sign_election: mergekit``): deltas are multiplied
by their weight *before* the sign election, the elected sign is the sign of the
weighted sum (ties at zero count as positive), and ``normalize`` divides by the
sum of the weights of the agreeing models.
Paper semantics (``sign_election: paper``, the TIES paper and PEFT): the sign is
elected on the unweighted sparsified deltas and the kept entries are averaged
over the number of agreeing models ("disjoint mean"); ``normalize`` is then moot.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from graftkit.merge.methods import sparsify as sp
from graftkit.merge.methods.base import MergeMethod, ParamSpec, split_base
from graftkit.merge.methods.noise import DropNoise, span


def elect_sign_mask(deltas: torch.Tensor) -> torch.Tensor:
    """Entries whose sign matches the sign of the sum over models (sum >= 0 counts as +).

    A zero entry matches neither sign, so it never counts as agreeing.
    """
    majority = torch.where(deltas.sum(dim=0) >= 0, 1.0, -1.0).to(deltas.dtype)
    return deltas.sign() == majority


def model_stream(generator: torch.Generator | DropNoise | None, position: int, numel: int):
    """The noise of the ``position``-th task vector: its own range of a ``DropNoise`` stream
    (from entry ``position * span(numel)`` on), or the shared generator."""
    if isinstance(generator, DropNoise):
        return generator.at(generator.offset + position * span(numel))
    return generator


def sparsify_delta(
    delta: torch.Tensor,
    sparsification: str | None,
    *,
    density: float,
    gamma: float,
    epsilon: float,
    rescale: str | None,
    generator: torch.Generator | DropNoise | None,
) -> torch.Tensor:
    if sparsification is None:
        return delta
    if sparsification == "magnitude":
        return sp.magnitude(delta, density, rescale)
    if sparsification == "random":
        return sp.random_drop(delta, density, rescale, generator)
    if sparsification == "magnitude_outliers":
        return sp.magnitude_outliers(delta, density, gamma, rescale)
    if sparsification == "della_magprune":
        return sp.della_magprune(delta, density, epsilon, rescale, generator)
    raise ValueError(f"unknown sparsification {sparsification!r}")


def task_vector_merge(
    tensors: Sequence[torch.Tensor],
    *,
    base_index: int | None,
    model_params: Sequence[Mapping[str, Any]],
    generator: torch.Generator | DropNoise | None = None,
    sparsification: str | None = None,
    consensus: bool = False,
    normalize: bool = False,
    rescale: bool = False,
    rescale_mode: str = "l1",
    sign_election: str = "mergekit",
    **params: Any,
) -> torch.Tensor:
    """base + lambda * combine(sparsify(model_i - base)) for one tensor."""
    lam = params.get("lambda", 1.0)
    base, others = split_base(tensors, base_index)
    assert base is not None
    if not others:
        return base
    sparse = [
        sparsify_delta(
            tensors[i] - base,
            sparsification,
            density=model_params[i].get("density", 1.0),
            gamma=model_params[i].get("gamma", 0.0),
            epsilon=model_params[i].get("epsilon", 0.0),
            rescale=rescale_mode if rescale else None,
            generator=model_stream(generator, position, base.numel()),
        )
        for position, i in enumerate(others)
    ]
    weight_list = [float(model_params[i]["weight"]) for i in others]
    return combine_deltas(sparse, weight_list, consensus=consensus, normalize=normalize,
                          sign_election=sign_election, base=base, lam=lam)


def combine_deltas(
    deltas: list[torch.Tensor],
    weights: Sequence[float],
    *,
    consensus: bool,
    normalize: bool,
    sign_election: str = "mergekit",
    base: torch.Tensor | None = None,
    lam: float = 1.0,
) -> torch.Tensor:
    """``base + lam * merged``, the task vector merged from sparsified ``deltas`` (which are
    overwritten: they are work space); without ``base``, ``lam * merged``.

    Without consensus: the running weighted sum (no stacked copy). With it, the sign
    election and the mean over agreeing entries run on float arithmetic alone (boolean
    tensors cost CPU kernels several times more): with ``s = +1`` where the elected sum
    is >= 0 (``copysign``, so an exact zero sum elects +) and ``-1`` elsewhere, an entry
    agrees exactly when ``relu(s * x) > 0``, so ``s * sum_i relu(s * x_i)`` is the sum of
    the agreeing entries and ``sum_i w_i * sign(relu(s * x_i))`` the sum of their weights
    (mergekit: elected on weighted deltas, normalized by agreeing weights; paper: elected
    on unweighted deltas, divided by the number of agreeing models).
    """
    if not consensus:
        mixed = torch.zeros_like(deltas[0])
        for delta, weight in zip(deltas, weights):
            mixed.add_(delta, alpha=weight)
        if normalize and abs(sum(weights)) >= 1e-8:
            mixed.div_(sum(weights))
        return _finish(mixed, None, base, lam)
    paper = sign_election == "paper"
    if not paper:  # elect on the weighted deltas
        for delta, weight in zip(deltas, weights):
            if weight != 1:
                delta.mul_(weight)
    elected = deltas[0] + deltas[1] if len(deltas) > 1 else deltas[0].clone()
    for delta in deltas[2:]:
        elected.add_(delta)
    sign = torch.copysign(torch.tensor(1.0, dtype=elected.dtype), elected)
    del elected
    mixed = divisor = None
    for delta, weight in zip(deltas, weights):
        agreeing = delta.mul_(sign).clamp_(min=0)  # |x| where x agrees, else 0
        if paper or normalize:
            share = torch.sign(agreeing)
            if not paper and weight != 1:
                share.mul_(weight)
            divisor = share if divisor is None else divisor.add_(share)
        if paper and weight != 1:
            agreeing.mul_(weight)
        mixed = agreeing if mixed is None else mixed.add_(agreeing)
    if divisor is None:
        return _finish(mixed.mul_(sign), None, base, lam)
    if paper or all(w > 0 for w in weights):
        # the divisor is 0 only where nothing agrees (mixed is 0 there) or at least min |w|
        divisor.clamp_(min=1.0 if paper else min(weights))
    else:  # weights of both signs may cancel: a zero divisor counts as 1
        divisor.add_(1 - torch.sign(divisor.abs()))
    return _finish(mixed, divisor.mul_(sign), base, lam)


def _finish(mixed: torch.Tensor, divisor: torch.Tensor | None, base: torch.Tensor | None, lam: float) -> torch.Tensor:
    """``base + lam * mixed / divisor`` in as few passes as the arguments allow."""
    if divisor is not None:
        if base is not None:
            return torch.addcdiv(base, mixed, divisor, value=lam)
        mixed.div_(divisor)
    if lam != 1:
        mixed.mul_(lam)
    return mixed if base is None else mixed.add_(base)


# how each method of the family sparsifies its task vectors and whether it elects signs
# (the block executor reads them)
SPARSIFICATION: dict[str, str | None] = {}
CONSENSUS: dict[str, bool] = {}


def _family(
    name: str,
    reference: str,
    description: str,
    *,
    sparsification: str | None,
    consensus: bool,
    normalize: bool,
    rescale: bool,
) -> MergeMethod:
    global_params = {
        "int8_mask": ParamSpec("int8_mask", bool, False, description="mergekit memory option; accepted, no effect on the result"),
        "normalize": ParamSpec("normalize", bool, normalize, description="divide by the sum of the (agreeing) weights"),
        "rescale": ParamSpec("rescale", bool, rescale, description="rescale kept entries after dropping"),
        "lambda": ParamSpec("lambda", float, 1.0, description="scale of the merged task vector"),
        "rescale_mode": ParamSpec(
            "rescale_mode", str, "l1", choices=("l1", "paper"),
            description="l1: match the delta's L1 norm (mergekit); paper: divide by the keep probability (DARE/DELLA)",
        ),
    }
    if consensus:
        global_params["sign_election"] = ParamSpec(
            "sign_election", str, "mergekit", choices=("mergekit", "paper"),
            description="mergekit: elect on weighted deltas, normalize by agreeing weights; paper: elect on unweighted deltas, mean over agreeing models",
        )
    model_params = {
        "weight": ParamSpec("weight", float, per_model=True, non_base=True, description="weight of this model's task vector"),
        "density": ParamSpec("density", float, 1.0, per_model=True, non_base=True, description="share of the delta kept"),
    }
    if sparsification == "magnitude_outliers":
        model_params["gamma"] = ParamSpec("gamma", float, 0.01, per_model=True, non_base=True, description="share of largest entries removed")
    if sparsification == "della_magprune":
        model_params["epsilon"] = ParamSpec("epsilon", float, 0.15, per_model=True, non_base=True, description="half-width of the keep-probability range")

    def function(tensors: Sequence[torch.Tensor], **kwargs: Any) -> torch.Tensor:
        kwargs.pop("int8_mask", None)
        kwargs.pop("tensor_name", None)
        return task_vector_merge(tensors, sparsification=sparsification, consensus=consensus, **kwargs)

    function.__name__ = f"{name}_merge"
    SPARSIFICATION[name] = sparsification
    CONSENSUS[name] = consensus
    return MergeMethod(
        name=name,
        function=function,
        reference=reference,
        description=description,
        base="required",
        min_models=1,
        global_params=global_params,
        model_params=model_params,
        random=sparsification in ("random", "della_magprune"),
        noise="masks",
        missing_tensor="error",
    )


TASK_ARITHMETIC = _family(
    "task_arithmetic", "https://arxiv.org/abs/2212.04089",
    "base + lambda * sum_i w_i (model_i - base)",
    sparsification=None, consensus=False, normalize=False, rescale=False,
)
TIES = _family(
    "ties", "https://arxiv.org/abs/2306.01708",
    "trim each task vector to its largest entries, elect a sign, average the agreeing entries",
    sparsification="magnitude", consensus=True, normalize=True, rescale=False,
)
DARE_TIES = _family(
    "dare_ties", "https://arxiv.org/abs/2311.03099",
    "drop delta entries at random (keep probability = density), rescale, then TIES sign election",
    sparsification="random", consensus=True, normalize=False, rescale=True,
)
DARE_LINEAR = _family(
    "dare_linear", "https://arxiv.org/abs/2311.03099",
    "drop delta entries at random, rescale, add the weighted sum",
    sparsification="random", consensus=False, normalize=False, rescale=True,
)
BREADCRUMBS = _family(
    "breadcrumbs", "https://arxiv.org/abs/2312.06795",
    "drop the largest gamma share and the smallest entries of each delta, add the weighted sum",
    sparsification="magnitude_outliers", consensus=False, normalize=False, rescale=False,
)
BREADCRUMBS_TIES = _family(
    "breadcrumbs_ties", "https://arxiv.org/abs/2312.06795",
    "breadcrumbs sparsification followed by TIES sign election",
    sparsification="magnitude_outliers", consensus=True, normalize=False, rescale=False,
)
DELLA = _family(
    "della", "https://arxiv.org/abs/2406.11617",
    "magnitude-ranked random drop (MagPrune), rescale, TIES sign election",
    sparsification="della_magprune", consensus=True, normalize=True, rescale=True,
)
DELLA_LINEAR = _family(
    "della_linear", "https://arxiv.org/abs/2406.11617",
    "magnitude-ranked random drop (MagPrune), rescale, weighted sum",
    sparsification="della_magprune", consensus=False, normalize=False, rescale=True,
)

METHODS = [TASK_ARITHMETIC, TIES, DARE_TIES, DARE_LINEAR, BREADCRUMBS, BREADCRUMBS_TIES, DELLA, DELLA_LINEAR]
