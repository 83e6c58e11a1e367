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
    if consensus:
        deltas = torch.stack(sparse)
        del sparse
        weights = torch.tensor(weight_list, dtype=deltas.dtype, device=deltas.device).reshape(-1, *([1] * base.dim()))
        if sign_election == "paper":
            agree = elect_sign_mask(deltas).to(deltas.dtype)
            mixed = (deltas * weights * agree).sum(dim=0)
            count = agree.sum(dim=0)
            mixed = mixed / torch.where(count == 0, torch.ones_like(count), count)
        else:
            weighted = deltas * weights
            agree = elect_sign_mask(weighted).to(deltas.dtype)
            mixed = (weighted * agree).sum(dim=0)
            if normalize:
                divisor = (weights * agree).sum(dim=0)
                mixed = mixed / torch.where(divisor == 0, torch.ones_like(divisor), divisor)
    else:
        # a running weighted sum: no stacked copy of every task vector
        mixed = torch.zeros_like(base)
        for delta, weight in zip(sparse, weight_list):
            mixed.add_(delta, alpha=weight)
        del sparse
        if normalize and abs(sum(weight_list)) >= 1e-8:
            mixed.div_(sum(weight_list))
    if lam != 1:
        mixed.mul_(lam)
    return mixed.add_(base)


# how each method of the family sparsifies its task vectors (the block executor reads it)
SPARSIFICATION: dict[str, str | None] = {}


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
