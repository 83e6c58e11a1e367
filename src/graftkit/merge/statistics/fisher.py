"""Diagonal Fisher information: the mean squared gradient of the model's own loss."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from graftkit.errors import DataError
from graftkit.progress import track

LossFn = Callable[[nn.Module, dict[str, torch.Tensor]], torch.Tensor]


def default_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The loss an HF model returns when given ``labels``; without labels, the
    next-token loss of a causal LM (padding ignored)."""
    if "labels" not in batch and "input_ids" in batch:
        labels = batch["input_ids"].clone()
        if "attention_mask" in batch:
            labels[batch["attention_mask"] == 0] = -100
        batch = {**batch, "labels": labels}
    output = model(**batch)
    loss = getattr(output, "loss", None)
    if loss is None:
        raise DataError("the model returned no loss; give the calibration set labels or pass loss_fn")
    return loss


def _examples(batch: dict[str, torch.Tensor]) -> Iterable[dict[str, torch.Tensor]]:
    size = next(iter(batch.values())).shape[0]
    for i in range(size):
        row = {k: v[i : i + 1] for k, v in batch.items()}
        if "attention_mask" in row:  # drop the padding (left or right) this example does not need
            keep = row["attention_mask"][0].bool()
            width = keep.shape[0]
            row = {k: (v[:, keep] if v.dim() == 2 and v.shape[1] == width and k != "labels" else v) for k, v in row.items()}
        yield row


def compute_fisher(
    model: nn.Module,
    batches: Iterable[dict[str, torch.Tensor]],
    *,
    loss_fn: LossFn = default_loss,
    per_example: bool = True,
    total: int | None = None,
) -> dict[str, torch.Tensor]:
    """Empirical diagonal Fisher of every trainable parameter, averaged over examples.

    ``per_example`` squares each example's gradient (the definition); otherwise
    each batch's mean gradient is squared (cheaper, biased low). The model is put in
    eval mode (no dropout) and its gradients are cleared afterwards.
    """
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    sums = {name: torch.zeros_like(p, dtype=torch.float32) for name, p in params.items()}
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    count = 0
    try:
        for batch in track(batches, "fisher", total=total):
            batch = {k: v.to(device) for k, v in batch.items()}
            units = _examples(batch) if per_example else [batch]
            for unit in units:
                model.zero_grad(set_to_none=True)
                loss_fn(model, unit).backward()
                for name, p in params.items():
                    if p.grad is not None:
                        sums[name] += p.grad.detach().float().square()
                count += 1
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    if count == 0:
        raise DataError("compute_fisher got no calibration examples")
    return {name: s / count for name, s in sums.items()}
