"""Validation of activation matrices before any metric runs.

Every metric goes through ``as_features``: it turns the input into a 2-D float
tensor and refuses NaN/Inf, empty input, mismatched sample counts and too few
samples with a ``GraftError`` that names the layer and says the fix, so that no
metric ever returns a silent wrong number.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from graftkit.errors import DataError, ShapeMismatchError


def _label(name: str | None) -> str:
    return f"layer {name!r}" if name else "activations"


def as_features(
    x: Any,
    name: str | None = None,
    *,
    dtype: torch.dtype = torch.float64,
    min_samples: int = 2,
) -> torch.Tensor:
    """A checked 2-D (samples, features) tensor of ``dtype``.

    1-D input is one feature per sample; more than two dimensions are flattened
    after the first (samples) axis. ``name`` is used in error messages.
    """
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(x)
    if x.dim() == 0:
        raise ShapeMismatchError(
            f"{_label(name)}: got a scalar, need a (samples, features) matrix",
            hint="pass one row per input example",
        )
    if x.dim() == 1:
        x = x[:, None]
    elif x.dim() > 2:
        x = x.reshape(x.shape[0], -1)
    if not x.is_floating_point() or x.dtype != dtype:
        x = x.to(dtype)
    if x.shape[0] < min_samples:
        raise DataError(
            f"{_label(name)}: {x.shape[0]} sample(s), this metric needs at least {min_samples}",
            hint="capture activations on more inputs (raise --n or pass more batches)",
        )
    if x.shape[1] == 0:
        raise ShapeMismatchError(f"{_label(name)}: has zero features", hint="pick a layer with outputs")
    # one reduction finds NaN/Inf (they propagate through a sum); only then look for where
    bad = ~torch.isfinite(x) if not bool(torch.isfinite(x.sum())) else None
    if bad is not None and bool(bad.any()):
        rows = bad.any(dim=1).nonzero().flatten()
        raise DataError(
            f"{_label(name)}: {int(bad.sum())} NaN/Inf value(s) in {len(rows)} sample(s) "
            f"(first at sample {int(rows[0])})",
            hint="the model overflowed or diverged on these inputs: run it in float32, "
            "check its weights for NaN, or drop those inputs",
        )
    return x


def pair(
    x: Any,
    y: Any,
    names: tuple[str | None, str | None] = (None, None),
    *,
    dtype: torch.dtype = torch.float64,
    min_samples: int = 2,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two checked matrices with the same number of samples, on the same device."""
    a = as_features(x, names[0], dtype=dtype, min_samples=min_samples)
    b = as_features(y, names[1], dtype=dtype, min_samples=min_samples)
    if a.shape[0] != b.shape[0]:
        raise ShapeMismatchError(
            f"{_label(names[0])} has {a.shape[0]} samples but {_label(names[1])} has {b.shape[0]}",
            hint="both activation matrices must come from the same inputs in the same order",
        )
    if b.device != a.device:
        b = b.to(a.device)
    return a, b


def require_more_samples_than_features(x: torch.Tensor, name: str | None, metric: str) -> None:
    """CCA-type metrics are meaningless (every correlation is 1) when features >= samples."""
    n, d = x.shape
    if n <= d:
        raise DataError(
            f"{_label(name)}: {metric} needs more samples than features, got {n} samples x {d} features",
            hint=f"use at least {d + 1} inputs (more is better, ~10x), reduce the features first "
            "(e.g. svcca keeps the top singular directions), or use linear_cka, which has no such limit",
        )


def centered(x: torch.Tensor) -> torch.Tensor:
    """Columns minus their mean."""
    return x - x.mean(dim=0, keepdim=True)
