"""Centered kernel alignment (Kornblith et al. 2019, arXiv 1905.00414).

CKA compares two representations of the same n inputs through their n x n
similarity (Gram) matrices: CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)).
With a linear kernel it equals ||Y'X||_F^2 / (||X'X||_F ||Y'Y||_F) on centered
features, which needs d x d products instead of n x n ones; ``linear_cka`` picks
whichever side is cheaper. ``debiased=True`` swaps the biased HSIC estimator for
the unbiased one (Song et al. 2012), whose value does not drift upwards when the
number of features is large compared with n.

Invariances: orthogonal maps and isotropic scaling of either side (all three
kernels), not general invertible linear maps.
"""

from __future__ import annotations

from typing import Any

import torch

from graftkit.errors import DataError
from graftkit.similarity.checks import centered, pair
from graftkit.similarity.precision import product_dtype
from graftkit.similarity.symmetric import column_gram


def _zero_variance(name: str | None) -> DataError:
    where = f"layer {name!r}" if name else "activations"
    return DataError(
        f"{where}: constant over all samples (zero variance), so CKA is undefined",
        hint="pick another layer or use inputs that differ; a dead or saturated layer cannot be compared",
    )


def _ratio(cross: torch.Tensor, norm_x: torch.Tensor, norm_y: torch.Tensor, names) -> float:
    if float(norm_x) <= 0.0:
        raise _zero_variance(names[0])
    if float(norm_y) <= 0.0:
        raise _zero_variance(names[1])
    return float(cross / (norm_x * norm_y))


def _debias(xty, rows_x, rows_y, sq_x, sq_y, n: int):
    """Unbiased HSIC numerator in feature space (Kornblith's reference code, centered features)."""
    return xty - n / (n - 2.0) * torch.dot(rows_x, rows_y) + sq_x * sq_y / ((n - 1) * (n - 2))


def linear_cka(
    x: Any,
    y: Any,
    *,
    debiased: bool = False,
    names: tuple[str | None, str | None] = (None, None),
    dtype: torch.dtype = torch.float64,
) -> float:
    """Linear CKA between (n, d1) and (n, d2) activations; 1 means identical up to rotation and scale.

    Computed in feature space (d x d) when n > min(d1, d2), else with n x n Gram matrices.
    """
    x, y = pair(x, y, names, dtype=dtype, min_samples=4 if debiased else 2)
    x, y = centered(x), centered(y)
    n = x.shape[0]
    if debiased:
        xty = torch.linalg.matrix_norm(y.T @ x) ** 2
        xtx = torch.linalg.matrix_norm(column_gram(x)) ** 2
        yty = torch.linalg.matrix_norm(column_gram(y)) ** 2
        rows_x, rows_y = (x * x).sum(1), (y * y).sum(1)
        sq_x, sq_y = rows_x.sum(), rows_y.sum()
        cross = _debias(xty, rows_x, rows_y, sq_x, sq_y, n)
        norm_x = _debias(xtx, rows_x, rows_x, sq_x, sq_x, n).clamp_min(0).sqrt()
        norm_y = _debias(yty, rows_y, rows_y, sq_y, sq_y, n).clamp_min(0).sqrt()
        return _ratio(cross, norm_x, norm_y, names)
    if n > min(x.shape[1], y.shape[1]):
        cross = torch.linalg.matrix_norm(y.T @ x) ** 2
        norm_x = torch.linalg.matrix_norm(column_gram(x))
        norm_y = torch.linalg.matrix_norm(column_gram(y))
        return _ratio(cross, norm_x, norm_y, names)
    return cka_from_grams(x @ x.T, y @ y.T, names=names)


def gram_linear(x: torch.Tensor) -> torch.Tensor:
    """K = X X' (n x n)."""
    return x @ x.T


def squared_distances(x: torch.Tensor) -> torch.Tensor:
    """Pairwise squared Euclidean distances between rows, clamped at 0 against rounding."""
    sq = (x * x).sum(1)
    return (sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)).clamp_min_(0.0)


def _median(values: torch.Tensor) -> torch.Tensor:
    """numpy's median: the mean of the two middle values for an even count (torch.median takes the lower)."""
    m = values.numel()
    low = torch.kthvalue(values, (m + 1) // 2).values
    if m % 2:
        return low
    return (low + torch.kthvalue(values, m // 2 + 1).values) / 2


def gram_rbf(x: torch.Tensor, threshold: float = 1.0) -> torch.Tensor:
    """RBF Gram matrix with bandwidth sigma = threshold x sqrt(median squared distance).

    The median is taken over all n^2 entries, the diagonal included, as in the
    reference implementation; threshold=0.5 is "sigma = half the median distance".
    """
    d2 = squared_distances(x)
    median = _median(d2.flatten())
    if float(median) <= 0.0:
        raise DataError(
            "RBF CKA: the median pairwise distance is 0 (most samples are identical), so no bandwidth can be set",
            hint="use more varied inputs or linear_cka",
        )
    return torch.exp(-d2 / (2.0 * threshold**2 * median))


def center_gram(gram: torch.Tensor, unbiased: bool = False) -> torch.Tensor:
    """H K H (biased) or the U-statistic centering of the unbiased HSIC estimator (a new tensor)."""
    gram = gram.clone()
    n = gram.shape[0]
    if unbiased:
        gram.fill_diagonal_(0.0)
        means = gram.sum(0) / (n - 2)
        means -= means.sum() / (2 * (n - 1))
        gram -= means[:, None]
        gram -= means[None, :]
        gram.fill_diagonal_(0.0)
    else:
        means = gram.mean(0)
        means -= means.mean() / 2
        gram -= means[:, None]
        gram -= means[None, :]
    return gram


def cka_from_grams(
    gram_x: torch.Tensor,
    gram_y: torch.Tensor,
    *,
    debiased: bool = False,
    names: tuple[str | None, str | None] = (None, None),
) -> float:
    """CKA of two n x n Gram matrices (any kernel)."""
    kx = center_gram(gram_x, debiased)
    ky = center_gram(gram_y, debiased)
    cross = (kx * ky).sum()
    return _ratio(cross, torch.linalg.matrix_norm(kx), torch.linalg.matrix_norm(ky), names)


ROW_BLOCK = 1024  # rows per block of a symmetric n x n matrix kept as upper block rows


class UpperBlocks:
    """A symmetric n x n matrix stored as block rows of its upper part: block r holds rows
    [start, stop) and columns [start, n). The square diagonal block is complete; the part to
    its right stands for itself and its mirror image below the diagonal. About half the
    memory and half the arithmetic of the full matrix."""

    def __init__(self, n: int, blocks: list[tuple[int, int, torch.Tensor]]):
        self.n = n
        self.blocks = blocks

    def row_sums(self) -> torch.Tensor:
        """Row sums of the full matrix (float64)."""
        sums = torch.zeros(self.n, dtype=torch.float64)
        for start, stop, block in self.blocks:
            sums[start:stop] += block.sum(1).double()
            sums[stop:] += block[:, stop - start :].sum(0).double()  # the mirror image, below
        return sums

    def center(self) -> None:
        """H K H in place: subtract row and column means, add back the grand mean."""
        means = self.row_sums() / self.n
        shifted = means - means.mean()
        for start, stop, block in self.blocks:
            block.sub_(means[start:stop, None].to(block.dtype)).sub_(shifted[None, start:].to(block.dtype))

    def dot(self, other: UpperBlocks) -> torch.Tensor:
        """Frobenius inner product of the full matrices, each block summed by torch's cascade
        summation (accurate in float32), the blocks' sums added in float64."""
        total = torch.zeros((), dtype=torch.float64)
        for (start, stop, a), (_, _, b) in zip(self.blocks, other.blocks):
            width = stop - start
            total += (a[:, :width] * b[:, :width]).sum().double()
            total += 2.0 * (a[:, width:] * b[:, width:]).sum().double()
        return total


def _squared_distance_blocks(z: torch.Tensor, sq: torch.Tensor):
    """Pairwise squared distances between the rows of z as ``UpperBlocks`` (z's dtype), and a
    numpy copy of their strict upper triangle (for the median)."""
    import numpy as np

    n = z.shape[0]
    upper = np.empty(n * (n - 1) // 2, dtype=np.float32 if z.dtype == torch.float32 else np.float64)
    blocks = []
    position = 0
    for start in range(0, n, ROW_BLOCK):
        stop = min(start + ROW_BLOCK, n)
        block = torch.addmm(sq[start:stop, None], z[start:stop], z[start:].T, alpha=-2.0)
        block.add_(sq[None, start:]).clamp_min_(0.0)
        local = torch.arange(stop - start)
        block[local, local] = 0.0
        rows = block.numpy()
        for i in range(stop - start):  # numpy slices: ~1 us each, no n x n index arrays
            count = n - start - i - 1
            upper[position : position + count] = rows[i, i + 1 :]
            position += count
        blocks.append((start, stop, block))
    return UpperBlocks(n, blocks), upper


def _median_from_upper(upper, n: int) -> float:
    """numpy's median of all n^2 entries of a symmetric matrix with a zero diagonal, from its
    strict upper triangle alone (a numpy array, reordered in place): sorted, the entries are
    the n diagonal zeros followed by every off-diagonal value twice, so the k-th smallest is
    0 for k <= n, else the ceil((k - n) / 2)-th smallest off-diagonal value; one
    ``np.partition`` (linear time) finds it."""
    total = n * n
    wanted = [(total + 1) // 2] if total % 2 else [total // 2, total // 2 + 1]
    ranks = sorted({(w - n + 1) // 2 - 1 for w in wanted if w > n})
    if ranks:
        upper.partition(ranks)
    values = [0.0 if w <= n else float(upper[(w - n + 1) // 2 - 1]) for w in wanted]
    return sum(values) / len(values)


def _centered_rbf(x: torch.Tensor, threshold: float, precision: str, name: str | None):
    """The doubly centered RBF Gram matrix H K H of x (float64 input) as ``UpperBlocks``,
    computed in place, and its Frobenius norm (float64)."""
    xc = centered(x)  # distances do not change; smaller norms, fewer lost digits
    n, d = xc.shape
    z = xc.to(product_dtype(precision, n * n * d / 2))
    k, upper = _squared_distance_blocks(z, (xc * xc).sum(1).to(z.dtype))
    median = _median_from_upper(upper, n)
    del upper
    if median <= 0.0:
        raise DataError(
            "RBF CKA: the median pairwise distance is 0 (most samples are identical), so no bandwidth can be set",
            hint="use more varied inputs or linear_cka",
        )
    scale = -1.0 / (2.0 * threshold**2 * median)
    for _, _, block in k.blocks:
        block.mul_(scale).exp_()
    k.center()
    norm = k.dot(k).sqrt()
    if float(norm) <= 0.0:
        raise _zero_variance(name)
    return k, norm


def rbf_cka(
    x: Any,
    y: Any,
    *,
    threshold: float = 0.5,
    debiased: bool = False,
    names: tuple[str | None, str | None] = (None, None),
    dtype: torch.dtype = torch.float64,
    precision: str = "auto",
) -> float:
    """CKA with RBF kernels, sigma = ``threshold`` x median distance of each side (n x n memory).

    The biased estimator keeps one n x n buffer per side (distances, then kernel, then
    centered kernel, in place); ``precision`` picks the Gram products' float type
    (``graftkit.similarity.precision``).
    """
    x, y = pair(x, y, names, dtype=dtype, min_samples=4 if debiased else 2)
    if debiased:
        return cka_from_grams(gram_rbf(x, threshold), gram_rbf(y, threshold), debiased=True, names=names)
    kx, norm_x = _centered_rbf(x, threshold, precision, names[0])
    ky, norm_y = _centered_rbf(y, threshold, precision, names[1])
    return _ratio(kx.dot(ky), norm_x, norm_y, names)


def debiased_cka(x: Any, y: Any, **kwargs: Any) -> float:
    """Linear CKA with the unbiased HSIC estimator."""
    return linear_cka(x, y, debiased=True, **kwargs)
