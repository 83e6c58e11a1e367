"""Activation matching (Git Re-Basin): pair B's units with A's by the correlation of their activations.

Both models see the same inputs; at every site of a group (``spec.sites``) the
cross-correlation between A's and B's units is accumulated batch by batch (memory:
one units x units matrix per site), and one linear assignment per group picks the
pairing. Unlike weight matching there is no coordinate descent: activations do not
depend on how the other groups are permuted. A head group uses the q, k and v
projections' outputs (per role) and solves heads and within-head dimensions together.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from graftkit.align.apply import state_tensors
from graftkit.align.assignment import objective, solve
from graftkit.align.spec import HeadGroup, PermutationSpec, identity
from graftkit.align.weight_matching import MatchResult, check_same_shapes
from graftkit.errors import AlignmentError


class CrossStats:
    """Running sums for the correlation between two (samples, units) streams."""

    def __init__(self) -> None:
        self.n = 0
        self.sa = self.sb = self.saa = self.sbb = self.sab = None

    def add(self, a: torch.Tensor, b: torch.Tensor) -> None:
        a, b = a.double(), b.double()
        if self.sa is None:
            self.sa, self.sb = a.sum(0), b.sum(0)
            self.saa, self.sbb = (a * a).sum(0), (b * b).sum(0)
            self.sab = a.T @ b
        else:
            self.sa += a.sum(0)
            self.sb += b.sum(0)
            self.saa += (a * a).sum(0)
            self.sbb += (b * b).sum(0)
            self.sab += a.T @ b
        self.n += a.shape[0]

    def correlation(self, eps: float = 1e-8) -> torch.Tensor:
        n = self.n
        ma, mb = self.sa / n, self.sb / n
        cov = self.sab / n - ma[:, None] * mb[None, :]
        sda = (self.saa / n - ma * ma).clamp_min(0).sqrt()
        sdb = (self.sbb / n - mb * mb).clamp_min(0).sqrt()
        return cov / (sda[:, None] * sdb[None, :] + eps)


def _check_finite(x: torch.Tensor, site: str, label: str) -> None:
    if not torch.isfinite(x).all():
        raise AlignmentError(
            f"{label}: activations at layer {site!r} contain NaN or Inf",
            hint="check that model's weights and inputs (a diverged fine-tune, float16 overflow); "
            "run in float32 or align on other data",
        )


def cross_correlations(
    model_a: nn.Module, model_b: nn.Module, sites: list[str], batches: Iterable[Any]
) -> dict[str, torch.Tensor]:
    """Per site, the (units of A) x (units of B) correlation matrix over all samples.

    Sequence outputs give one sample per real token, conv maps one per position (the
    activations come from ``graftkit.similarity.LayerRecorder`` with pooling ``all``).
    """
    from graftkit.similarity import LayerRecorder

    stats = {site: CrossStats() for site in sites}
    with LayerRecorder(model_a, sites, pooling="all") as rec_a, LayerRecorder(model_b, sites, pooling="all") as rec_b:
        for batch in batches:
            out_a, out_b = rec_a(batch), rec_b(batch)
            for site in sites:
                _check_finite(out_a[site], site, "model A")
                _check_finite(out_b[site], site, "model B")
                stats[site].add(out_a[site], out_b[site])
    if any(s.n < 2 for s in stats.values()):
        raise AlignmentError("activation matching saw fewer than 2 samples", hint="pass more batches")
    return {site: s.correlation() for site, s in stats.items()}


def activation_matching(
    spec: PermutationSpec, model_a: nn.Module, model_b: nn.Module, batches: Iterable[Any]
) -> MatchResult:
    """The permutation of B's units whose activations correlate best with A's (apply it to B).

    Groups without activation sites keep the identity. ``batches`` is iterated once;
    each batch is what the models take (a tensor, a tokenizer dict, or (inputs, labels)).
    """
    check_same_shapes(spec, state_tensors(model_a), state_tensors(model_b))
    start = time.perf_counter()
    sites = sorted({s for paths in spec.sites.values() for s in paths})
    if not sites:
        raise AlignmentError("the permutation spec names no activation sites", hint="use weight matching")
    corr = cross_correlations(model_a, model_b, sites, batches)
    perm = identity(spec)
    total = 0.0
    for name, group in spec.groups.items():
        sims: dict[str, torch.Tensor] = {}
        roles = ("q", "k", "v", "o") if isinstance(group, HeadGroup) else ("",)
        for role in roles:
            key = f"{name}:{role}" if role else name
            if key in spec.sites:
                sims[role] = sum(corr[s] for s in spec.sites[key])
        if sims:
            perm[name] = solve(group, sims)
            total += objective(group, sims, perm[name])
    return MatchResult(perm, 1, True, time.perf_counter() - start, total)
