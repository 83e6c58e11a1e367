"""Tiny trained MLPs on a synthetic task (a random teacher labels Gaussian inputs): seconds to make."""

from __future__ import annotations

import pytest
import torch
from torch import nn


def make_mlp(seed: int, width: int = 32, inputs: int = 16, classes: int = 4) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(inputs, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                         nn.Linear(width, classes))


def teacher_data(n: int = 2000, seed: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 16, generator=gen)
    w1 = torch.randn(16, 24, generator=gen)
    w2 = torch.randn(24, 4, generator=gen)
    y = (torch.relu(x @ w1) @ w2).argmax(1)
    return x, y


def fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int = 300, seed: int = 0) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: more threads only oversubscribe the shared cores
    try:
        for _ in range(steps):
            idx = torch.randint(0, len(x), (256,), generator=gen)
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    return model.eval()


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread: on the shared 2-core machine more threads oversubscribe (30x slower)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def task():
    x, y = teacher_data()
    return x[:1500], y[:1500], x[1500:], y[1500:]


@pytest.fixture(scope="session")
def trained_pair(task):
    x, y, _, _ = task
    return fit(make_mlp(0), x, y, seed=0), fit(make_mlp(1), x, y, seed=1)
