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


def _normalized(x: torch.Tensor, name: str | None) -> torch.Tensor:
    x = centered(x)
    norm = torch.linalg.matrix_norm(x)
    if float(norm) == 0.0:
        where = f"layer {name!r}" if name else "activations"
        raise DataError(f"{where}: constant over all samples, Procrustes distance is undefined",
                        hint="pick another layer or use inputs that differ")
    return x / norm


def procrustes_similarity(x: Any, y: Any, *, names: tuple[str | None, str | None] = (None, None)) -> float:
    """||X'Y||_* of the normalized sides, in [0, 1]; 1 - distance / 2."""
    x, y = pair(x, y, names)
    x, y = _normalized(x, names[0]), _normalized(y, names[1])
    return float(torch.linalg.svdvals(x.T @ y).sum().clamp(max=1.0))


def procrustes_distance(x: Any, y: Any, *, names: tuple[str | None, str | None] = (None, None)) -> float:
    """Squared orthogonal Procrustes distance 2 - 2 ||X'Y||_*, in [0, 2]; 0 means equal up to rotation and scale."""
    return max(0.0, 2.0 - 2.0 * procrustes_similarity(x, y, names=names))
