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


@pytest.fixture(autouse=True)
def _one_thread():
    """Small matrices: one thread avoids the thread-pool stalls seen on a busy 2-core machine
    (each tiny op waited ~50 ms for a descheduled worker); restored after each test."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
