"""Small two-model and one-model methods: nearswap, arcee_fusion, passthrough."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from graftkit.merge.methods.base import MergeMethod, ParamSpec, split_base

_QUANTILE_SAMPLE = 1_000_000


def nearswap_merge(tensors: Sequence[torch.Tensor], *, base_index: int | None, t: float, **_: Any) -> torch.Tensor:
    """Take the other model's value where it is within ~t of the base's, the base's elsewhere.

    weight = clamp(t / |a - b|, 0, 1) per entry; out = weight * b + (1 - weight) * a.
    """
    base, (other,) = split_base(tensors, base_index)
    b = tensors[other]
    weight = (t / (base - b).abs().clamp(min=1e-6)).clamp(0, 1)
    return weight * b + (1 - weight) * base


def _quantiles(values: torch.Tensor, qs: Sequence[float], generator: torch.Generator | None) -> list[torch.Tensor]:
    """Lower quantiles by index floor(q * (n - 1)) of the sorted values (sampled above 1M entries)."""
    flat = values.reshape(-1)
    if flat.numel() > _QUANTILE_SAMPLE:
        index = torch.randint(flat.numel(), (_QUANTILE_SAMPLE,), generator=generator, device=flat.device)
        flat = flat[index]
    ordered = torch.sort(flat).values
    return [ordered[int(q * (ordered.numel() - 1))] for q in qs]


def arcee_fusion_merge(tensors: Sequence[torch.Tensor], *, base_index: int | None, generator: torch.Generator | None = None, **_: Any) -> torch.Tensor:
    """Keep the other model's change only where it matters most.

    importance = |b - a| * KL(softmax(b) || softmax(a)) along the last dim; the
    change is taken where importance >= median + 1.5 * IQR of the importances.
    """
    base, (other,) = split_base(tensors, base_index)
    b = tensors[other]
    p = torch.softmax(b, dim=-1) + 1e-8
    q = torch.softmax(base, dim=-1) + 1e-8
    kl = (p * torch.log(p / q)).sum(dim=-1, keepdim=True)
    importance = (b - base).abs() * kl
    q1, median, q3 = _quantiles(importance, (0.25, 0.5, 0.75), generator)
    mask = (importance >= median + 1.5 * (q3 - q1)).to(base.dtype)
    return base + (b - base) * mask


def passthrough_merge(tensors: Sequence[torch.Tensor], *, model_params: Sequence[Mapping[str, Any]], **_: Any) -> torch.Tensor:
    """Copy the single input, optionally scaled."""
    scale = model_params[0].get("scale")
    return tensors[0] if scale is None else tensors[0] * scale


NEARSWAP = MergeMethod(
    name="nearswap",
    function=nearswap_merge,
    reference="https://huggingface.co/alchemonaut/QuartetAnemoi-70B-t0.0001",
    description="swap in the other model's values where they are close to the base's",
    base="required",
    min_models=2,
    max_models=2,
    global_params={"t": ParamSpec("t", float, description="closeness threshold: entries closer than t are swapped fully")},
    missing_tensor="base",
)
ARCEE_FUSION = MergeMethod(
    name="arcee_fusion",
    function=arcee_fusion_merge,
    reference="https://arcee.ai",
    description="take the other model's changes where their KL-weighted importance is an outlier",
    base="required",
    min_models=2,
    max_models=2,
    random=True,
    missing_tensor="passthrough",
)
PASSTHROUGH = MergeMethod(
    name="passthrough",
    function=passthrough_merge,
    reference="https://github.com/arcee-ai/mergekit",
    description="copy one model's tensor unchanged (optionally scaled); used for layer stacking",
    base="ignored",
    min_models=1,
    max_models=1,
    model_params={"scale": ParamSpec("scale", float, None, per_model=True, optional=True, description="multiply the tensor by this")},
)

METHODS = [NEARSWAP, ARCEE_FUSION, PASSTHROUGH]
