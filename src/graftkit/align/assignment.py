"""Linear assignment for one group, given similarities between A's and B's units.

Both weight matching and activation matching reduce to: for one group, a similarity
``S[i, j]`` between unit i of A and unit j of B (per role for a head group); find the
allowed permutation maximizing the summed similarity of matched pairs. A plain group is
one ``linear_sum_assignment``. A head group is solved in two levels: for every pair of
key/value heads (g of A, h of B), the best within-head matching (query heads of the
group, q/k dimensions, v/o dimensions) and its value; then one assignment of heads on
those values. For multi-head attention this is the exact optimum over allowed head
permutations; for grouped-query attention the query heads of a group are matched first,
then the q/k dimensions they share (a greedy step, exact when q/k dims are pinned).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from graftkit.align.spec import AxisRef, Group, HeadGroup, HeadPermutation, PermValue, axis_index


def _lap(s: np.ndarray) -> tuple[np.ndarray, float]:
    rows, cols = linear_sum_assignment(s, maximize=True)
    return cols, float(s[rows, cols].sum())


def solve(group: Group | HeadGroup, sims: dict[str, torch.Tensor]) -> PermValue:
    """The permutation of ``group`` maximizing the matched similarity (``sims`` per role)."""
    if isinstance(group, HeadGroup):
        return _solve_heads(group, sims)
    cols, _ = _lap(sims[""].double().cpu().numpy())
    return torch.as_tensor(cols, dtype=torch.long)


def objective(group: Group | HeadGroup, sims: dict[str, torch.Tensor], value: PermValue) -> float:
    """Summed similarity of the pairs that ``value`` matches."""
    total = 0.0
    for role, s in sims.items():
        idx = axis_index(group, value, AxisRef(group.name, role))
        total += float(s[torch.arange(s.shape[0]), idx].sum())
    return total


def _solve_heads(g: HeadGroup, sims: dict[str, torch.Tensor]) -> HeadPermutation:
    nkv, r, d = g.num_kv_heads, g.group_size, g.head_dim

    def get(role: str, kv_only: bool) -> np.ndarray | None:
        s = sims.get(role)
        if s is None:
            return None
        s = s.double().cpu().numpy()
        if kv_only:
            return s.reshape(nkv, d, nkv, d)
        return s.reshape(nkv, r, d, nkv, r, d)

    sq, sk, sv, so = get("q", False), get("k", True), get("v", True), get("o", False)
    eye_r = np.arange(r)
    score = np.zeros((nkv, nkv))
    choice: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for a in range(nkv):
        for b in range(nkv):
            # query heads of the group (MHA: one head, nothing to choose)
            if r > 1 and (sq is not None or so is not None):
                pair = np.zeros((r, r))
                for j in range(r):
                    for jj in range(r):
                        if sq is not None:
                            block = sq[a, j, :, b, jj, :]
                            pair[j, jj] += np.trace(block) if g.rotary else _lap(block)[1]
                        if so is not None:
                            pair[j, jj] += _lap(so[a, j, :, b, jj, :])[1]
                qa, _ = _lap(pair)
            else:
                qa = eye_r
            # q/k dimensions, shared by the group's query heads and its key head
            m = np.zeros((d, d))
            if sk is not None:
                m += sk[a, :, b, :]
            if sq is not None:
                for j in range(r):
                    m += sq[a, j, :, b, qa[j], :]
            if g.rotary:
                qk, qk_val = np.arange(d), float(np.trace(m))
            else:
                qk, qk_val = _lap(m)
            # v/o dimensions
            m = np.zeros((d, d))
            if sv is not None:
                m += sv[a, :, b, :]
            if so is not None:
                for j in range(r):
                    m += so[a, j, :, b, qa[j], :]
            vo, vo_val = _lap(m)
            score[a, b] = qk_val + vo_val
            choice[(a, b)] = (np.asarray(qa), np.asarray(qk), np.asarray(vo))
    kv, _ = _lap(score)
    q = np.stack([choice[(a, kv[a])][0] for a in range(nkv)])
    qk = np.stack([choice[(a, kv[a])][1] for a in range(nkv)])
    vo = np.stack([choice[(a, kv[a])][2] for a in range(nkv)])
    as_long = lambda x: torch.as_tensor(np.asarray(x), dtype=torch.long)  # noqa: E731
    return HeadPermutation(kv=as_long(kv), q=as_long(q), qk=as_long(qk), vo=as_long(vo))
