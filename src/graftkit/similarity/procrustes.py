"""Orthogonal Procrustes distance between representations (Ding, Denain & Steinhardt 2021).

Both sides are centered and scaled to unit Frobenius norm; the distance is the
residual of the best rotation of one onto the other, min_Q ||X - YQ||_F^2 =
2 - 2 ||X'Y||_* (nuclear norm), in [0, 2]. Different widths are fine (Q is a
partial isometry). Invariant to orthogonal maps and isotropic scaling.
"""

from __future__ import annotations

from typing import Any

import torch

from graftkit.errors import DataError
from graftkit.similarity.checks import centered, pair
from graftkit.similarity.precision import product_dtype


def _centered_norm(x: torch.Tensor, name: str | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Centered x and its Frobenius norm; a DataError for a constant (dead) layer."""
    x = centered(x)
    norm = torch.linalg.matrix_norm(x)
    if float(norm) == 0.0:
        where = f"layer {name!r}" if name else "activations"
        raise DataError(f"{where}: constant over all samples, Procrustes distance is undefined",
                        hint="pick another layer or use inputs that differ")
    return x, norm


def _normalized(x: torch.Tensor, name: str | None) -> torch.Tensor:
    x, norm = _centered_norm(x, name)
    return x / norm


def procrustes_similarity(
    x: Any, y: Any, *, names: tuple[str | None, str | None] = (None, None), precision: str = "auto"
) -> float:
    """||X'Y||_* of the normalized sides, in [0, 1]; 1 - distance / 2.

    X'Y (n x d1 x d2 multiply-adds) runs in the float type ``precision`` picks
    (``graftkit.similarity.precision``). In float64 its singular values come from an SVD;
    on the float32 route, whose tolerance is looser anyway, they are the square roots of
    the eigenvalues of the smaller of (X'Y)'(X'Y) and (X'Y)(X'Y)' (float64), a symmetric
    eigenproblem several times cheaper than the SVD.
    """
    x, y = pair(x, y, names)
    dtype = product_dtype(precision, x.shape[0] * x.shape[1] * y.shape[1])
    if dtype == torch.float64:
        x, y = _normalized(x, names[0]), _normalized(y, names[1])
        return float(torch.linalg.svdvals(x.T @ y).sum().clamp(max=1.0))
    (x, norm_x), (y, norm_y) = _centered_norm(x, names[0]), _centered_norm(y, names[1])
    # the unit-norm scaling is applied to the d1 x d2 product, not to the n x d inputs
    cross = (x.to(dtype).T @ y.to(dtype)).double() / (norm_x * norm_y)
    square = cross.T @ cross if cross.shape[1] <= cross.shape[0] else cross @ cross.T
    return float(torch.linalg.eigvalsh(square).clamp_min(0.0).sqrt().sum().clamp(max=1.0))


def procrustes_distance(
    x: Any, y: Any, *, names: tuple[str | None, str | None] = (None, None), precision: str = "auto"
) -> float:
    """Squared orthogonal Procrustes distance 2 - 2 ||X'Y||_*, in [0, 2]; 0 means equal up to rotation and scale."""
    return max(0.0, 2.0 - 2.0 * procrustes_similarity(x, y, names=names, precision=precision))
