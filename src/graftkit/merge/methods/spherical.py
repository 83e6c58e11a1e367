"""The spherical family beyond slerp: nuslerp, multislerp and the Karcher mean.

All three interpolate directions on a hypersphere and norms separately. With a
base model they act on task vectors (model - base) and add the base back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from graftkit.errors import MergeError
from graftkit.merge.methods.base import MergeMethod, ParamSpec, split_base


def nuslerp(t: float, v0: torch.Tensor, v1: torch.Tensor, *, row_wise: bool = False, flatten: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """Slerp of ``v0`` towards ``v1`` by ``t``, over the whole tensor or per slice.

    ``flatten`` treats the tensor as one vector; otherwise each slice along the
    last dimension (or along dim 0 when ``row_wise``) is interpolated on its own.
    Where ``1 - cos^2 <= eps^2`` (collinear or antipodal) the slice is lerped.
    """
    shape = v0.shape
    if flatten:
        a, b = v0.reshape(-1), v1.reshape(-1)
    elif row_wise:
        a, b = v0.transpose(0, -1), v1.transpose(0, -1)
    else:
        a, b = v0, v1
    unit_a = a / torch.linalg.vector_norm(a, dim=-1, keepdim=True).clamp(min=1e-7)
    unit_b = b / torch.linalg.vector_norm(b, dim=-1, keepdim=True).clamp(min=1e-7)
    cos = (unit_a * unit_b).sum(dim=-1, keepdim=True).clamp(-1, 1)
    linear = (1 - cos.square()) <= eps**2
    theta = torch.acos(torch.where(linear, torch.zeros_like(cos), cos))
    sin_theta = torch.where(linear, torch.ones_like(theta), torch.sin(theta))
    spherical = (torch.sin((1 - t) * theta) * a + torch.sin(t * theta) * b) / sin_theta
    out = torch.where(linear, (1 - t) * a + t * b, spherical)
    if row_wise and not flatten:
        out = out.transpose(0, -1)
    return out.reshape(shape)


def nuslerp_merge(
    tensors: Sequence[torch.Tensor],
    *,
    base_index: int | None,
    model_params: Sequence[Mapping[str, Any]],
    nuslerp_row_wise: bool = False,
    nuslerp_flatten: bool = True,
    **_: Any,
) -> torch.Tensor:
    base, others = split_base(tensors, base_index)
    w0, w1 = (model_params[i]["weight"] for i in others)
    total = w0 + w1
    t = 0.5 if abs(total) < 1e-6 else w1 / total
    x0, x1 = (tensors[i] for i in others)
    if base is None:
        return nuslerp(t, x0, x1, row_wise=nuslerp_row_wise, flatten=nuslerp_flatten)
    return base + nuslerp(t, x0 - base, x1 - base, row_wise=nuslerp_row_wise, flatten=nuslerp_flatten)


def multislerp_merge(
    tensors: Sequence[torch.Tensor],
    *,
    base_index: int | None,
    model_params: Sequence[Mapping[str, Any]],
    normalize_weights: bool = True,
    eps: float = 1e-8,
    tensor_name: str = "",
    **_: Any,
) -> torch.Tensor:
    """Barycentric interpolation on the hypersphere, in one tangent-space step.

    Unit directions are averaged with the weights, the mean normalized; the
    weighted tangent vectors at that mean are mapped back with the exponential
    map; the result gets the weighted mean norm.
    """
    base, others = split_base(tensors, base_index)
    if len(others) == 1:
        return tensors[others[0]]
    stack = torch.stack([tensors[i] for i in others])
    if base is not None:
        stack = stack - base
    flat = stack.reshape(len(others), -1)
    weights = torch.tensor([model_params[i]["weight"] for i in others], dtype=flat.dtype, device=flat.device)
    if normalize_weights:
        weights = weights / weights.sum()
    norms = torch.linalg.vector_norm(flat, dim=-1, keepdim=True)
    units = flat / (norms + eps)
    mean = (units * weights[:, None]).sum(0)
    mean_norm = torch.linalg.vector_norm(mean)
    if mean_norm < eps and bool((norms < eps).all()):
        # every input is zero (with a base: no model changed this tensor); mergekit
        # raises here for three or more models
        out = torch.zeros_like(stack[0])
        return out if base is None else out + base
    if mean_norm < eps:
        if len(others) == 2:
            out = (stack[0] * weights[0] + stack[1] * weights[1]).reshape(stack.shape[1:])
            return out if base is None else out + base
        raise MergeError(
            f"multislerp: the weighted directions of '{tensor_name}' cancel out (antipodal inputs)",
            hint="change the weights so that opposite tensors do not balance exactly",
        )
    mean = mean / mean_norm
    tangents = units - (units * mean).sum(-1, keepdim=True) * mean
    tangent = (tangents * weights[:, None]).sum(0)
    length = torch.linalg.vector_norm(tangent) + eps
    direction = mean * torch.cos(length) + tangent * (torch.sin(length) / length)
    out = (direction * (norms.squeeze(-1) * weights).sum()).reshape(stack.shape[1:])
    return out if base is None else out + base


def karcher_mean(tensors: Sequence[torch.Tensor], alphas: Sequence[float], max_iter: int = 10, tol: float = 1e-5) -> torch.Tensor:
    """Weighted Riemannian (Karcher) mean of the directions, times the weighted mean norm.

    Fixed-point iteration: move the estimate along the weighted mean of the log
    maps of the inputs until the step is below ``tol``. Inputs with a norm below
    ``tol`` take no part in the direction (their norm still counts in the scale).
    """
    if len(tensors) == 1:
        return tensors[0]
    norms = [torch.linalg.vector_norm(x) for x in tensors]
    valid = [i for i, n in enumerate(norms) if n.item() > tol]
    if not valid:
        return torch.zeros_like(tensors[0])
    total = sum(alphas[i] for i in valid)
    weights = [alphas[i] / total for i in valid]
    units = [tensors[i] / norms[i] for i in valid]
    mean = sum(w * u for w, u in zip(weights, units))
    mean_norm = torch.linalg.vector_norm(mean)
    mean = units[0].clone() if mean_norm.item() < tol else mean / mean_norm
    for _ in range(max_iter):
        tangent = torch.zeros_like(mean)
        for w, u in zip(weights, units):
            cos = torch.dot(mean.reshape(-1), u.reshape(-1)).clamp(-1.0, 1.0)
            theta = torch.arccos(cos)
            if theta.item() < tol:
                continue
            tangent = tangent + w * (theta / torch.sin(theta)) * (u - cos * mean)
        step = torch.linalg.vector_norm(tangent)
        if step.item() < tol:
            break
        mean = torch.cos(step) * mean + torch.sin(step) * (tangent / step)
        length = torch.linalg.vector_norm(mean)
        if length.item() > tol:
            mean = mean / length
    scale = sum(a * n for a, n in zip(alphas, norms))
    return scale * mean


def karcher_merge(tensors: Sequence[torch.Tensor], *, max_iter: int = 10, tol: float = 1e-5, **_: Any) -> torch.Tensor:
    count = len(tensors)
    return karcher_mean(list(tensors), [1.0 / count] * count, max_iter=max_iter, tol=tol)


NUSLERP = MergeMethod(
    name="nuslerp",
    function=nuslerp_merge,
    reference="https://github.com/arcee-ai/mergekit",
    description="slerp of two models (of their task vectors when a base is given), t from the weights",
    base="optional",
    min_models=2,
    max_models=3,
    min_non_base=2,
    max_non_base=2,
    global_params={
        "nuslerp_row_wise": ParamSpec("nuslerp_row_wise", bool, False, description="interpolate each slice along dim 0 instead of the last dim (when not flattened)"),
        "nuslerp_flatten": ParamSpec("nuslerp_flatten", bool, True, description="treat the whole tensor as one vector"),
    },
    model_params={"weight": ParamSpec("weight", float, per_model=True, non_base=True, description="relative weight; t = w2 / (w1 + w2)")},
    missing_tensor="passthrough",
)
MULTISLERP = MergeMethod(
    name="multislerp",
    function=multislerp_merge,
    reference="https://goddard.blog/posts/multislerp-wow-what-a-cool-idea",
    description="barycentric interpolation of any number of models on the hypersphere",
    base="optional",
    min_models=1,
    min_non_base=1,
    global_params={
        "normalize_weights": ParamSpec("normalize_weights", bool, True, description="divide the weights by their sum"),
        "eps": ParamSpec("eps", float, 1e-8, description="numerical floor for norms"),
    },
    model_params={"weight": ParamSpec("weight", float, per_model=True, non_base=True, description="weight of this model")},
)
KARCHER = MergeMethod(
    name="karcher",
    function=karcher_merge,
    reference="https://arxiv.org/abs/2603.04972",
    description="Riemannian (Karcher) mean of the models' directions, equal weights, scaled by the mean norm",
    base="ignored",
    min_models=1,
    global_params={
        "max_iter": ParamSpec("max_iter", int, 10, description="most fixed-point iterations"),
        "tol": ParamSpec("tol", float, 1e-5, description="stop when the step is below this"),
    },
)

METHODS = [NUSLERP, MULTISLERP, KARCHER]
