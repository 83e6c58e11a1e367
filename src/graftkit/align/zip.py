"""Zip-merging (ZipIt!, Stoica et al. 2023): merge two models trained on different tasks.

Permutation merging pairs every unit of A with one unit of B, even when the two models
learned different features. ZipIt instead pools both models' units (2n per layer) and
greedily merges the most correlated pair, again and again, until n units remain; a pair
may come from one model (redundant features inside A) as well as across models. Each
merged unit averages its members' incoming weights (the merge matrix M, n x 2n); the
next layer reads every member back (the unmerge matrix U, 2n x n). Following ZipIt's
matcher: a merged unit's similarity to others becomes the minimum over its members
times ``alpha`` (so features are not merged over and over), and ``beta`` caps the
share of within-model merges.

Partial zipping (``stop_at=L``): only the first L hidden layers are merged; from there
on each model keeps its own layers, fed with its unmerged features, so the zipped
model is a shared trunk with two branches. The heads are never merged: the output is
A's logits followed by B's (the joint task's label space). Chains of Linear layers with
elementwise activations only.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

from graftkit.align.apply import state_tensors
from graftkit.align.chain import chain_layers, chain_spec
from graftkit.align.weight_matching import check_same_shapes
from graftkit.errors import AlignmentError


class ZippedModel(nn.Module):
    """A shared (merged) trunk, then A's and B's remaining layers; outputs concatenated."""

    def __init__(self, trunk: nn.Sequential, branch_a: nn.Sequential, branch_b: nn.Sequential):
        super().__init__()
        self.trunk = trunk
        self.branch_a = branch_a
        self.branch_b = branch_b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.trunk(x)
        return torch.cat([self.branch_a(h), self.branch_b(h)], dim=-1)


def zip_match(corr: torch.Tensor, alpha: float = 0.3, beta: float = 0.5) -> torch.Tensor:
    """Greedy ZipIt matching on a (2n x 2n) correlation matrix (A's units first).

    Returns the unmerge matrix U (2n x n, U[i, k] = 1 when unit i belongs to merged unit k).
    """
    total = corr.shape[0]
    n = total // 2
    sims = corr.double().clone()
    sims.fill_diagonal_(-torch.inf)
    members: list[list[int]] = [[i] for i in range(total)]
    origin = [0] * n + [1] * n  # model of each (current) unit; -1 once merged across models
    budget = [int(n * beta), int(n * beta)]
    alive = list(range(total))
    while len(alive) > n:
        flat = int(torch.argmax(sims).item())
        i, j = divmod(flat, total)
        if not torch.isfinite(sims[i, j]):
            raise AlignmentError("zip matching ran out of mergeable pairs", hint="raise beta or alpha")
        members[i] += members[j]
        same = origin[i] == origin[j] and origin[i] >= 0
        new_row = torch.minimum(sims[i], sims[j]) * alpha
        sims[i, :], sims[:, i] = new_row, new_row
        sims[i, i] = -torch.inf
        sims[j, :], sims[:, j] = -torch.inf, -torch.inf
        alive.remove(j)
        if same:
            budget[origin[i]] -= 1
            if budget[origin[i]] <= 0:  # no more merges inside this model
                inside = [k for k in alive if origin[k] == origin[i]]
                idx = torch.tensor(inside)
                sims[idx[:, None], idx[None, :]] = -torch.inf
        else:
            origin[i] = -1
    unmerge = torch.zeros(total, n, dtype=torch.float64)
    for k, unit in enumerate(alive):
        unmerge[members[unit], k] = 1.0
    return unmerge


def permute_match(corr: torch.Tensor) -> torch.Tensor:
    """Re-Basin style: each unit of A paired with one unit of B (the unmerge matrix, 2n x n)."""
    n = corr.shape[0] // 2
    cross = corr[:n, n:].double().cpu().numpy()
    _, cols = linear_sum_assignment(cross, maximize=True)
    unmerge = torch.zeros(2 * n, n, dtype=torch.float64)
    unmerge[torch.arange(n), torch.arange(n)] = 1.0
    unmerge[n + torch.as_tensor(cols), torch.arange(n)] = 1.0
    return unmerge


@dataclass
class ZipResult:
    model: ZippedModel
    unmerge: dict[str, torch.Tensor]  # per zipped group, U (2n x n)

    def cross_model_share(self) -> dict[str, float]:
        """Per zipped group, the fraction of merged units that hold units of both models."""
        out = {}
        for g, u in self.unmerge.items():
            n = u.shape[0] // 2
            both = ((u[:n].sum(0) > 0) & (u[n:].sum(0) > 0)).double().mean()
            out[g] = float(both)
        return out


@torch.no_grad()
def zip_merge(
    model_a: nn.Module,
    model_b: nn.Module,
    batches: Iterable[Any],
    *,
    stop_at: int | None = None,
    matcher: str = "zip",
    alpha: float = 0.3,
    beta: float = 0.5,
    repair_batches: Iterable[Any] | None = None,
) -> ZipResult:
    """Zip two chain MLPs of one architecture; ``stop_at`` hidden layers merged (default all)."""
    spec = chain_spec(model_a)
    check_same_shapes(spec, state_tensors(model_a), state_tensors(model_b))
    groups = list(spec.groups)
    stop_at = len(groups) if stop_at is None else stop_at
    if not 1 <= stop_at <= len(groups):
        raise AlignmentError(f"stop_at={stop_at} is outside 1..{len(groups)} (the hidden layers)",
                             hint="choose how many hidden layers to merge")
    if matcher not in ("zip", "permute"):
        raise AlignmentError(f"unknown matcher {matcher!r}", hint="use 'zip' or 'permute'")
    layers_a, layers_b = chain_layers(model_a), chain_layers(model_b)
    for path, m in layers_a:
        if not isinstance(m, (nn.Linear, nn.ReLU, nn.GELU, nn.Tanh, nn.SiLU, nn.Flatten, nn.Dropout, nn.Identity)):
            raise AlignmentError(f"zip-merging supports Linear chains; {path} is {type(m).__name__}",
                                 hint="use permutation matching for conv networks")
    batches = list(batches)
    zipped = groups[:stop_at]
    sites = [spec.sites[g][-1] for g in zipped]
    from graftkit.similarity import capture

    acts_a = capture(model_a, batches, layers=sites, pooling="mean")
    acts_b = capture(model_b, batches, layers=sites, pooling="mean")
    unmerge: dict[str, torch.Tensor] = {}
    for g, site in zip(zipped, sites):
        both = torch.cat([acts_a[site], acts_b[site]], dim=1).double()
        if not torch.isfinite(both).all():
            raise AlignmentError(f"activations at layer {site!r} contain NaN or Inf", hint="check both models")
        corr = torch.nan_to_num(torch.corrcoef(both.T), nan=0.0)  # dead units: no correlation
        unmerge[g] = zip_match(corr, alpha, beta) if matcher == "zip" else permute_match(corr)

    # build the trunk: merged producers, shared elementwise layers, up to the last zipped site
    cut = [p for p, _ in layers_a].index(sites[-1])
    trunk: list[nn.Module] = []
    previous_u: torch.Tensor | None = None  # U of the group feeding the current layer
    g_iter = iter(zipped)
    for (path, ma), (_, mb) in zip(layers_a[: cut + 1], layers_b[: cut + 1]):
        if isinstance(ma, nn.Linear):
            u = unmerge[next(g_iter)]
            merge = u.T / u.sum(0)[:, None]  # (n, 2n): average of members
            wa, wb = ma.weight.double(), mb.weight.double()
            if previous_u is not None:
                half = previous_u.shape[0] // 2
                wa, wb = wa @ previous_u[:half], wb @ previous_u[half:]
            layer = nn.Linear(wa.shape[1], u.shape[1])
            layer.weight.copy_(merge @ torch.cat([wa, wb]))
            layer.bias.copy_(merge @ torch.cat([ma.bias.double(), mb.bias.double()]))
            trunk.append(layer)
            previous_u = u
        else:
            trunk.append(copy.deepcopy(ma))
    half = previous_u.shape[0] // 2
    branches = []
    for layers, rows in ((layers_a, previous_u[:half]), (layers_b, previous_u[half:])):
        rest = [copy.deepcopy(m) for _, m in layers[cut + 1:]]
        first = next(m for m in rest if isinstance(m, nn.Linear))
        first.weight.copy_((first.weight.double() @ rows).to(first.weight.dtype))
        branches.append(nn.Sequential(*rest))
    model = ZippedModel(nn.Sequential(*trunk).float(), branches[0], branches[1]).eval()
    if repair_batches is not None:
        model = _repair(model, model_a, model_b, spec, zipped, unmerge, list(repair_batches))
    return ZipResult(model, unmerge)


def _repair(model, model_a, model_b, spec, zipped, unmerge, batches):
    """REPAIR the trunk: each merged unit gets the average statistics of its members."""
    from graftkit.align.repair import channel_stats, repair

    producers = [spec.repair_sites[g] for g in zipped]
    stats_a = channel_stats(model_a, producers, batches)
    stats_b = channel_stats(model_b, producers, batches)
    trunk_sites = [f"trunk.{i}" for i, m in enumerate(model.trunk) if isinstance(m, nn.Linear)]
    targets = {}
    for g, p, site in zip(zipped, producers, trunk_sites):
        u = unmerge[g]
        avg = u.T / u.sum(0)[:, None]
        targets[site] = (avg @ torch.cat([stats_a[p][0], stats_b[p][0]]),
                         avg @ torch.cat([stats_a[p][1], stats_b[p][1]]))
    return repair(model, [], [], trunk_sites, batches, targets=targets)
