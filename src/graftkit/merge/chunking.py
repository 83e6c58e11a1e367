"""Merge a huge tensor in blocks of rows, so memory does not grow with the largest tensor.

An embedding matrix of a 1B model is 131 MB in bf16 per input and four times that once
a method works in float32 over three inputs. Methods whose result at each entry depends
only on the inputs at that entry (and on per-tensor constants that do not change between
row blocks) give the same result when run block by block: linear, passthrough, nearswap,
and task_arithmetic / ties without sparsification (density 1). For those, large tensors
are read, checked and merged a block of rows at a time, straight into the output tensor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from graftkit.errors import MergeError

if TYPE_CHECKING:
    from graftkit.merge.plan import MergePlan, TensorTask

BLOCK_BYTES = 16 * 1024**2  # per input, per block
MIN_BYTES = 64 * 1024**2  # tensors smaller than this are merged whole
_ELEMENTWISE = {"linear", "passthrough", "nearswap"}
_ELEMENTWISE_WITHOUT_PRUNING = {"task_arithmetic", "ties"}


def row_separable(plan: "MergePlan", task: "TensorTask") -> bool:
    """Whether ``task`` may be merged block by block (and is big enough to be worth it)."""
    if len(task.shape) < 2 or task.nbytes < MIN_BYTES and _input_bytes(plan, task) < MIN_BYTES:
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
    if name in _ELEMENTWISE_WITHOUT_PRUNING:
        return all(float(mp.get("density", 1.0)) >= 1.0 for mp in task.model_params)
    return False


def _input_bytes(plan: "MergePlan", task: "TensorTask") -> int:
    return sum(plan.sources[i.source].checkpoint.info(i.name).nbytes for i in task.inputs)


def merge_in_blocks(plan: "MergePlan", task: "TensorTask", seed: int, nan: str, nan_tensors: list[str]) -> torch.Tensor:
    """The output of ``task``, computed a block of rows at a time."""
    from graftkit.merge.execute import merge_task

    rows = task.shape[0]
    row_bytes = max(1, task.nbytes // rows) * 2  # float32 work per row is at most twice a half-precision row
    step = max(1, BLOCK_BYTES // row_bytes)
    out = torch.empty(task.shape, dtype=task.dtype)
    slots = [task.inputs[task.copy_from]] if task.copy_from is not None else task.inputs
    for start in range(0, rows, step):
        stop = min(rows, start + step)
        cache: dict[tuple[int, str], torch.Tensor] = {}
        block = []
        for inp in slots:
            key = (inp.source, inp.name)
            if key not in cache:
                t = plan.sources[inp.source].read_rows(inp.name, start, stop)
                if plan.compute_dtype is not None and t.is_floating_point():
                    t = t.to(plan.compute_dtype)
                if t.is_floating_point() and not torch.isfinite(t).all():
                    where = f"tensor {inp.name} of {plan.sources[inp.source].label}"
                    if nan == "fail":
                        raise MergeError(f"{where} holds NaN or infinite values",
                                         hint="fix the input, or pass --nan warn to merge anyway")
                    if where not in nan_tensors:
                        nan_tensors.append(where)
                cache[key] = t
            block.append(cache[key])
        sub = _block_task(task, stop - start)
        out[start:stop] = merge_task(plan, sub, block, seed)
    return out


def _block_task(task: "TensorTask", rows: int) -> "TensorTask":
    from dataclasses import replace

    return replace(task, shape=(rows, *task.shape[1:]))
