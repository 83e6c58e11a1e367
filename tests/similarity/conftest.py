from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def golden_xy() -> tuple[np.ndarray, np.ndarray]:
    """ANCHORS.md section 4: np.random.seed(1337); X = randn(100, 10); Y = randn(100, 10) + X."""
    np.random.seed(1337)
    x = np.random.randn(100, 10)
    y = np.random.randn(100, 10) + x
    return x, y
