"""Shared by the alignment benchmarks: small MLPs trained on real image data and their evaluation."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def mlp(widths: list[int], seed: int) -> nn.Sequential:
    """Linear-ReLU stack, e.g. widths [784, 512, 512, 512, 10]."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Flatten()]
    for i in range(len(widths) - 1):
        layers.append(nn.Linear(widths[i], widths[i + 1]))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, seed: int,
          lr: float = 1e-3, batch: int = 128) -> nn.Module:
    """Adam on cross-entropy; the seed fixes the data order."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * ((len(x) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), batch):
            idx = order[i:i + batch]
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()


def batches(x: torch.Tensor, y: torch.Tensor, size: int = 1000) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(x[i:i + size], y[i:i + size]) for i in range(0, len(x), size)]


def image_data(name: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(train x, train y, test x, test y) through graftkit.data; train includes validation."""
    from graftkit.data import load_dataset

    ds = load_dataset(name)
    parts = [ds.train] + ([ds.validation] if "validation" in ds.splits else [])
    xs = [p.images for p in parts]
    ys = [p.labels for p in parts]
    x = torch.cat(xs)
    y = torch.cat([torch.as_tensor(v) for v in ys])
    # fixed shuffles, so that the first N images of a split are a fair sample
    # (Fashion-MNIST's files are ordered by class)
    gen = torch.Generator().manual_seed(0)
    train_order = torch.randperm(len(y), generator=gen)
    order = torch.randperm(len(ds.test.labels), generator=gen)
    return x[train_order], y[train_order], ds.test.images[order], torch.as_tensor(ds.test.labels)[order]


