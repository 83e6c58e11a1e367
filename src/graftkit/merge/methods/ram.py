"""RAM and RAM+ (tensor-local): average where several models changed an entry,
keep a lone model's change whole (RAM+ also boosts it by overlap)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from graftkit.merge.methods.base import MergeMethod, ParamSpec, split_base


def _contributions(tensors: Sequence[torch.Tensor], base: torch.Tensor, others: list[int], epsilon: float):
    deltas = torch.stack([tensors[i] - base for i in others]).reshape(len(others), -1)
    active = deltas.abs() > epsilon
    count = active.sum(dim=0, keepdim=True)
    return deltas * active, active, count, count > 1, count == 1


def ram_merge(tensors: Sequence[torch.Tensor], *, base_index: int | None, epsilon: float = 1e-5, **_: Any) -> torch.Tensor:
    """Per entry: a change made by one model only is kept as is; changes made by
    several models (|delta| > epsilon) are averaged over those models."""
    base, others = split_base(tensors, base_index)
    if not others:
        return base
    deltas, _, count, shared, unique = _contributions(tensors, base, others, epsilon)
    merged = (deltas * unique + deltas * shared / count.clamp(min=1)).sum(dim=0)
    return base + merged.reshape(base.shape)


def ramplus_tl_merge(
    tensors: Sequence[torch.Tensor], *, base_index: int | None, r: float = 0.1, alpha: float = 0.2, epsilon: float = 1e-5, **_: Any
) -> torch.Tensor:
    """RAM with each model's unique changes scaled by 1 + r * clamp(shared / unique, 0, alpha),
    the ratios counted within this tensor."""
    base, others = split_base(tensors, base_index)
    if not others:
        return base
    deltas, active, count, shared, unique = _contributions(tensors, base, others, epsilon)
    rho = (active & shared).sum(dim=1) / (active & unique).sum(dim=1).clamp(min=epsilon)
    boost = (1 + r * rho.clamp(0, alpha)).unsqueeze(-1)
    merged = (deltas * unique * boost + deltas * shared / count.clamp(min=1)).sum(dim=0)
    return base + merged.reshape(base.shape)


RAM = MergeMethod(
    name="ram",
    function=ram_merge,
    reference="https://arxiv.org/abs/2601.13572",
    description="keep unique changes whole, average changes several models share",
    base="required",
    min_models=1,
    global_params={"epsilon": ParamSpec("epsilon", float, 1e-5, description="a delta entry counts as a change above this")},
)
RAMPLUS_TL = MergeMethod(
    name="ramplus_tl",
    function=ramplus_tl_merge,
    reference="https://arxiv.org/abs/2601.13572",
    description="RAM with unique changes boosted by each model's overlap ratio (per tensor)",
    base="required",
    min_models=1,
    global_params={
        "r": ParamSpec("r", float, 0.1, description="boost strength"),
        "alpha": ParamSpec("alpha", float, 0.2, description="cap on the overlap ratio"),
        "epsilon": ParamSpec("epsilon", float, 1e-5, description="a delta entry counts as a change above this"),
    },
)

METHODS = [RAM, RAMPLUS_TL]
