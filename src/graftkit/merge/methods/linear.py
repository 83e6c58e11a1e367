"""Linear merge (model soups): the weighted mean of the inputs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from graftkit.errors import MergeError
from graftkit.merge.methods.base import MergeMethod, ParamSpec


def linear_merge(
    tensors: Sequence[torch.Tensor],
    *,
    model_params: Sequence[Mapping[str, Any]],
    normalize: bool = True,
    tensor_name: str = "",
    **_: Any,
) -> torch.Tensor:
    """sum_i w_i x_i, divided by sum_i w_i when ``normalize``.

    mergekit divides by a zero weight sum and writes NaN/inf; graftkit refuses.
    """
    weights = [float(p["weight"]) for p in model_params]
    out = torch.mul(tensors[0], weights[0])  # the same bits as 0 + w * x, without a zero-filled pass
    for weight, tensor in zip(weights[1:], tensors[1:]):
        out.add_(tensor, alpha=weight)
    if normalize:
        total = sum(weights)
        if total == 0:
            raise MergeError(
                f"linear: the weights for '{tensor_name}' sum to zero, so they cannot be normalized",
                hint="change the weights or set normalize: false",
            )
        out.div_(total)
    return out


LINEAR = MergeMethod(
    name="linear",
    function=linear_merge,
    reference="https://arxiv.org/abs/2203.05482",
    description="weighted average of all models (model soups)",
    base="ignored",
    min_models=1,
    global_params={"normalize": ParamSpec("normalize", bool, True, description="divide by the sum of the weights")},
    model_params={"weight": ParamSpec("weight", float, per_model=True, description="weight of this model")},
)
