"""Canonical correlation analysis family: CCA R^2, SVCCA (Raghu et al. 2017), PWCCA (Morcos et al. 2018).

All three work from the d x d covariances of the two sides (float64): each side is
whitened through the eigendecomposition of its covariance, and the canonical
correlations are the singular values of the whitened cross-covariance. Directions
whose variance is below ``rank_tol`` x the largest are dropped (collinear
features), so rank-deficient activations do not produce spurious correlations of 1.

Every CCA needs more samples than features: with n <= d every canonical
correlation is 1 whatever the data, so such input is refused with a DataError.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from graftkit.errors import ConfigError, DataError
from graftkit.similarity.checks import as_features, centered, require_more_samples_than_features
from graftkit.similarity.symmetric import column_gram

RANK_TOL = 1e-10


@dataclass
class CCASide:
    """One representation prepared for CCA: centered data and its covariance eigenbasis."""

    name: str | None
    x: torch.Tensor          # (n, d) centered (or raw when center=False)
    cov: torch.Tensor        # (d, d) X'X
    eigvals: torch.Tensor    # (k,) kept eigenvalues, descending
    eigvecs: torch.Tensor    # (d, k)


def prepare_cca(x: Any, name: str | None = None, *, metric: str = "CCA", center: bool = True,
                rank_tol: float = RANK_TOL) -> CCASide:
    """Validate, center and eigendecompose one side (reusable across many comparisons)."""
    x = as_features(x, name, min_samples=3)
    require_more_samples_than_features(x, name, metric)
    if center:
        x = centered(x)
    cov = column_gram(x)
    vals, vecs = torch.linalg.eigh(cov)
    vals, vecs = vals.flip(0), vecs.flip(1)
    top = float(vals[0]) if vals.numel() else 0.0
    if top <= 0.0:
        where = f"layer {name!r}" if name else "activations"
        raise DataError(f"{where}: constant over all samples, {metric} is undefined",
                        hint="pick another layer or use inputs that differ")
    keep = vals > rank_tol * top
    return CCASide(name, x, cov, vals[keep], vecs[:, keep])


def _check_pair(a: CCASide, b: CCASide) -> None:
    if a.x.shape[0] != b.x.shape[0]:
        from graftkit.errors import ShapeMismatchError

        raise ShapeMismatchError(
            f"layer {a.name!r} has {a.x.shape[0]} samples but layer {b.name!r} has {b.x.shape[0]}",
            hint="both activation matrices must come from the same inputs in the same order",
        )


def _whitened_cross(a: CCASide, b: CCASide, ka: int | None = None, kb: int | None = None):
    """Whitening maps (d, k) of both sides (optionally only the top k directions) and their cross matrix."""
    _check_pair(a, b)
    wa = a.eigvecs[:, :ka] / a.eigvals[:ka].sqrt()
    wb = b.eigvecs[:, :kb] / b.eigvals[:kb].sqrt()
    cross = wa.T @ (a.x.T @ b.x) @ wb
    return wa, wb, cross


def canonical_correlations(a: CCASide, b: CCASide) -> torch.Tensor:
    """Canonical correlations, descending, min(rank a, rank b) of them."""
    _, _, cross = _whitened_cross(a, b)
    return torch.linalg.svdvals(cross).clamp(0.0, 1.0)


def cca_r2(x: Any, y: Any, *, center: bool = True, names: tuple[str | None, str | None] = (None, None)) -> float:
    """Mean squared canonical correlation R^2_CCA (invariant to any invertible linear map).

    ``center=False`` reproduces the CKA paper's notebook, which runs CCA on uncentered data.
    """
    a = prepare_cca(x, names[0], metric="CCA", center=center)
    b = prepare_cca(y, names[1], metric="CCA", center=center)
    return cca_r2_prepared(a, b)


def cca_r2_prepared(a: CCASide, b: CCASide) -> float:
    """The squared canonical correlations sum to the squared Frobenius norm of the whitened
    cross-covariance, so no SVD is needed (each is at most 1 in exact arithmetic; a rounding
    excess is clipped by capping the mean at 1)."""
    _, _, cross = _whitened_cross(a, b)
    total = torch.linalg.matrix_norm(cross) ** 2
    return float((total / min(a.eigvals.numel(), b.eigvals.numel())).clamp(0.0, 1.0))


def _directions_for_variance(side: CCASide, keep_variance: float) -> int:
    share = torch.cumsum(side.eigvals, 0) / side.eigvals.sum()
    return int(torch.searchsorted(share, torch.tensor(keep_variance, dtype=share.dtype)).item()) + 1


def svcca(
    x: Any,
    y: Any,
    *,
    keep_variance: float = 0.99,
    dims: int | None = None,
    names: tuple[str | None, str | None] = (None, None),
) -> float:
    """SVCCA: keep the top singular directions of each side (``keep_variance`` of the variance,
    or exactly ``dims``), then the mean canonical correlation between them."""
    a = prepare_cca(x, names[0], metric="SVCCA")
    b = prepare_cca(y, names[1], metric="SVCCA")
    return svcca_prepared(a, b, keep_variance=keep_variance, dims=dims)


def svcca_prepared(a: CCASide, b: CCASide, *, keep_variance: float = 0.99, dims: int | None = None) -> float:
    if not 0.0 < keep_variance <= 1.0:
        raise ConfigError(f"keep_variance must be in (0, 1], got {keep_variance}", hint="the paper uses 0.99")
    if dims is not None:
        if dims < 1:
            raise ConfigError(f"dims must be positive, got {dims}")
        ka, kb = min(dims, a.eigvals.numel()), min(dims, b.eigvals.numel())
    else:
        ka, kb = _directions_for_variance(a, keep_variance), _directions_for_variance(b, keep_variance)
    _, _, cross = _whitened_cross(a, b, ka, kb)
    rho = torch.linalg.svdvals(cross).clamp(0.0, 1.0)
    return float(rho.mean())


def pwcca(x: Any, y: Any, *, names: tuple[str | None, str | None] = (None, None)) -> float:
    """Projection-weighted CCA: canonical correlations weighted by how much of X's neurons
    each canonical variate accounts for (sum of |<variate, neuron>|). Not symmetric: weights come from ``x``."""
    a = prepare_cca(x, names[0], metric="PWCCA")
    b = prepare_cca(y, names[1], metric="PWCCA")
    return pwcca_prepared(a, b)


def pwcca_prepared(a: CCASide, b: CCASide) -> float:
    wa, _, cross = _whitened_cross(a, b)
    left, rho, _ = torch.linalg.svd(cross, full_matrices=False)
    rho = rho.clamp(0.0, 1.0)
    # canonical variates of x are X wa left (orthonormal columns); their inner products
    # with x's neurons are left' wa' X'X
    projections = left.T @ wa.T @ a.cov
    weights = projections.abs().sum(1)
    weights = weights / weights.sum()
    return float((weights * rho).sum())
