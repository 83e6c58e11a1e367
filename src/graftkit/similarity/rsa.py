"""Representational similarity analysis (Kriegeskorte et al. 2008).

Each representation becomes a representational dissimilarity matrix (RDM) over
its n inputs; two representations are compared by the correlation (Pearson or
Spearman) of their RDMs' upper triangles. ``rdm_upper`` builds the upper triangle
directly, block of rows by block of rows, computing only the products above the
diagonal (half the work of the full matrix, and no n x n index arrays); Spearman
ranks come from ``graftkit.similarity.ranks`` (exact, ties averaged). Memory: the
n (n - 1) / 2 upper-triangle values per side (400 MB at n = 10,000).
"""

from __future__ import annotations

from typing import Any

import torch

from graftkit.errors import ConfigError, DataError
from graftkit.similarity.checks import as_features, pair
from graftkit.similarity.ranks import average_ranks

ROW_BLOCK = 256  # rows of the RDM computed at once by rdm_upper (256 x n float64)

RDM_METHODS = ("correlation", "euclidean")
CORRELATIONS = ("spearman", "pearson")


def _unit_rows(x: torch.Tensor, name: str | None) -> torch.Tensor:
    """Rows centered and scaled to unit norm: their dot products are Pearson correlations."""
    z = x - x.mean(1, keepdim=True)
    norms = z.norm(dim=1, keepdim=True)
    if bool((norms == 0).any()):
        where = f"layer {name!r}" if name else "activations"
        raise DataError(
            f"{where}: a sample has identical values in every feature, its correlation is undefined",
            hint="use rdm='euclidean' or a layer with more than one feature",
        )
    return z / norms


def _check_method(method: str) -> None:
    if method not in RDM_METHODS:
        raise ConfigError(f"unknown RDM method {method!r}", hint=f"choose one of: {', '.join(RDM_METHODS)}")


def rdm(x: Any, method: str = "correlation", name: str | None = None) -> torch.Tensor:
    """n x n dissimilarities: 1 - Pearson correlation between samples, or Euclidean distance."""
    _check_method(method)
    x = as_features(x, name, min_samples=3)
    if method == "correlation":
        z = _unit_rows(x, name)
        return 1.0 - z @ z.T
    sq = (x * x).sum(1)
    return (sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)).clamp_min_(0.0).sqrt_()


def rdm_upper(x: Any, method: str = "correlation", name: str | None = None) -> torch.Tensor:
    """The upper triangle of ``rdm(x, method)`` (row by row, as scipy's ``pdist``), float64,
    without building the n x n matrix."""
    _check_method(method)
    x = as_features(x, name, min_samples=3)
    n = x.shape[0]
    if method == "correlation":
        rows = _unit_rows(x, name)
    else:
        rows = x - x.mean(0, keepdim=True)  # distances do not change; smaller norms, less rounding
        sq = (rows * rows).sum(1)
    out = torch.empty(n * (n - 1) // 2, dtype=torch.float64)
    position = 0
    for start in range(0, n - 1, ROW_BLOCK):
        stop = min(start + ROW_BLOCK, n - 1)
        block = rows[start:stop] @ rows[start:].T  # (b, n - start): columns from the block's first row on
        if method == "correlation":
            block.neg_().add_(1.0)
        else:
            block.mul_(-2.0).add_(sq[start:stop, None]).add_(sq[None, start:]).clamp_min_(0.0).sqrt_()
        local = torch.arange(stop - start)
        above = torch.arange(n - start)[None, :] > local[:, None]
        values = block[above]
        out[position : position + values.numel()] = values
        position += values.numel()
    return out


def pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a = a - a.mean()
    b = b - b.mean()
    denom = a.norm() * b.norm()
    if float(denom) == 0.0:
        raise DataError("RSA: one RDM is constant (all inputs equally dissimilar), the correlation is undefined",
                        hint="use more varied inputs")
    return (a @ b) / denom


def upper_triangle(matrix: torch.Tensor) -> torch.Tensor:
    n = matrix.shape[0]
    rows, cols = torch.triu_indices(n, n, offset=1, device=matrix.device)
    return matrix[rows, cols]


def _check_correlation(correlation: str) -> None:
    if correlation not in CORRELATIONS:
        raise ConfigError(f"unknown RSA correlation {correlation!r}", hint=f"choose one of: {', '.join(CORRELATIONS)}")


def correlate_triangles(a: torch.Tensor, b: torch.Tensor, correlation: str = "spearman") -> float:
    """Spearman or Pearson correlation of two RDM upper triangles."""
    _check_correlation(correlation)
    if correlation == "spearman":
        a, b = average_ranks(a), average_ranks(b)
    return float(pearson(a, b))


def rsa_from_rdms(rdm_x: torch.Tensor, rdm_y: torch.Tensor, correlation: str = "spearman") -> float:
    """Correlation of the upper triangles of two RDMs."""
    _check_correlation(correlation)
    return correlate_triangles(upper_triangle(rdm_x), upper_triangle(rdm_y), correlation)


def rsa(
    x: Any,
    y: Any,
    *,
    correlation: str = "spearman",
    method: str = "correlation",
    names: tuple[str | None, str | None] = (None, None),
) -> float:
    """RSA score in [-1, 1]: how alike the two representations' geometry over the inputs is."""
    _check_correlation(correlation)
    x, y = pair(x, y, names, min_samples=3)
    return correlate_triangles(rdm_upper(x, method, names[0]), rdm_upper(y, method, names[1]), correlation)
