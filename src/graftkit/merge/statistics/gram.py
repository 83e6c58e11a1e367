"""Gram matrices X^T X / n of the input of every nn.Linear, via forward hooks.

The Gram of a Linear module at path ``encoder.layer.0.attention.self.query`` is
stored under that path; it belongs to the weight ``<path>.weight``. Padding
positions are left out when the batch has an ``attention_mask`` whose shape
matches the Linear input's leading dimensions.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable

import torch
from torch import nn

from graftkit.errors import DataError
from graftkit.progress import track


class GramRecorder:
    """Forward hooks that sum X^T X of the inputs of a model's Linear modules.

    ``run(forward, mask)`` calls ``forward()`` (the whole model, or one block of it) with the
    hooks live; with ``only`` given, the call ends as soon as every hooked module has seen its
    input (unless ``stop_early=False``), so the layers after them are not run. Use as a
    context manager: the hooks are removed on exit.
    """

    def __init__(self, model: nn.Module, only: Collection[str] | None = None) -> None:
        self.only = only
        self.grams: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}
        self._mask: torch.Tensor | None = None
        self._seen: set[str] = set()
        self._stop_early = True
        self._shared: dict[tuple, tuple[torch.Tensor, int, torch.Tensor, int]] = {}
        hooked = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and (only is None or n in only)]
        if only is not None and set(only) - set(hooked):
            raise DataError(f"compute_grams: no nn.Linear modules named {sorted(set(only) - set(hooked))[:3]} in the model")
        if not hooked:
            raise DataError("the model has no nn.Linear layers, so RegMean has nothing to fit")
        modules = dict(model.named_modules())
        self._hooked = hooked
        self._handles = [modules[n].register_forward_hook(self._hook(n)) for n in hooked]

    def _hook(self, name: str):
        def record(module: nn.Module, args: tuple, _output: object) -> None:
            gram, rows = self._gram_of(args[0].detach())
            if name in self.grams:
                self.grams[name] += gram
                self.counts[name] += rows
            else:
                self.grams[name] = gram.clone()
                self.counts[name] = rows
            self._seen.add(name)
            if self._stop_early and self.only is not None and len(self._seen) == len(self._hooked):
                raise _Enough

        return record

    def _gram_of(self, x: torch.Tensor) -> tuple[torch.Tensor, int]:
        """X^T X (float64) of one module input, its padding left out, and its row count.

        Sibling modules called one after the other often read the very same tensor (q/k/v
        projections, gate and up projections): its product is computed once. The last input is
        kept (one entry, so memory stays flat) with the tensor itself, so its memory cannot be
        reused by another tensor while the entry lives, and its version counter catches an
        in-place change."""
        key = (x.data_ptr(), tuple(x.shape), x.stride(), x.dtype)
        hit = self._shared.get(key)
        if hit is not None and hit[0]._version == hit[1]:
            return hit[2], hit[3]
        self._shared.clear()
        flat = x
        mask = self._mask
        if mask is not None and x.dim() == 3 and tuple(x.shape[:2]) == tuple(mask.shape):
            flat = x[mask.bool()]
        flat = flat.reshape(-1, flat.shape[-1]).to(torch.float64)
        gram = flat.T @ flat
        self._shared[key] = (x, x._version, gram, flat.shape[0])
        return gram, flat.shape[0]

    def run(self, forward: Callable[[], object], mask: torch.Tensor | None, *, stop_early: bool = True) -> None:
        """One forward pass under the hooks; ``mask`` marks the non-padding positions of its tokens.
        ``stop_early=False`` lets the pass run to its end after the hooked modules have their input."""
        self._mask = mask
        self._seen.clear()
        self._stop_early = stop_early
        try:
            with torch.no_grad():
                forward()
        except _Enough:
            pass
        finally:
            self._shared.clear()

    def result(self) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
        """Per module: the mean outer product of its inputs (float32), and the token count."""
        return {n: (g / max(self.counts[n], 1)).to(torch.float32) for n, g in self.grams.items()}, dict(self.counts)

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __enter__(self) -> GramRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def model_inputs(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """A calibration batch as the model's forward takes it: on its device, without labels."""
    return {k: v.to(device) for k, v in batch.items() if k != "labels"}


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
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with GramRecorder(model, only) as recorder:
            for batch in track(batches, "gram", total=total):
                batch = model_inputs(batch, device)
                recorder.run(lambda: model(**batch), batch.get("attention_mask"))
            return recorder.result()
    finally:
        model.train(was_training)


class _Enough(Exception):
    """Raised from a hook once every requested module has its input: ends the forward pass early."""
