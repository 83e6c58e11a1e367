"""Representational similarity analysis (Kriegeskorte et al. 2008).

Each representation becomes a representational dissimilarity matrix (RDM) over
its n inputs; two representations are compared by the correlation (Pearson or
Spearman) of their RDMs' upper triangles. Needs n x n memory per side.
"""

from __future__ import annotations

from typing import Any

import torch

from graftkit.errors import ConfigError, DataError
from graftkit.similarity.checks import as_features, pair

RDM_METHODS = ("correlation", "euclidean")
CORRELATIONS = ("spearman", "pearson")


def rdm(x: Any, method: str = "correlation", name: str | None = None) -> torch.Tensor:
    """n x n dissimilarities: 1 - Pearson correlation between samples, or Euclidean distance."""
    x = as_features(x, name, min_samples=3)
    if method == "correlation":
        z = x - x.mean(1, keepdim=True)
        norms = z.norm(dim=1, keepdim=True)
        if bool((norms == 0).any()):
            where = f"layer {name!r}" if name else "activations"
            raise DataError(
                f"{where}: a sample has identical values in every feature, its correlation is undefined",
                hint="use rdm='euclidean' or a layer with more than one feature",
            )
        z = z / norms
        return 1.0 - z @ z.T
    if method == "euclidean":
        sq = (x * x).sum(1)
        return (sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)).clamp_min_(0.0).sqrt_()
    raise ConfigError(f"unknown RDM method {method!r}", hint=f"choose one of: {', '.join(RDM_METHODS)}")


def average_ranks(v: torch.Tensor) -> torch.Tensor:
    """Ranks with ties given their average rank (as scipy.stats.rankdata)."""
    order = torch.argsort(v)
    sorted_v = v[order]
    _, inverse, counts = torch.unique_consecutive(sorted_v, return_inverse=True, return_counts=True)
    starts = torch.cumsum(counts, 0) - counts
    group_rank = starts.to(v.dtype) + (counts.to(v.dtype) - 1) / 2
    ranks = torch.empty_like(v)
    ranks[order] = group_rank[inverse]
    return ranks


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


def rsa_from_rdms(rdm_x: torch.Tensor, rdm_y: torch.Tensor, correlation: str = "spearman") -> float:
    """Correlation of the upper triangles of two RDMs."""
    if correlation not in CORRELATIONS:
        raise ConfigError(f"unknown RSA correlation {correlation!r}", hint=f"choose one of: {', '.join(CORRELATIONS)}")
    a, b = upper_triangle(rdm_x), upper_triangle(rdm_y)
    if correlation == "spearman":
        a, b = average_ranks(a), average_ranks(b)
    return float(pearson(a, b))


def rsa(
    x: Any,
    y: Any,
    *,
    correlation: str = "spearman",
    method: str = "correlation",
    names: tuple[str | None, str | None] = (None, None),
) -> float:
    """RSA score in [-1, 1]: how alike the two representations' geometry over the inputs is."""
    x, y = pair(x, y, names, min_samples=3)
    return rsa_from_rdms(rdm(x, method, names[0]), rdm(y, method, names[1]), correlation)
