"""Weight correlation: how alike two models' parameters are, tensor by tensor.

Weights are only comparable when their neurons correspond (same initialization,
fine-tunes of one base, or after alignment with ``graftkit.align``); on unaligned
models a low value says nothing about function, which is why the activation
metrics exist.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from graftkit.errors import DataError, ShapeMismatchError


def weight_correlation(a: torch.Tensor, b: torch.Tensor, name: str | None = None) -> float:
    """Pearson correlation of two same-shaped tensors, flattened (float64)."""
    where = f"tensor {name!r}" if name else "weights"
    if tuple(a.shape) != tuple(b.shape):
        raise ShapeMismatchError(
            f"{where}: shapes {tuple(a.shape)} and {tuple(b.shape)} differ",
            hint="weight correlation needs matching tensors; align the models first "
            "(graftkit.align) or compare activations with linear_cka",
        )
    x = a.detach().reshape(-1).to(torch.float64)
    y = b.detach().reshape(-1).to(torch.float64)
    if x.numel() < 2:
        raise DataError(f"{where}: a single value has no correlation", hint="compare tensors with 2+ entries")
    if not (torch.isfinite(x).all() and torch.isfinite(y).all()):
        raise DataError(f"{where}: contains NaN/Inf", hint="the checkpoint is corrupt or diverged; reload it")
    x, y = x - x.mean(), y - y.mean()
    denom = x.norm() * y.norm()
    if float(denom) == 0.0:
        raise DataError(f"{where}: constant tensor, correlation undefined", hint="skip constant tensors")
    return float((x @ y) / denom)


def weight_correlations(
    a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor], *, skip_constant: bool = True
) -> dict[str, float]:
    """Correlation of every tensor that both state dicts hold with the same shape.

    Constant tensors (e.g. fresh LayerNorm weights) are skipped when ``skip_constant``.
    """
    out: dict[str, float] = {}
    for name, ta in a.items():
        tb = b.get(name)
        if tb is None or tuple(ta.shape) != tuple(tb.shape) or ta.numel() < 2:
            continue
        if skip_constant and (bool((ta == ta.reshape(-1)[0]).all()) or bool((tb == tb.reshape(-1)[0]).all())):
            continue
        out[name] = weight_correlation(ta, tb, name)
    if not out:
        raise ShapeMismatchError(
            "the two models share no tensor name with the same shape",
            hint="they are different architectures or widths: compare their activations instead",
        )
    return out
