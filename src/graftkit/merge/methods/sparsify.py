"""Sparsification of task vectors (deltas): which entries of each delta survive.

Masks are computed on float32 deltas. Random masks draw from a ``DropNoise``
stream (counter-based, the engine's default: any block of rows gets the same
mask, see ``noise.py``) or from an explicit ``torch.Generator`` with
``torch.bernoulli`` over a probability tensor, the same kernel and draw order
mergekit uses, so a generator seeded like mergekit's global RNG reproduces its
masks exactly (see docs/merge_methods.md).

Rescaling after a drop comes in two flavours: ``"l1"`` (mergekit: scale the kept
entries so the delta's L1 norm is unchanged, one factor per tensor) and
``"paper"`` (DARE/DELLA: divide each kept entry by its keep probability).
"""

from __future__ import annotations

import math

import torch

from graftkit.errors import ConfigError
from graftkit.merge.methods.noise import DropNoise

_NORM_EPS = 1e-7


def apply_mask(delta: torch.Tensor, mask: torch.Tensor, rescale: str | None, keep_prob: torch.Tensor | float | None = None) -> torch.Tensor:
    """``delta * mask``, rescaled as asked.

    ``"l1"`` leaves the result unscaled when either norm is below 1e-7 (an
    all-zero delta or an empty mask), as mergekit does.
    """
    masked = delta * mask
    if rescale is None:
        return masked
    if rescale == "l1":
        before = torch.linalg.vector_norm(delta, 1)
        after = torch.linalg.vector_norm(masked, 1)
        if before < _NORM_EPS or after < _NORM_EPS:
            return masked
        return masked * (before / after)
    if rescale == "paper":
        if keep_prob is None:
            return masked
        if isinstance(keep_prob, torch.Tensor):
            return torch.where(keep_prob > 0, masked / keep_prob.clamp(min=1e-12), torch.zeros_like(masked))
        return masked / keep_prob if keep_prob > 0 else torch.zeros_like(masked)
    raise ConfigError(f"unknown rescale mode {rescale!r}; use 'l1' or 'paper'")


def top_k_mask(values: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean mask of exactly ``k`` largest entries of a 1-D tensor, in linear time.

    Entries above the k-th largest value are kept, then entries equal to it, in
    index order, until there are ``k`` (a full argsort, as mergekit does, costs
    n log n and breaks such ties in an unspecified order).
    """
    n = values.numel()
    if k <= 0:
        return torch.zeros(n, dtype=torch.bool, device=values.device)
    if k >= n:
        return torch.ones(n, dtype=torch.bool, device=values.device)
    threshold = kth_largest(values, k)
    mask = values > threshold
    missing = k - int(mask.sum())
    if missing > 0:
        equal = (values == threshold).nonzero().flatten()[:missing]
        mask[equal] = True
    return mask


def kth_largest(values: torch.Tensor, k: int) -> torch.Tensor:
    """The exact ``k``-th largest entry of a 1-D tensor, about 10x faster than ``kthvalue`` on big ones.

    A strided sample brackets the answer between two of its order statistics; one pass
    counts the entries above the bracket and gathers those inside it, and the answer is
    the matching order statistic of that small band. Should the bracket miss (a sample
    unlike the whole, many ties), the full ``kthvalue`` runs instead.
    """
    n = values.numel()
    if n < 1 << 20:
        return torch.kthvalue(values, n - k + 1).values
    sample = values[::64].contiguous()
    m = sample.numel()
    centre = k / n * m  # the answer's rank from the top, in sample terms
    margin = 4.0 * math.sqrt(m) + 16
    top, bottom = int(centre - margin), int(centre + margin) + 1
    high = torch.kthvalue(sample, m - top + 1).values if top >= 1 else values.new_tensor(math.inf)
    low = torch.kthvalue(sample, m - bottom + 1).values if bottom <= m else values.new_tensor(-math.inf)
    above = int((values > high).sum())
    if above < k:
        band = values[(values >= low) & (values <= high)]
        if above + band.numel() >= k:
            return torch.kthvalue(band, band.numel() - (k - above) + 1).values
    return torch.kthvalue(values, n - k + 1).values


def magnitude(delta: torch.Tensor, density: float, rescale: str | None = None) -> torch.Tensor:
    """Keep the ``max(1, int(density * n))`` entries of largest magnitude (TIES trim)."""
    if density >= 1:
        return delta
    if density <= 0 or delta.numel() == 0:
        return torch.zeros_like(delta)
    k = max(1, int(density * delta.numel()))
    mask = top_k_mask(delta.abs().reshape(-1), k).to(delta.dtype)
    return apply_mask(delta, mask.reshape(delta.shape), rescale, density)


def magnitude_outliers(
    delta: torch.Tensor, density: float, gamma: float, rescale: str | None = None
) -> torch.Tensor:
    """Model Breadcrumbs: drop the ``gamma`` share of largest entries, then the smallest.

    ``int(density * n)`` entries are kept: the ``int(gamma * n)`` largest are
    removed first (fewer when density + gamma > 1), then the smallest. Unlike the
    old ``indices[n_bot:-n_top]`` slice, a tensor where ``int(gamma * n) == 0``
    (fewer than 1/gamma entries) keeps its entries instead of losing all of them.
    """
    if density >= 1:
        return delta
    n = delta.numel()
    keep = int(density * n)
    top = int(gamma * n)
    bottom = max(0, n - keep - top)
    # ranks [bottom, bottom + keep) in ascending order = the n - bottom largest
    # minus the n - bottom - keep largest
    magnitudes = delta.abs().reshape(-1)
    mask = top_k_mask(magnitudes, n - bottom) & ~top_k_mask(magnitudes, n - bottom - keep)
    mask = mask.to(delta.dtype)
    return apply_mask(delta, mask.reshape(delta.shape), rescale, density)


def random_drop(
    delta: torch.Tensor,
    density: float,
    rescale: str | None,
    generator: torch.Generator | DropNoise | None,
) -> torch.Tensor:
    """DARE: keep each entry independently with probability ``density``."""
    if density >= 1:
        return delta
    if density <= 0:
        return torch.zeros_like(delta)
    return apply_mask(delta, drop_mask(delta, density, generator), rescale, density)


def drop_mask(delta: torch.Tensor, probs: torch.Tensor | float, generator: torch.Generator | DropNoise | None) -> torch.Tensor:
    """A 0/1 mask of ``delta``'s shape keeping each entry with its probability."""
    if isinstance(generator, DropNoise):
        return generator.keep(probs, delta.shape).to(delta.dtype)
    if not isinstance(probs, torch.Tensor):
        probs = torch.full_like(delta, probs)
    return torch.bernoulli(probs, generator=generator)


def della_magprune(
    delta: torch.Tensor,
    density: float,
    epsilon: float,
    rescale: str | None,
    generator: torch.Generator | DropNoise | None,
) -> torch.Tensor:
    """DELLA MagPrune: keep probabilities rise linearly with magnitude rank in each row.

    Probabilities span ``[density - epsilon, density + epsilon]`` over the ranks of
    each row (a 1-D tensor is one row). A row of one entry gets ``density``
    (mergekit divides 0 by 0 there).
    """
    if density >= 1:
        return delta
    if density <= 0:
        return torch.zeros_like(delta)
    if density + epsilon >= 1 or density - epsilon <= 0:
        raise ConfigError(
            f"della: density {density} +/- epsilon {epsilon} must stay inside (0, 1)",
            hint="lower epsilon or move density away from 0 and 1",
        )
    shape = delta.shape
    rows = delta.unsqueeze(0) if delta.dim() < 2 else delta
    probs = magprune_probabilities(rows, density, epsilon, torch_order=isinstance(generator, torch.Generator))
    mask = drop_mask(rows, probs, generator)
    return apply_mask(rows, mask, rescale, probs).reshape(shape)


def magprune_probabilities(rows: torch.Tensor, density: float, epsilon: float, torch_order: bool = False) -> torch.Tensor:
    """Keep probabilities of DELLA: linear in each entry's magnitude rank within its row.

    Ranks run 1..cols in every row, so rank r maps to (r - 1) / (cols - 1). Equal
    magnitudes get distinct ranks in sort order; ``torch_order`` sorts with
    ``torch.argsort`` as mergekit does (for the parity tests), else a 2-D CPU tensor
    is sorted by numpy, row blocks on parallel threads (about 3x faster).
    """
    cols = rows.shape[1]
    if cols <= 1:
        return torch.full_like(rows, density)
    magnitudes = rows.abs()
    if torch_order or rows.dim() != 2 or rows.device.type != "cpu":
        order = torch.argsort(magnitudes, dim=1)
    else:
        order = _row_argsort(magnitudes)
    # rank of each entry in its row (0 = smallest): the inverse of the sorting permutation
    positions = torch.arange(order.shape[1], dtype=rows.dtype, device=rows.device)
    shape = [1] * order.dim()
    shape[1] = -1
    ranks = torch.empty_like(rows).scatter_(1, order, positions.reshape(shape).expand_as(order).contiguous())
    return ranks.mul_(2 * epsilon / (order.shape[1] - 1)).add_(density - epsilon)


_SORT_POOL = None


def _row_argsort(values: torch.Tensor) -> torch.Tensor:
    """``argsort(values, dim=1)`` of a 2-D CPU tensor through numpy, row blocks on a thread pool
    of torch's thread count (numpy releases the GIL while it sorts)."""
    import numpy as np

    global _SORT_POOL
    array = values.detach().numpy()
    workers = max(1, min(torch.get_num_threads(), array.shape[0] // 64))
    if workers == 1 or array.size < 1 << 18:
        return torch.from_numpy(np.argsort(array, axis=1))
    if _SORT_POOL is None or _SORT_POOL._max_workers < workers:
        from concurrent.futures import ThreadPoolExecutor

        _SORT_POOL = ThreadPoolExecutor(workers, thread_name_prefix="graftkit-sort")
    out = np.empty(array.shape, dtype=np.int64)
    bounds = np.linspace(0, array.shape[0], workers + 1).astype(int)

    def sort(i: int) -> None:
        out[bounds[i]:bounds[i + 1]] = np.argsort(array[bounds[i]:bounds[i + 1]], axis=1)

    list(_SORT_POOL.map(sort, range(workers)))
    return torch.from_numpy(out)
