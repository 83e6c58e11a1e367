"""Merge a huge tensor in blocks of rows, so memory does not grow with the largest tensor.

An embedding matrix of a 1B model is 131 MB in bf16 per input and four times that once
a method works in float32 over three inputs. Methods whose result at each entry depends
only on the inputs at that entry give the same result when run block by block: linear,
passthrough, nearswap, task_arithmetic. For those, large tensors are read, checked and
merged a block of rows at a time, straight into the output tensor.

TIES also qualifies once its trim is known: a first pass over the blocks finds each
task vector's k-th largest magnitude (a sampled bracket, then a count above it and the
values inside it; see ``_trims``), the same threshold and index-order tie-break as the
method's own ``top_k_mask``; the second pass trims each block and combines the trimmed
deltas with the method's own ``combine_deltas`` (the same values as the whole-tensor merge).

DARE and DELLA qualify the same way: their drop masks come from a ``DropNoise``
stream addressed by element index, so a block's mask is the whole tensor's mask
restricted to its rows, and DELLA ranks magnitudes within rows. Only mergekit's
L1 rescale needs the whole tensor (one factor per task vector): a first pass sums
``|delta|`` and ``|delta * mask|`` over the blocks.

Blocks are spread over threads (``each_block``), each with one torch thread.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from graftkit.errors import MergeError
from graftkit.merge.finite import all_finite
from graftkit.merge.methods.noise import DropNoise, span
from graftkit.merge.methods.sparsify import apply_mask, drop_mask, kth_largest, magprune_probabilities
from graftkit.merge.methods.task_arithmetic import CONSENSUS, SPARSIFICATION, combine_deltas

if TYPE_CHECKING:
    from graftkit.merge.plan import MergePlan, TensorTask

# float32 work per input, per block: a block's temporaries (a few per input) then stay in
# the CPU caches and below malloc's mmap threshold, so they are reused instead of freshly
# mapped and page-faulted for every pass (at 4 MB blocks a TIES merge spent more time in
# page faults than in arithmetic). Results do not depend on the block size.
BLOCK_BYTES = 512 * 1024
# blocks of the L1 sums of the DARE/DELLA rescale: the float64 sum of each block is added up
# in block order, so this partition (the one the factor was always summed over) fixes the
# factor's last bits and must not follow BLOCK_BYTES
NORM_BLOCK_BYTES = 4 * 1024**2
MIN_BYTES = 16 * 1024**2  # tensors whose float32 work copy is smaller are merged whole
_ELEMENTWISE = {"linear", "passthrough", "nearswap", "task_arithmetic"}
_PROPAGATES_NONFINITE = {"linear", "task_arithmetic"}  # weighted sums: NaN/inf in, NaN/inf out
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


def merge_in_blocks(plan: "MergePlan", task: "TensorTask", seed: int, nan: str, nan_tensors: list[str],
                    workers: int | None = None) -> torch.Tensor:
    """The output of ``task``, computed a block of rows at a time, on ``workers`` threads
    (default: torch's thread count)."""
    from graftkit.merge.execute import merge_task

    rows = task.shape[0]
    row_bytes = max(1, task.nbytes // rows) * 2  # float32 work per row is at most twice a half-precision row
    blocks = _blocks(rows, max(1, BLOCK_BYTES // row_bytes))
    out = torch.empty(task.shape, dtype=task.dtype)
    slots = [task.inputs[task.copy_from]] if task.copy_from is not None else task.inputs
    kind = SPARSIFICATION.get(plan.method.name) if task.copy_from is None and task.dtype.is_floating_point else None
    held = _hold(plan, slots, rows, nan, nan_tensors) if kind is not None else None
    if kind == "magnitude":
        trims = _trims(plan, task, blocks, slots, workers, held)
    elif kind in ("random", "della_magprune"):
        norm_blocks = _blocks(rows, max(1, NORM_BLOCK_BYTES // row_bytes))
        trims = _drops(plan, task, blocks, slots, kind, seed, workers, held, norm_blocks)
    else:
        trims = {}
    if kind is not None:
        _sparse_in_blocks(plan, task, blocks, slots, trims, out, nan, nan_tensors, workers, held)
        return out
    # a NaN or inf in any input of these reaches their float32 output (0 * inf is NaN too), so
    # one check of the output stands for one per input; the inputs are checked only when it fails
    propagates = task.copy_from is None and plan.method.name in _PROPAGATES_NONFINITE

    def merge_block(start: int, stop: int) -> None:
        block = _read_block(plan, slots, start, stop, None if propagates else nan, nan_tensors)
        if task.copy_from is not None or not block[0].is_floating_point():
            out[start:stop] = merge_task(plan, _block_task(task, stop - start, task.model_params), block, seed)
            return
        # as merge_task, but the float result goes into ``out`` in one cast and copy: it casts
        # to the compute dtype (or the first input's), then to the task's dtype
        compute = torch.float64 if block[0].dtype == torch.float64 else torch.float32
        merged = plan.method.merge(block, base_index=task.base_index, model_params=task.model_params,
                                   params=task.params, tensor_name=task.name, seed=seed, out_dtype=compute)
        if tuple(merged.shape) != (stop - start, *task.shape[1:]):
            raise MergeError(f"method {plan.method.name} returned shape {list(merged.shape)} for rows "
                             f"{start}:{stop} of {task.name}, expected {[stop - start, *task.shape[1:]]}")
        if propagates and nan is not None and not all_finite(merged):
            for inp, t in zip(slots, block):
                _check_finite(plan, inp, t, nan, nan_tensors)
        out[start:stop] = merged if block[0].dtype in (compute, out.dtype) else merged.to(block[0].dtype)

    each_block(merge_block, blocks, workers)
    return out


def _blocks(rows: int, step: int) -> list[tuple[int, int]]:
    return [(a, min(rows, a + step)) for a in range(0, rows, step)]


def elementwise_in_rows(method: str, tensors: list[torch.Tensor], merge_rows) -> torch.Tensor:
    """``merge_rows(tensors)``; for an element-wise weighted sum (linear, task_arithmetic) of a
    tensor held whole but larger than one block, run a block of rows at a time into one output:
    the same values, with temporaries that stay in the CPU caches instead of whole-tensor passes
    through memory."""
    first = tensors[0]
    rows = first.shape[0] if first.dim() >= 2 else 0
    if method not in _PROPAGATES_NONFINITE or rows < 2 or not first.is_floating_point() \
            or any(t.shape != first.shape for t in tensors):
        return merge_rows(tensors)
    blocks = _blocks(rows, max(1, BLOCK_BYTES // max(1, first[0].numel() * 4)))
    if len(blocks) == 1:
        return merge_rows(tensors)
    (start, stop), rest = blocks[0], blocks[1:]
    head = merge_rows([t[start:stop] for t in tensors])
    out = torch.empty((rows, *head.shape[1:]), dtype=head.dtype)
    out[start:stop] = head
    for start, stop in rest:
        out[start:stop] = merge_rows([t[start:stop] for t in tensors])
    return out


HOLD_BYTES = 96 * 1024**2  # inputs read once and kept for both passes when they fit


def _hold(plan: "MergePlan", slots, rows: int, nan: str, nan_tensors: list[str]) -> "_Held | None":
    """The whole inputs of a two-pass task when together they fit in ``HOLD_BYTES`` (a
    layer's MLP matrices of a 1B model do, its embeddings do not): read once, not twice.

    Each is checked for NaN/inf here, once, when no cast to the compute dtype comes
    between (a cast could overflow), instead of block by block; ``_read_block`` skips
    the check for the inputs in ``held.checked``."""
    keys = {(inp.source, inp.name) for inp in slots}
    if sum(plan.sources[s].checkpoint.info(n).nbytes for s, n in keys) > HOLD_BYTES:
        return None
    held = _Held({(s, n): plan.sources[s].read_rows(n, 0, rows) for s, n in keys})
    for inp in slots:
        key = (inp.source, inp.name)
        t = held[key]
        if key in held.checked or not t.is_floating_point() or plan.compute_dtype not in (None, t.dtype):
            continue
        _check_finite(plan, inp, t, nan, nan_tensors)
        held.checked.add(key)
    return held


class _Held(dict):
    """Whole input tensors by ``(source, name)``; ``checked``: those already checked for NaN/inf."""

    def __init__(self, tensors: dict) -> None:
        super().__init__(tensors)
        self.checked: set = set()


def _sparse_in_blocks(plan: "MergePlan", task: "TensorTask", blocks, slots, trims: dict, out: torch.Tensor,
                      nan: str, nan_tensors: list[str], workers: int | None, held: dict | None = None) -> None:
    """Pass 2 of the sparsifying task-vector methods: per block, each delta trimmed or dropped,
    then combined as ``task_vector_merge`` does (``combine_deltas``), straight into ``out``."""
    method = plan.method
    params = method.resolve_params(task.params, where=task.name)
    model_params = method.resolve_model_params(task.model_params, len(slots), task.base_index, task.params,
                                               where=task.name)
    others = [i for i in range(len(slots)) if i != task.base_index]
    weights = [float(model_params[i]["weight"]) for i in others]
    lam = params.get("lambda", 1.0)

    def merge_block(start: int, stop: int) -> None:
        block = _read_block(plan, slots, start, stop, nan, nan_tensors, held)
        compute = torch.float64 if block[0].dtype == torch.float64 else torch.float32
        base = block[task.base_index].to(compute)
        deltas = []
        for i in others:
            delta = block[i].to(compute) - base
            deltas.append(trims[i].apply(delta, start) if i in trims else delta)
        mixed = combine_deltas(deltas, weights, consensus=CONSENSUS[method.name], normalize=params["normalize"],
                               sign_election=params.get("sign_election", "mergekit"), base=base, lam=lam)
        # the whole-tensor path casts to the first input's (compute) dtype, then to the task's
        out[start:stop] = mixed if block[0].dtype == compute else mixed.to(block[0].dtype)

    each_block(merge_block, blocks, workers)


_POOL = None


def each_block(function, blocks, workers: int | None = None) -> list:
    """``[function(start, stop) for start, stop in blocks]``, the blocks spread over torch's threads.

    Each block is merged by one thread with torch's intra-op threading off meanwhile: a
    block's work is many short passes, numpy selections and file reads, which parallel
    kernels split poorly and the rest not at all, while whole blocks side by side keep
    every core busy. ``function`` must only write its own rows (results come back in order).
    """
    global _POOL
    workers = min(workers or torch.get_num_threads(), len(blocks))
    if workers <= 1:
        return [function(start, stop) for start, stop in blocks]
    if _POOL is None or _POOL._max_workers < workers:
        from concurrent.futures import ThreadPoolExecutor

        _POOL = ThreadPoolExecutor(workers, thread_name_prefix="graftkit-block")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return list(_POOL.map(lambda block: function(*block), blocks))
    finally:
        torch.set_num_threads(threads)


def _read_block(plan: "MergePlan", slots, start: int, stop: int, nan: str | None,
                nan_tensors: list[str], held: dict | None = None) -> list[torch.Tensor]:
    """Rows ``start:stop`` of each slot's input, in the compute dtype; checked for NaN/inf
    unless ``nan`` is None (a first pass: the merging pass checks the same rows). Inputs in
    ``held`` (whole tensors read once for two passes) are sliced instead of read."""
    cache: dict[tuple[int, str], torch.Tensor] = {}
    checked = held.checked if held is not None else ()
    block = []
    for inp in slots:
        key = (inp.source, inp.name)
        if key not in cache:
            if held is not None and key in held:
                t = held[key][start:stop]
            else:
                t = plan.sources[inp.source].read_rows(inp.name, start, stop)
            if plan.compute_dtype is not None and t.is_floating_point():
                t = t.to(plan.compute_dtype)
            if nan is not None and key not in checked and t.is_floating_point():
                _check_finite(plan, inp, t, nan, nan_tensors)
            cache[key] = t
        block.append(cache[key])
    return block


def _check_finite(plan: "MergePlan", inp, t: torch.Tensor, nan: str, nan_tensors: list[str]) -> None:
    """Fail (``nan == "fail"``) or note the input once in ``nan_tensors`` if ``t`` holds NaN/inf."""
    if all_finite(t):
        return
    where = f"tensor {inp.name} of {plan.sources[inp.source].label}"
    if nan == "fail":
        raise MergeError(f"{where} holds NaN or infinite values",
                         hint="fix the input, or pass --nan warn to merge anyway")
    if where not in nan_tensors:
        nan_tensors.append(where)


class _Trim:
    """The TIES trim of one task vector: keep |d| > threshold, and some entries equal to it.

    As ``sparsify.top_k_mask``, ties are admitted in index order: ``admitted[start]`` is
    ``(admitted, equal)`` for the block at row ``start``, how many of its ``equal`` entries
    tied with the threshold are kept (bf16 task vectors take few distinct values, so ties
    can run to a fifth of a tensor). A block that keeps all of them trims at the next float
    below the threshold; only the block where the admissions stop counts them one by one.
    """

    def __init__(self, threshold: float, below: float, admitted: dict[int, tuple[int, int]]) -> None:
        self.threshold = threshold
        self.below = below  # the largest float below the threshold
        self.admitted = admitted

    def apply(self, delta: torch.Tensor, start: int) -> torch.Tensor:
        """The trimmed delta of the block of rows starting at row ``start``."""
        if self.threshold == math.inf:
            return torch.zeros_like(delta)
        admitted, equal = self.admitted.get(start, (0, 0))
        if admitted == 0:
            return torch.nn.functional.hardshrink(delta, self.threshold)  # x where |x| > threshold, else 0
        if admitted == equal:
            return torch.nn.functional.hardshrink(delta, self.below)  # x where |x| >= threshold
        kept = torch.nn.functional.hardshrink(delta, self.threshold)
        tied = (delta.abs() == self.threshold).reshape(-1).nonzero().flatten()[:admitted]
        kept.view(-1)[tied] = delta.reshape(-1)[tied]
        return kept


def _trim(threshold, equal_per_block: list[int], ties: int, blocks) -> _Trim:
    """The trim at ``threshold`` admitting the first ``ties`` equal entries, block by block."""
    import numpy as np

    admitted = {}
    for (start, _), equal in zip(blocks, equal_per_block):
        take = min(ties, equal)
        if take:
            admitted[start] = (take, equal)
        ties -= take
    below = np.nextafter(threshold, np.zeros_like(threshold) - 1)
    return _Trim(float(threshold), float(below), admitted)


def _trims(plan: "MergePlan", task: "TensorTask", blocks, slots, workers: int | None = None,
           held: dict | None = None) -> dict[int, _Trim]:
    """Pass 1: each task vector's magnitude threshold over the whole tensor, as ``sparsify.top_k_mask``.

    A sample of rows brackets each k-th largest magnitude; one streamed pass over the blocks
    (the base read once for every task vector) counts the magnitudes above the bracket and
    keeps those inside it (numpy: its comparisons and boolean selection are several times
    faster than torch's on CPU); the threshold is the matching order statistic of that band.
    Where a bracket misses, that task vector falls back to the exact whole-tensor selection.
    """
    n = _numel(task)
    trims: dict[int, _Trim] = {}
    selectors: dict[int, _BandSelect] = {}
    for i, mp in enumerate(task.model_params):
        density = float(mp.get("density", 1.0))
        if i == task.base_index or density >= 1.0:
            continue
        k = max(1, int(density * n)) if density > 0 else 0
        if k == 0:
            trims[i] = _Trim(math.inf, math.inf, {})
        elif k < n:
            selectors[i] = _BandSelect(n, k)
    if not selectors:
        return trims
    picked = [slots[task.base_index]] + [slots[i] for i in selectors]
    rows = _sample_rows(task.shape[0])
    sampled = [torch.cat([_read_block(plan, picked, r, r + 1, None, [], held)[j] for r in rows])
               for j in range(len(picked))]
    base = sampled[0].to(torch.float64 if sampled[0].dtype == torch.float64 else torch.float32)
    for j, selector in enumerate(selectors.values(), start=1):
        selector.bracket((sampled[j].to(base.dtype) - base).abs_().reshape(-1).numpy())
    del sampled, base
    def select(start: int, stop: int) -> None:
        block = _read_block(plan, picked, start, stop, None, [], held)
        base = block[0].to(torch.float64 if block[0].dtype == torch.float64 else torch.float32)
        for j, selector in enumerate(selectors.values(), start=1):
            selector.add((block[j].to(base.dtype) - base).abs_().reshape(-1).numpy(), start)

    each_block(select, blocks, workers)
    for i, selector in selectors.items():
        found = selector.result()
        trims[i] = _trim(*found, blocks) if found is not None else _exact_trim(plan, task, blocks, slots, i, selector.k,
                                                                               held)
    return trims


def _sample_rows(rows: int) -> list[int]:
    """About one row in 64 (at least 16, at most all), spread at random but always the same."""
    count = min(rows, max(16, rows // 64))
    picked = torch.randperm(rows, generator=torch.Generator().manual_seed(0))[:count]
    return sorted(int(r) for r in picked)


class _BandSelect:
    """The exact ``k``-th largest of ``n`` values streamed in blocks, bracketed by a sample.

    When the sample's bracket is a single value (bf16 task vectors take few distinct
    values, and one of them often fills the whole bracket), the band holds only copies of
    it: each block then counts them instead of gathering them.
    """

    def __init__(self, n: int, k: int) -> None:
        self.n, self.k = n, k
        self.above: dict[int, int] = {}  # per block (by its first row), its count above the bracket
        self.values: dict[int, object] = {}  # per block, its values inside the bracket
        self.equal: dict[int, int] = {}  # per block, its count equal to a one-value bracket

    def bracket(self, sample) -> None:
        """Bounds from a sample's order statistics, wide enough for sampling error (rows
        are sampled whole, so wider than for independent entries)."""
        import numpy as np

        m = sample.size
        ordered = np.sort(sample)
        centre = self.k / self.n * m
        margin = 6.0 * math.sqrt(m) + 64
        top, bottom = int(centre - margin), int(centre + margin) + 1
        self.high = ordered[m - top] if top >= 1 else np.inf
        self.low = ordered[m - bottom] if bottom <= m else -np.inf

    @property
    def point(self) -> bool:
        """Whether the bracket is one value (then blocks count its copies)."""
        import numpy as np

        return bool(self.low == self.high) and bool(np.isfinite(self.high)) and self.high >= 0

    def add(self, values, block: int) -> None:
        """The magnitudes of one block (a 1-D numpy array, used as work space).

        Non-negative floats order as their bits read as unsigned integers, so the band test
        ``low <= x <= high`` is one wrapping subtraction (in place) and one comparison.
        """
        import numpy as np

        bits = values.view(np.uint32 if values.itemsize == 4 else np.uint64)
        high = np.asarray(self.high, values.dtype).view(bits.dtype)
        self.above[block] = int(np.count_nonzero(bits > high))
        if self.point:  # the band is copies of one value
            self.equal[block] = int(np.count_nonzero(bits == high))
            return
        low = np.asarray(max(self.low, 0.0), values.dtype).view(bits.dtype)
        bits -= low
        inside = bits[np.flatnonzero(bits <= high - low)]
        inside += low
        self.values[block] = inside.view(values.dtype)

    def result(self):
        """(threshold, its count in each block, ties to admit), or None if the bracket missed."""
        import numpy as np

        above = sum(self.above.values())
        rank = self.k - above  # the answer's rank from the top within the band
        if self.point:
            blocks = sorted(self.equal)
            if rank < 1 or rank > sum(self.equal.values()):
                return None
            return self.high, [self.equal[b] for b in blocks], rank
        blocks = sorted(self.values)
        values = np.concatenate([self.values[b] for b in blocks]) if blocks else np.zeros(0, np.float32)
        if rank < 1 or rank > values.size:
            return None
        threshold = np.partition(values, values.size - rank)[values.size - rank]
        ties = self.k - above - int(np.count_nonzero(values > threshold))
        return threshold, [int(np.count_nonzero(self.values[b] == threshold)) for b in blocks], ties


def _exact_trim(plan: "MergePlan", task: "TensorTask", blocks, slots, i: int, k: int,
                held: dict | None = None) -> _Trim:
    """The trim of task vector ``i`` from all its magnitudes at once (one float buffer)."""
    n = _numel(task)
    mags = None
    at = 0
    for start, stop in blocks:
        pair = _read_block(plan, [slots[task.base_index], slots[i]], start, stop, None, [], held)
        compute = torch.float64 if pair[0].dtype == torch.float64 else torch.float32
        d = (pair[1].to(compute) - pair[0].to(compute)).abs_().reshape(-1)
        if mags is None:
            mags = torch.empty(n, dtype=compute)
        mags[at:at + d.numel()] = d
        at += d.numel()
    threshold = kth_largest(mags, k)
    ties = k - int((mags > threshold).sum())
    cols = n // task.shape[0]
    equal = [int((mags[a * cols:b * cols] == threshold).sum()) for a, b in blocks]
    return _trim(threshold.numpy(), equal, ties, blocks)


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


def _drops(plan: "MergePlan", task: "TensorTask", blocks, slots, kind: str, seed: int,
           workers: int | None = None, held: dict | None = None, norm_blocks=None) -> dict[int, _Drop]:
    """Each task vector's drop; with the L1 rescale, pass 1 finds its whole-tensor factor
    (summed over ``norm_blocks``, default ``blocks``)."""
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
            def norms(start: int, stop: int, i=i, drop=drop) -> tuple[float, float]:
                pair = _read_block(plan, [slots[task.base_index], slots[i]], start, stop, None, [], held)
                delta = pair[1].float() - pair[0].float()
                kept = delta.reshape(delta.shape[0], -1) * drop.mask(delta, start)[0]
                return float(delta.abs().sum(dtype=torch.float64)), float(kept.abs().sum(dtype=torch.float64))

            sums = each_block(norms, norm_blocks or blocks, workers)  # added up in block order: the same factor on any thread count
            before, after = sum(b for b, _ in sums), sum(a for _, a in sums)
            drop.factor = before / after if before >= _NORM_EPS and after >= _NORM_EPS else 1.0
        drops[i] = drop
    return drops


def _block_task(task: "TensorTask", rows: int, model_params: list[dict]) -> "TensorTask":
    from dataclasses import replace

    return replace(task, shape=(rows, *task.shape[1:]), model_params=model_params)
