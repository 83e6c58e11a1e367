"""Optimal-transport fusion across widths (OTFusion, Singh & Jaggi 2020).

Two chains (MLPs/CNNs) of one depth but different widths: for every hidden group in
order, a transport plan T (wide units x narrow units, uniform marginals) moves the wide
model's units onto the narrow model's, from a ground cost between units: squared
distance of their incoming weights once the previous layer was transported
(``cost="weight"``, the default: no data needed; in benchmarks/align_width.py it beat
the activation cost on digits in both runs and on MNIST in one of two) or of their activations on the same inputs
(``cost="activation"``). The plan
is exact (earth mover's distance, a linear program: ``ot.emd``) or entropic
(``ot.sinkhorn``, softer, ``reg`` relative to the largest cost).

Then every tensor of the wide model is carried into the narrow basis: on a producing
axis a narrow unit becomes the T-weighted *average* of the wide units sent to it
((n T)^T, columns sum to one); on a consuming axis the outgoing weights of wide units
merged into one narrow unit *add up* (m T, rows sum to one), since those units carried
the same signal. The result has the narrow shapes and approximates the wide model;
``narrow_weight`` averages it with the narrow parent (0: the wide model alone, 0.5:
OTFusion's fused model). ``repair_batches`` applies REPAIR with the transported wide
statistics and the narrow parent's, mixed the same way.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from graftkit.align.apply import state_tensors
from graftkit.align.chain import chain_spec
from graftkit.align.spec import PermutationSpec
from graftkit.errors import AlignmentError


@dataclass
class OTFusion:
    """The fused narrow model and the transport plan of every hidden group (wide x narrow)."""

    model: nn.Module
    transports: dict[str, torch.Tensor]


def transport_plan(cost: torch.Tensor, exact: bool = True, reg: float = 0.01) -> torch.Tensor:
    """A plan with uniform marginals 1/m (rows) and 1/n (columns) minimizing the cost."""
    import ot

    c = cost.double().cpu().numpy()
    m, n = c.shape
    a, b = np.full(m, 1.0 / m), np.full(n, 1.0 / n)
    if exact:
        plan = ot.emd(a, b, c, numItermax=1_000_000)
    else:
        scale = c.max() if c.max() > 0 else 1.0
        plan = ot.sinkhorn(a, b, c / scale, reg=reg, numItermax=10_000, method="sinkhorn_log")
    plan = torch.as_tensor(plan, dtype=torch.float64)
    if not torch.isfinite(plan).all() or plan.sum() <= 0:
        raise AlignmentError("the transport plan is not finite", hint="raise reg, or use the exact solver")
    return plan


def _map_axis(w: torch.Tensor, axis: int, t: torch.Tensor, produce: bool, k: int) -> torch.Tensor:
    """Carry one axis of a wide tensor to the narrow basis (see the module docstring)."""
    m, n = t.shape
    mat = (n * t) if produce else (m * t)  # (m, n): columns (produce) or rows (consume) sum to one
    if k > 1:
        mat = torch.kron(mat, torch.eye(k, dtype=mat.dtype))
    moved = w.movedim(axis, -1)
    return (moved @ mat).movedim(-1, axis)


def _check(spec_w: PermutationSpec, spec_n: PermutationSpec) -> None:
    gw, gn = list(spec_w.groups), list(spec_n.groups)
    if gw != gn or list(spec_w.axes) != list(spec_n.axes):
        raise AlignmentError(
            f"the two models have different layer structures ({len(gw)} vs {len(gn)} hidden groups)",
            hint="OT fusion pairs layer i with layer i: give two chains of one depth and layer types",
        )


@torch.no_grad()
def ot_fuse(
    wide: nn.Module,
    narrow: nn.Module,
    batches: Iterable[Any] | None = None,
    *,
    cost: str = "weight",
    exact: bool = True,
    reg: float = 0.01,
    narrow_weight: float = 0.5,
    repair_batches: Iterable[Any] | None = None,
) -> OTFusion:
    """Fuse chain ``wide`` into the shape (and unit basis) of chain ``narrow``."""
    spec_w, spec_n = chain_spec(wide), chain_spec(narrow)
    _check(spec_w, spec_n)
    pw, pn = state_tensors(wide), state_tensors(narrow)
    for name in pw:
        if pw[name].dim() != pn[name].dim():
            raise AlignmentError(f"tensor {name} has different ranks in the two models", hint="fuse chains of one type")
    if cost not in ("activation", "weight"):
        raise AlignmentError(f"unknown cost {cost!r}", hint="use 'activation' or 'weight'")
    if cost == "activation":
        if batches is None:
            raise AlignmentError("activation cost needs data", hint="pass batches, or cost='weight'")
        batches = list(batches)
        acts_w, acts_n = _activations(wide, spec_w, batches), _activations(narrow, spec_n, batches)
    transports: dict[str, torch.Tensor] = {}
    for g in spec_w.groups:
        if cost == "activation":
            c = torch.cdist(acts_w[g].T, acts_n[g].T).pow(2)
        else:
            c = torch.cdist(_incoming(spec_w, pw, g, transports), _incoming(spec_n, pn, g, None)).pow(2)
        transports[g] = transport_plan(c, exact, reg)
    fused = copy.deepcopy(narrow)
    state = fused.state_dict()
    for name, refs in spec_w.axes.items():
        w = _carry(pw[name].double(), refs, transports)
        state[name] = ((1 - narrow_weight) * w + narrow_weight * pn[name].double()).to(pn[name].dtype)
    fused.load_state_dict(state)
    if repair_batches is not None:
        fused = _repair(fused, wide, narrow, spec_n, transports, narrow_weight, list(repair_batches))
    return OTFusion(fused, transports)


def _carry(w: torch.Tensor, refs, transports) -> torch.Tensor:
    for axis, ref in enumerate(refs):
        if ref is not None:
            w = _map_axis(w, axis, transports[ref.group], produce=(axis == 0), k=ref.expand())
    return w


def _incoming(spec: PermutationSpec, params: dict, group: str, transports: dict | None) -> torch.Tensor:
    """Per unit of ``group``: its producing layer's weights (inputs carried to the narrow basis)."""
    rows = []
    for name, refs in spec.axes.items():
        if refs and refs[0] is not None and refs[0].group == group and params[name].dim() >= 1:
            w = params[name].double()
            if transports is not None:
                for axis, ref in enumerate(refs[1:], start=1):
                    if ref is not None:
                        w = _map_axis(w, axis, transports[ref.group], produce=False, k=ref.expand())
            rows.append(w.reshape(w.shape[0], -1))
    return torch.cat(rows, dim=1)


def _activations(model: nn.Module, spec: PermutationSpec, batches: list) -> dict[str, torch.Tensor]:
    from graftkit.similarity import capture

    sites = {g: spec.sites[g][-1] for g in spec.groups}
    acts = capture(model, batches, layers=sorted(set(sites.values())), pooling="mean")
    out = {}
    for g, site in sites.items():
        x = acts[site].double()
        if not torch.isfinite(x).all():
            raise AlignmentError(f"activations at layer {site!r} contain NaN or Inf", hint="check the model and data")
        out[g] = x
    return out


def _repair(fused, wide, narrow, spec_n, transports, narrow_weight, batches):
    from graftkit.align.repair import channel_stats, repair

    spec_w = chain_spec(wide)
    sites_w = [spec_w.repair_sites[g] for g in spec_w.groups]
    sites_n = [spec_n.repair_sites[g] for g in spec_n.groups]
    stats_w = channel_stats(wide, sites_w, batches)
    stats_n = channel_stats(narrow, sites_n, batches)
    targets = {}
    for g, sw, sn in zip(spec_n.groups, sites_w, sites_n):
        t = transports[g]
        avg = (t.shape[1] * t).T  # narrow unit = average of its wide units
        mean = (1 - narrow_weight) * (avg @ stats_w[sw][0]) + narrow_weight * stats_n[sn][0]
        std = (1 - narrow_weight) * (avg @ stats_w[sw][1]) + narrow_weight * stats_n[sn][1]
        targets[sn] = (mean, std)
    return repair(fused, [], [], sites_n, batches, targets=targets)
