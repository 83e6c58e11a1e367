"""Which float type the large matrix products of a metric run in.

Large products (n x n Gram matrices, d x d cross-covariances over 10,000 rows) are
about twice as fast in float32 as in float64 on a CPU. Inputs are always validated
and centered in float64 first (centering removes the offset that makes float32
products lose digits), only the product itself may run in float32, and every sum,
decomposition and ratio afterwards is float64. With ``precision="auto"`` the product
runs in float32 only when it is large (at least ``FLOAT32_MIN_WORK`` multiply-adds);
small inputs, which are cheap anyway, stay exact to float64. The error of the float32
route is bounded by ``FLOAT32_TOLERANCE`` on metric values in [0, 1]; the tests and the
speed benchmark check it against float64.
"""

from __future__ import annotations

import torch

from graftkit.errors import ConfigError

PRECISIONS = ("auto", "float64", "float32")
FLOAT32_MIN_WORK = 2**31  # multiply-adds: a 1,500 x 1,500 Gram of 768 features is below, 10,000 rows above
FLOAT32_TOLERANCE = 1e-5  # absolute error of a metric value when its products run in float32


def product_dtype(precision: str, work: float) -> torch.dtype:
    """float32 or float64 for a product of ``work`` multiply-adds under ``precision``."""
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}", hint=f"choose one of: {', '.join(PRECISIONS)}")
    if precision == "float32" or (precision == "auto" and work >= FLOAT32_MIN_WORK):
        return torch.float32
    return torch.float64
