"""Merge a huge tensor in blocks of rows, so memory does not grow with the largest tensor.

An embedding matrix of a 1B model is 131 MB in bf16 per input and four times that once
a method works in float32 over three inputs. Methods whose result at each entry depends
only on the inputs at that entry give the same result when run block by block: linear,
passthrough, nearswap, task_arithmetic. For those, large tensors are read, checked and
merged a block of rows at a time, straight into the output tensor.

TIES also qualifies once its trim is known: a first pass over the blocks collects each
task vector's magnitudes (one float32 buffer, freed before the merge) and finds the
k-th largest, the same threshold and index-order tie-break as the method's own
``top_k_mask``; the second pass applies those masks per block and merges the trimmed
inputs with density 1 (equal to the whole-tensor merge up to float rounding).

DARE and DELLA qualify the same way: their drop masks come from a ``DropNoise``
stream addressed by element index, so a block's mask is the whole tensor's mask
restricted to its rows, and DELLA ranks magnitudes within rows. Only mergekit's
L1 rescale needs the whole tensor (one factor per task vector): a first pass sums
``|delta|`` and ``|delta * mask|`` over the blocks.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from graftkit.errors import MergeError
from graftkit.merge.finite import all_finite
from graftkit.merge.methods.noise import DropNoise, span
from graftkit.merge.methods.sparsify import apply_mask, drop_mask, kth_largest, magprune_probabilities
from graftkit.merge.methods.task_arithmetic import SPARSIFICATION

if TYPE_CHECKING:
    from graftkit.merge.plan import MergePlan, TensorTask

BLOCK_BYTES = 4 * 1024**2  # per input, per block
MIN_BYTES = 16 * 1024**2  # tensors whose float32 work copy is smaller are merged whole
_ELEMENTWISE = {"linear", "passthrough", "nearswap", "task_arithmetic"}
_NORM_EPS = 1e-7


def row_separable(plan: "MergePlan", task: "TensorTask") -> bool:
    """Whether ``task`` may be merged block by block (and is big enough to be worth it)."""
    if len(task.shape) < 2 or _numel(task) * 4 < MIN_BYTES:
        return False
    if plan.tokenizer is not None and task.vocab:
        return False
    if any(plan.sources[i.source].lora is not None for i in task.inputs):
        return False
    if task.copy_from is not None:
        return True
    name = plan.method.name
    if name in _ELEMENTWISE:
        return True
    kind = SPARSIFICATION.get(name)
    if kind == "magnitude":
        return task.base_index is not None and not task.params.get("rescale", False)
    if kind == "random":
        return task.base_index is not None
    if kind == "della_magprune":
        return task.base_index is not None and len(task.shape) == 2
    return False


def _numel(task: "TensorTask") -> int:
    return math.prod(task.shape)


def merge_in_blocks(plan: "MergePlan", task: "TensorTask", seed: int, nan: str, nan_tensors: list[str]) -> torch.Tensor:
    """The output of ``task``, computed a block of rows at a time."""
    from graftkit.merge.execute import merge_task

    rows = task.shape[0]
    row_bytes = max(1, task.nbytes // rows) * 2  # float32 work per row is at most twice a half-precision row
    step = max(1, BLOCK_BYTES // row_bytes)
    blocks = [(a, min(rows, a + step)) for a in range(0, rows, step)]
    out = torch.empty(task.shape, dtype=task.dtype)
    slots = [task.inputs[task.copy_from]] if task.copy_from is not None else task.inputs
    kind = SPARSIFICATION.get(plan.method.name) if task.copy_from is None else None
    if kind == "magnitude":
        trims = _trims(plan, task, blocks, slots)
    elif kind in ("random", "della_magprune"):
        trims = _drops(plan, task, blocks, slots, kind, seed)
    else:
        trims = {}
    sub_params = [dict(mp, density=1.0) if i in trims else mp for i, mp in enumerate(task.model_params)]
    for start, stop in blocks:
        block = _read_block(plan, slots, start, stop, nan, nan_tensors)
        if trims:
            base = block[task.base_index].float()
            block = [base + trims[i].apply(t.float() - base, start) if i in trims else t for i, t in enumerate(block)]
        sub = _block_task(task, stop - start, sub_params)
        out[start:stop] = merge_task(plan, sub, block, seed)
    return out


def _read_block(plan: "MergePlan", slots, start: int, stop: int, nan: str, nan_tensors: list[str]) -> list[torch.Tensor]:
    cache: dict[tuple[int, str], torch.Tensor] = {}
    block = []
    for inp in slots:
        key = (inp.source, inp.name)
        if key not in cache:
            t = plan.sources[inp.source].read_rows(inp.name, start, stop)
            if plan.compute_dtype is not None and t.is_floating_point():
                t = t.to(plan.compute_dtype)
            if t.is_floating_point() and not all_finite(t):
                where = f"tensor {inp.name} of {plan.sources[inp.source].label}"
                if nan == "fail":
                    raise MergeError(f"{where} holds NaN or infinite values",
                                     hint="fix the input, or pass --nan warn to merge anyway")
                if where not in nan_tensors:
                    nan_tensors.append(where)
            cache[key] = t
        block.append(cache[key])
    return block


class _Trim:
    """The TIES trim of one task vector: keep |d| > threshold, and the first ``ties`` entries equal to it."""

    def __init__(self, threshold: float, ties: int) -> None:
        self.threshold = threshold
        self.ties_left = ties

    def apply(self, delta: torch.Tensor, start: int) -> torch.Tensor:
        """The trimmed delta of the next block (blocks must come in row order)."""
        mag = delta.abs()
        keep = mag > self.threshold
        if self.ties_left > 0:
            equal = (mag == self.threshold).reshape(-1)
            order = torch.cumsum(equal.to(torch.int64), 0)
            admit = equal & (order <= self.ties_left)
            self.ties_left -= int(admit.sum())
            keep = keep | admit.reshape(mag.shape)
        return delta * keep


def _trims(plan: "MergePlan", task: "TensorTask", blocks, slots) -> dict[int, _Trim]:
    """Pass 1: each task vector's magnitude threshold over the whole tensor, as ``sparsify.top_k_mask``."""
    n = _numel(task)
    trims = {}
    for i, mp in enumerate(task.model_params):
        density = float(mp.get("density", 1.0))
        if i == task.base_index or density >= 1.0:
            continue
        k = max(1, int(density * n)) if density > 0 else 0
        if k == 0:
            trims[i] = _Trim(float("inf"), 0)
            continue
        mags = torch.empty(n, dtype=torch.float32)
        at = 0
        for start, stop in blocks:
            pair = _read_block(plan, [slots[task.base_index], slots[i]], start, stop, "warn", [])
            d = (pair[1].float() - pair[0].float()).abs().reshape(-1)
            mags[at:at + d.numel()] = d
            at += d.numel()
        threshold = kth_largest(mags, k)
        ties = k - int((mags > threshold).sum())
        del mags
        trims[i] = _Trim(float(threshold), ties)
    return trims


class _Drop:
    """The DARE / DELLA drop of one task vector, restricted to a block of rows.

    ``offset`` is where the task vector's range starts in the tensor's noise stream
    (as ``task_arithmetic.model_stream`` places it), ``factor`` the L1 rescale
    factor of the whole tensor once pass 1 has found it.
    """

    def __init__(self, noise: DropNoise, offset: int, cols: int, kind: str, density: float, epsilon: float,
                 rescale: str | None) -> None:
        self.noise, self.offset, self.cols = noise, offset, cols
        self.kind, self.density, self.epsilon, self.rescale = kind, density, epsilon, rescale
        self.factor = 1.0

    def mask(self, delta: torch.Tensor, start: int) -> tuple[torch.Tensor, torch.Tensor | float]:
        """The 0/1 mask of the block starting at row ``start`` (as rows) and its keep probabilities."""
        rows = delta.reshape(delta.shape[0], -1)
        probs: torch.Tensor | float = self.density
        if self.kind == "della_magprune":
            probs = magprune_probabilities(rows, self.density, self.epsilon)
        return drop_mask(rows, probs, self.noise.at(self.offset + start * self.cols)), probs

    def apply(self, delta: torch.Tensor, start: int) -> torch.Tensor:
        if self.density <= 0:
            return torch.zeros_like(delta)
        mask, probs = self.mask(delta, start)
        rows = delta.reshape(delta.shape[0], -1)
        if self.rescale == "l1":
            return (rows * mask * self.factor).reshape(delta.shape)
        return apply_mask(rows, mask, self.rescale, probs).reshape(delta.shape)


def _drops(plan: "MergePlan", task: "TensorTask", blocks, slots, kind: str, seed: int) -> dict[int, _Drop]:
    """Each task vector's drop; with the L1 rescale, pass 1 finds its whole-tensor factor."""
    n = _numel(task)
    cols = n // task.shape[0]
    params = task.params
    rescale = params.get("rescale_mode", "l1") if params.get("rescale", False) else None
    noise = DropNoise.for_tensor(seed, task.name)
    drops = {}
    others = [i for i in range(len(task.model_params)) if i != task.base_index]
    for position, i in enumerate(others):
        mp = task.model_params[i]
        density = float(mp.get("density", 1.0))
        if density >= 1.0:
            continue
        drop = _Drop(noise, position * span(n), cols, kind, density, float(mp.get("epsilon", 0.0)), rescale)
        if rescale == "l1" and density > 0:
            before = after = 0.0
            for start, stop in blocks:
                pair = _read_block(plan, [slots[task.base_index], slots[i]], start, stop, "warn", [])
                delta = pair[1].float() - pair[0].float()
                before += float(delta.abs().sum(dtype=torch.float64))
                kept = delta.reshape(delta.shape[0], -1) * drop.mask(delta, start)[0]
                after += float(kept.abs().sum(dtype=torch.float64))
            drop.factor = before / after if before >= _NORM_EPS and after >= _NORM_EPS else 1.0
        drops[i] = drop
    return drops


def _block_task(task: "TensorTask", rows: int, model_params: list[dict]) -> "TensorTask":
    from dataclasses import replace

    return replace(task, shape=(rows, *task.shape[1:]), model_params=model_params)
