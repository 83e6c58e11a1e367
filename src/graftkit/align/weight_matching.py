"""Weight matching (Git Re-Basin, Ainsworth et al. 2022): permute B's units to match A's weights.

Coordinate descent: visit the groups in a random order; for one group, with every other
group's permutation held fixed, the summed inner product between A's weights and B's
permuted weights is linear in that group's permutation, so the best one is a linear
assignment. Repeat until a full sweep improves nothing (or ``max_iter`` sweeps).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from graftkit.align.apply import permute_tensor
from graftkit.align.assignment import objective, solve
from graftkit.align.spec import HeadGroup, Permutation, PermutationSpec, axis_width, identity
from graftkit.errors import AlignmentError


@dataclass
class MatchResult:
    """A permutation that brings B into A's basis, and how the search went."""

    perm: Permutation
    iterations: int
    converged: bool
    seconds: float
    objective: float  # matched similarity: weight inner products, or summed activation correlations


def check_same_shapes(spec: PermutationSpec, params_a: dict, params_b: dict) -> None:
    """Both models must fit the spec; different widths or depths cannot be permuted onto each other."""
    spec.validate(params_a, "model A")
    try:
        spec.validate(params_b, "model B")
    except AlignmentError as exc:
        raise AlignmentError(
            f"model B does not fit model A's permutation spec: {exc.message}",
            hint="permutation matching needs two models of one architecture and size; for "
            "different widths use graftkit.align.ot_fuse, for different depths choose a layer "
            "mapping (which layer of B stands for which layer of A) with "
            "graftkit.align.select_layers first",
        ) from None


def _group_sims(spec, group_axes, perm, params_a, params_b, name, cache) -> dict[str, torch.Tensor]:
    group = spec.groups[name]
    sims: dict[str, torch.Tensor] = {}
    for tensor, axis, ref in group_axes[name]:
        n = axis_width(group, ref) // ref.expand()
        key = (tensor, axis)
        if key not in cache:  # A's side never changes
            cache[key] = params_a[tensor].movedim(axis, 0).reshape(n, -1)
        wa = cache[key]
        wb = permute_tensor(spec, perm, tensor, params_b[tensor], except_axis=axis)
        wb = wb.movedim(axis, 0).reshape(n, -1)
        s = wa @ wb.T
        role = ref.role if isinstance(group, HeadGroup) else ""  # plain groups: unit level
        sims[role] = sims[role] + s if role in sims else s
    return sims


def weight_matching(
    spec: PermutationSpec,
    params_a: dict[str, torch.Tensor],
    params_b: dict[str, torch.Tensor],
    *,
    max_iter: int = 100,
    seed: int = 0,
    init: Permutation | None = None,
) -> MatchResult:
    """The permutation of B's units that best matches A's weights (apply it to B)."""
    check_same_shapes(spec, params_a, params_b)
    start = time.perf_counter()
    # float32 products: the assignment only needs the ranking, and float64 is 2-4x slower
    params_a = {k: v.detach().float() for k, v in params_a.items()}
    params_b = {k: v.detach().float() for k, v in params_b.items()}
    cache: dict = {}
    group_axes = spec.group_axes()
    names = [n for n in spec.groups if n in group_axes]
    perm = dict(init) if init is not None else identity(spec)
    gen = torch.Generator().manual_seed(seed)
    # a group's problem depends only on the groups sharing a tensor with it: when none
    # of them changed since it was last solved, solving it again cannot improve anything
    neighbours = {n: {r.group for t, _, _ in group_axes[n] for r in spec.axes[t] if r and r.group != n}
                  for n in names}
    version = dict.fromkeys(names, 0)
    seen: dict[str, dict[str, int]] = {}
    converged = False
    iteration = 0
    for iteration in range(1, max_iter + 1):
        improved = False
        for i in torch.randperm(len(names), generator=gen).tolist():
            name = names[i]
            state = {n: version[n] for n in neighbours[name]}
            if seen.get(name) == state:
                continue
            seen[name] = state
            sims = _group_sims(spec, group_axes, perm, params_a, params_b, name, cache)
            old = objective(spec.groups[name], sims, perm[name])
            candidate = solve(spec.groups[name], sims)
            new = objective(spec.groups[name], sims, candidate)
            if new > old + 1e-7 * max(1.0, abs(old)):
                perm[name] = candidate
                version[name] += 1
                improved = True
        if not improved:
            converged = True
            break
    seconds = time.perf_counter() - start
    total = sum(
        float((params_a[n].double() * permute_tensor(spec, perm, n, params_b[n]).double()).sum())
        for n in spec.axes
    )
    return MatchResult(perm, iteration, converged, seconds, total)
