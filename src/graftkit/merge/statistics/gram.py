"""Gram matrices X^T X / n of the input of every nn.Linear, via forward hooks.

The Gram of a Linear module at path ``encoder.layer.0.attention.self.query`` is
stored under that path; it belongs to the weight ``<path>.weight``. Padding
positions are left out when the batch has an ``attention_mask`` whose shape
matches the Linear input's leading dimensions.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

import torch
from torch import nn

from graftkit.errors import DataError
from graftkit.progress import track


def compute_grams(
    model: nn.Module,
    batches: Iterable[dict[str, torch.Tensor]],
    *,
    total: int | None = None,
    only: Collection[str] | None = None,
) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """Per Linear module: the mean outer product of its inputs, and the token count.

    ``only`` restricts the hooks to those module paths; each batch's forward pass then
    stops as soon as all of them have seen their input (the later layers are not run).
    """
    grams: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}
    current_mask: list[torch.Tensor | None] = [None]
    seen: set[str] = set()

    def hook(name: str):
        def record(module: nn.Module, args: tuple, _output: object) -> None:
            x = args[0].detach()
            mask = current_mask[0]
            if mask is not None and x.dim() == 3 and tuple(x.shape[:2]) == tuple(mask.shape):
                x = x[mask.bool()]
            x = x.reshape(-1, x.shape[-1]).to(torch.float64)
            gram = x.T @ x
            if name in grams:
                grams[name] += gram
                counts[name] += x.shape[0]
            else:
                grams[name] = gram
                counts[name] = x.shape[0]
            seen.add(name)
            if only is not None and len(seen) == len(hooked):
                raise _Enough

        return record

    hooked = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and (only is None or n in only)]
    if only is not None and set(only) - set(hooked):
        raise DataError(f"compute_grams: no nn.Linear modules named {sorted(set(only) - set(hooked))[:3]} in the model")
    modules = dict(model.named_modules())
    handles = [modules[n].register_forward_hook(hook(n)) for n in hooked]
    if not handles:
        raise DataError("the model has no nn.Linear layers, so RegMean has nothing to fit")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for batch in track(batches, "gram", total=total):
                batch = {k: v.to(device) for k, v in batch.items() if k != "labels"}
                current_mask[0] = batch.get("attention_mask")
                seen.clear()
                try:
                    model(**batch)
                except _Enough:
                    pass
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return {n: (g / max(counts[n], 1)).to(torch.float32) for n, g in grams.items()}, counts


class _Enough(Exception):
    """Raised from a hook once every requested module has its input: ends the forward pass early."""
