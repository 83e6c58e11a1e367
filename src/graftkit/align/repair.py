"""REPAIR (Jordan et al. 2022) and BatchNorm reset: fix the statistics of a merged network.

Averaging two aligned networks shrinks the variance of its hidden units (averaged
units are not perfectly correlated), and the shrinkage compounds with depth. REPAIR
measures, per unit, the mean and standard deviation of each endpoint's pre-activations
on data, interpolates them with the merge weights, and rescales the merged network's
units so that their statistics match: y' = s (y - m) + t with s = t_std / m_std, folded
into the producing layer's weight and bias. Layers are repaired in order, each
measured after the ones before it were fixed. In a network with BatchNorm, resetting
the BatchNorm running statistics on data does the same job (``reset_batchnorm``).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from graftkit.errors import AlignmentError


def channel_stats(model: nn.Module, sites: list[str], batches: Iterable[Any]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per site, (mean, std) of each unit over all samples (tokens and positions count as samples)."""
    from graftkit.similarity import LayerRecorder

    sums: dict[str, list[torch.Tensor]] = {}
    count: dict[str, int] = {}
    with LayerRecorder(model, sites, pooling="all") as rec:
        for batch in batches:
            for site, x in rec(batch).items():
                if not torch.isfinite(x).all():
                    raise AlignmentError(
                        f"activations at layer {site!r} contain NaN or Inf",
                        hint="check the merged weights and the data; REPAIR needs finite activations",
                    )
                x = x.double()
                if site not in sums:
                    sums[site] = [x.sum(0), (x * x).sum(0)]
                    count[site] = 0
                else:
                    sums[site][0] += x.sum(0)
                    sums[site][1] += (x * x).sum(0)
                count[site] += x.shape[0]
    out = {}
    for site, (s, ss) in sums.items():
        mean = s / count[site]
        out[site] = (mean, (ss / count[site] - mean * mean).clamp_min(0).sqrt())
    return out


def rescale_units(module: nn.Module, current: tuple[torch.Tensor, torch.Tensor],
                  target: tuple[torch.Tensor, torch.Tensor], site: str, eps: float = 1e-8) -> None:
    """Fold y' = s (y - m) + t into ``module``'s per-unit weight and bias (in place)."""
    weight = getattr(module, "weight", None)
    bias = getattr(module, "bias", None)
    if weight is None or bias is None:
        raise AlignmentError(
            f"layer {site!r} ({type(module).__name__}) has no per-unit weight and bias to rescale",
            hint="REPAIR needs Linear/Conv layers with bias or norm layers with affine parameters",
        )
    m, sd = current
    t_mean, t_std = target
    s = t_std / (sd + eps)
    with torch.no_grad():
        shape = (-1,) + (1,) * (weight.dim() - 1)
        weight.mul_(s.to(weight.dtype).view(shape))
        bias.copy_(((bias.double() - m) * s + t_mean).to(bias.dtype))


def repair(
    merged: nn.Module,
    endpoints: Sequence[nn.Module],
    weights: Sequence[float],
    sites: list[str],
    batches: Iterable[Any],
    targets: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> nn.Module:
    """A copy of ``merged`` whose units at ``sites`` have the interpolated endpoint statistics.

    ``endpoints`` must be aligned to ``merged`` unit for unit (B permuted into A's basis);
    ``weights`` are the merge coefficients (e.g. 1 - alpha, alpha). ``targets`` replaces
    the endpoint statistics when they are computed otherwise (OT fusion across widths).
    ``batches`` must be re-iterable (a list).
    """
    batches = list(batches)
    if targets is None:
        if len(endpoints) != len(weights):
            raise AlignmentError("one weight per endpoint model is needed", hint="pass weights=[1 - alpha, alpha]")
        targets = {}
        per_model = [channel_stats(m, sites, batches) for m in endpoints]
        for site in sites:
            targets[site] = (
                sum(w * st[site][0] for w, st in zip(weights, per_model)),
                sum(w * st[site][1] for w, st in zip(weights, per_model)),
            )
    out = copy.deepcopy(merged)
    modules = dict(out.named_modules())
    for site in sites:
        current = channel_stats(out, [site], batches)[site]
        rescale_units(modules[site], current, targets[site], site)
    return out


@torch.no_grad()
def reset_batchnorm(model: nn.Module, batches: Iterable[Any]) -> nn.Module:
    """A copy of ``model`` whose BatchNorm running statistics are recomputed on ``batches``."""
    out = copy.deepcopy(model)
    norms = [m for m in out.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return out
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over all batches
    out.train()
    for batch in batches:
        inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
        out(**inputs) if isinstance(inputs, dict) else out(inputs)
    out.eval()
    for m in norms:
        m.momentum = 0.1
    return out
