"""SLERP: spherical interpolation between the base (t=0) and one other model (t=1)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from graftkit.merge.methods.base import MergeMethod, ParamSpec


def slerp(t: float, v0: torch.Tensor, v1: torch.Tensor, dot_threshold: float = 0.9995, eps: float = 1e-8) -> torch.Tensor:
    """Interpolate along the great circle through ``v0`` and ``v1`` (whole tensors, flattened).

    The angle comes from normalized copies, the coefficients apply to the
    originals, so norms are interpolated too. Nearly collinear or antipodal pairs
    (|cos| > ``dot_threshold``) and zero tensors fall back to linear interpolation.
    """
    a = v0.reshape(-1)
    b = v1.reshape(-1)
    if a.numel() == 0:
        return v0.clone()
    norm_a = torch.linalg.vector_norm(a)
    norm_b = torch.linalg.vector_norm(b)
    norm_a = torch.where(norm_a > eps, norm_a, torch.ones_like(norm_a))
    norm_b = torch.where(norm_b > eps, norm_b, torch.ones_like(norm_b))
    dot = (torch.dot(a, b) / (norm_a * norm_b)).clamp(-1, 1)  # no normalized copies of huge tensors
    if dot.abs() > dot_threshold:
        return torch.add(v0 * (1 - t), v1, alpha=t)
    theta = torch.acos(dot)
    sin_theta = torch.sin(theta)
    c0 = float(torch.sin((1 - t) * theta) / sin_theta)
    c1 = float(torch.sin(t * theta) / sin_theta)
    return torch.add(v0 * c0, v1, alpha=c1)


def slerp_merge(tensors: Sequence[torch.Tensor], *, base_index: int | None, t: float, **_: Any) -> torch.Tensor:
    other = 1 - base_index
    return slerp(t, tensors[base_index], tensors[other])


SLERP = MergeMethod(
    name="slerp",
    function=slerp_merge,
    reference="https://en.wikipedia.org/wiki/Slerp",
    description="spherical interpolation between the base model (t=0) and one other model (t=1)",
    base="required",
    min_models=2,
    max_models=2,
    global_params={"t": ParamSpec("t", float, description="interpolation factor: 0 = base, 1 = the other model")},
    missing_tensor="passthrough",
)
