"""SCE (Select, Calculate, Erase): variance-selected entries, energy-weighted, sign-agreed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from graftkit.merge.methods.base import MergeMethod, ParamSpec, split_base
from graftkit.merge.methods.task_arithmetic import elect_sign_mask


def select_by_variance(deltas: torch.Tensor, share: float) -> torch.Tensor:
    """A mask over weight entries (shape of one delta): the ``share`` of nonzero-variance
    entries whose variance across models is largest."""
    if share <= 0:
        return torch.zeros_like(deltas[0])
    if share >= 1:
        return torch.ones_like(deltas[0])
    var = deltas.var(dim=0, unbiased=False)
    k = int(torch.count_nonzero(var).item() * share)
    mask = torch.zeros_like(var)
    if k == 0:
        return mask
    mask.view(-1)[torch.topk(var.abs().reshape(-1), k=k).indices] = 1
    return mask


def sce_merge(tensors: Sequence[torch.Tensor], *, base_index: int | None, select_topk: float = 1.0, **_: Any) -> torch.Tensor:
    """Select high-variance entries, weight each model by its mean squared delta
    (normalized to sum 1), erase entries against the elected sign, then take the
    weighted mean of what is left."""
    base, others = split_base(tensors, base_index)
    if not others:
        return base
    deltas = torch.stack([tensors[i] - base for i in others])
    if select_topk < 1:
        deltas = deltas * select_by_variance(deltas, select_topk).unsqueeze(0)
    agree = elect_sign_mask(deltas).to(deltas.dtype)
    energy = deltas.square().reshape(len(others), -1).mean(dim=1)
    total = energy.sum().item()
    weights = torch.full_like(energy, 1.0 / len(others)) if abs(total) < 1e-6 else energy / total
    weights = weights.reshape(-1, *([1] * base.dim())) * agree
    return base + (deltas * weights).sum(dim=0) / weights.sum(dim=0).clamp(min=1e-6)


SCE = MergeMethod(
    name="sce",
    function=sce_merge,
    reference="https://arxiv.org/abs/2408.07990",
    description="select high-variance entries, weight models by delta energy, erase sign conflicts",
    base="required",
    min_models=1,
    global_params={
        "int8_mask": ParamSpec("int8_mask", bool, False, description="mergekit memory option; accepted, no effect on the result"),
        "select_topk": ParamSpec("select_topk", float, 1.0, description="share of entries (by variance across models) kept"),
    },
)
