"""Model Stock: move from the base towards the models' mean by an angle-derived ratio."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from graftkit.merge.methods.base import MergeMethod, ParamSpec, split_base


def model_stock_merge(tensors: Sequence[torch.Tensor], *, base_index: int | None, filter_wise: bool = False, **_: Any) -> torch.Tensor:
    """t = N cos / (1 + (N - 1) cos); out = t * mean(models) + (1 - t) * base.

    cos is the mean pairwise cosine between the task vectors (per row with
    ``filter_wise``). Where the denominator is ~0 there is no finite estimate and
    the base is kept.
    """
    base, others = split_base(tensors, base_index)
    shape = base.shape
    if filter_wise:
        w0 = base.unsqueeze(0) if base.dim() == 1 else base
        ws = [tensors[i].unsqueeze(0) if base.dim() == 1 else tensors[i] for i in others]
    else:
        w0 = base.reshape(-1)
        ws = [tensors[i].reshape(-1) for i in others]
    offsets = [w - w0 for w in ws]
    cosines = []
    for i, a in enumerate(offsets):
        for b in offsets[i + 1 :]:
            norms = torch.linalg.vector_norm(a, dim=-1) * torch.linalg.vector_norm(b, dim=-1)
            cosines.append(((a * b).sum(dim=-1) / norms.clamp(min=1e-6)).clamp(-1, 1))
    cos = torch.stack(cosines).mean(dim=0).unsqueeze(-1)
    n = len(ws)
    denominator = 1 + (n - 1) * cos
    singular = denominator.abs() < 1e-6
    t = torch.where(singular, torch.zeros_like(cos), n * cos / torch.where(singular, torch.ones_like(denominator), denominator))
    mean = sum(ws) / n
    return (t * mean + (1 - t) * w0).reshape(shape)


MODEL_STOCK = MergeMethod(
    name="model_stock",
    function=model_stock_merge,
    reference="https://arxiv.org/abs/2403.19522",
    description="interpolate between the base and the mean of at least two fine-tunes by their angle",
    base="required",
    min_models=3,
    global_params={"filter_wise": ParamSpec("filter_wise", bool, False, description="one ratio per row instead of per tensor")},
    missing_tensor="base",
)
