"""Run a merge plan: read, merge and write one output tensor at a time.

Memory stays near one tensor per input plus the tensor being written: the writer gets
the whole output layout up front (``CheckpointWriter(layout=...)``) and puts each tensor
straight at its offset. A reader thread loads the next group of inputs (file reads,
LoRA deltas, dtype casts, NaN checks, vocabulary alignment) while the main thread
merges the current one; torch releases the GIL, so both cores work. The reader keeps
at most ``prefetch_bytes`` ahead, so a huge embedding matrix is never doubled up.
"""

from __future__ import annotations

import queue
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from graftkit.errors import ConfigError, MergeError
from graftkit.merge.chunking import elementwise_in_rows, merge_in_blocks, row_separable
from graftkit.merge.finite import all_finite
from graftkit.merge.plan import MergePlan, TensorTask


@dataclass
class MergeOptions:
    """How to run a merge (the CLI's flags)."""

    shard_size: str | int = "5GB"
    overwrite: bool = False
    seed: int = 0
    nan: str = "warn"  # warn | fail
    check: bool = True
    prefetch_bytes: int = 64 * 1024**2
    probes: int = 4
    tune_malloc: bool = True  # glibc's thresholds raised for the process (allocator.py); False leaves them

    def __post_init__(self) -> None:
        if self.nan not in ("warn", "fail"):
            raise ConfigError(f"--nan must be 'warn' or 'fail', got {self.nan!r}")


@dataclass
class MergeResult:
    output: Path
    tensors: int
    bytes: int
    seconds: float
    warnings: list[str] = field(default_factory=list)
    nan_tensors: list[str] = field(default_factory=list)
    check: Any = None  # graftkit.merge.check.CheckReport


class _Prefetcher:
    """Loads task inputs on a thread, never more than ``budget`` bytes ahead of the consumer."""

    def __init__(self, plan: MergePlan, options: MergeOptions, nan_tensors: list[str]) -> None:
        self.plan = plan
        self.options = options
        self.nan_tensors = nan_tensors
        self.queue: queue.Queue = queue.Queue()
        self.cond = threading.Condition()
        self.in_flight = 0
        self.stop = False
        self.thread = threading.Thread(target=self._run, name="graftkit-merge-reader", daemon=True)

    def __enter__(self) -> "_Prefetcher":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self.cond:
            self.stop = True
            self.cond.notify_all()
        self.thread.join()

    def release(self, nbytes: int) -> None:
        with self.cond:
            self.in_flight -= nbytes
            self.cond.notify_all()

    def _run(self) -> None:
        try:
            for task in self.plan.tasks:
                if row_separable(self.plan, task):  # merged block by block on the main thread
                    self.queue.put((task, None, 0))
                    continue
                size = _group_bytes(self.plan, task)
                with self.cond:
                    self.cond.wait_for(
                        lambda: self.stop or self.in_flight == 0 or self.in_flight + size <= self.options.prefetch_bytes
                    )
                    if self.stop:
                        return
                    self.in_flight += size
                self.queue.put((task, load_inputs(self.plan, task, self.options.nan, self.nan_tensors), size))
        except BaseException as exc:  # handed to the main thread, which raises it
            self.queue.put((None, exc, 0))

    def __iter__(self):
        for _ in self.plan.tasks:
            task, tensors, size = self.queue.get()
            if task is None:
                raise tensors
            yield task, tensors, size


class _WriteBehind:
    """Writes each merged tensor on a thread while the next one is merged.

    At most one tensor waits or is being written, so memory grows by one output tensor at
    most; an error of the writing thread is raised on the main thread at the next write or
    at the end.
    """

    def __init__(self, writer: Any) -> None:
        self.writer = writer
        self.slot = threading.Semaphore(1)
        self.queue: queue.Queue = queue.Queue()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="graftkit-merge-writer", daemon=True)

    def __enter__(self) -> "_WriteBehind":
        self.thread.start()
        return self

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            try:
                if self.error is None:
                    self.writer.write(*item)
            except BaseException as exc:  # handed to the main thread
                self.error = exc
            finally:
                del item
                self.slot.release()

    def write(self, name: str, tensor: torch.Tensor) -> None:
        self.slot.acquire()
        if self.error is not None:
            self.slot.release()
            raise self.error
        self.queue.put((name, tensor))

    def __exit__(self, *exc: object) -> None:
        self.queue.put(None)
        self.thread.join()
        if self.error is not None and exc[0] is None:
            raise self.error


def _group_bytes(plan: MergePlan, task: TensorTask) -> int:
    total = 0
    for inp in {(i.source, i.name) for i in task.inputs}:
        info = plan.sources[inp[0]].checkpoint.info(inp[1])
        total += info.nbytes
    return total


def read_input(plan: MergePlan, source: int, name: str) -> torch.Tensor:
    """One input tensor as the merge sees it: LoRA delta added, cast to the compute dtype."""
    src = plan.sources[source]
    tensor = src.read(name)
    if src.lora is not None:
        tensor = src.lora.apply(name, tensor)
    dtype = plan.compute_dtype
    if dtype is not None and tensor.is_floating_point() and tensor.dtype != dtype:
        tensor = tensor.to(dtype)
    return tensor


def load_inputs(plan: MergePlan, task: TensorTask, nan: str, nan_tensors: list[str]) -> list[torch.Tensor]:
    """The input tensors of one task, in slot order (a model listed twice is read once)."""
    cache: dict[tuple[int, str], torch.Tensor] = {}
    slots = [task.inputs[task.copy_from]] if task.copy_from is not None else task.inputs
    tensors = []
    for inp in slots:
        key = (inp.source, inp.name)
        if key not in cache:
            t = read_input(plan, inp.source, inp.name)
            if t.is_floating_point() and not all_finite(t):
                where = f"tensor {inp.name} of {plan.sources[inp.source].label}"
                if nan == "fail":
                    raise MergeError(f"{where} holds NaN or infinite values",
                                     hint="fix the input, or pass --nan warn to merge anyway")
                nan_tensors.append(where)
            cache[key] = t
        tensors.append(cache[key])
    if task.vocab:
        tensors = align_vocabulary(plan, task, tensors, slots)
    return tensors


def align_vocabulary(plan: MergePlan, task: TensorTask, tensors: list[torch.Tensor], slots) -> list[torch.Tensor]:
    """Rows of token-indexed tensors: into the merged vocabulary, or the largest common submatrix."""
    rows = task.shape[0]
    if plan.tokenizer is not None:
        return plan.tokenizer.align_all(tensors, [s.source for s in slots])
    return [t[:rows] if t.shape[0] != rows else t for t in tensors]


def merge_task(plan: MergePlan, task: TensorTask, tensors: list[torch.Tensor], seed: int,
               statistics: list[Any] | None = None) -> torch.Tensor:
    """The output tensor of one task, in its planned dtype."""
    if task.copy_from is not None:
        out = tensors[0]
    else:
        model_params = task.model_params
        if statistics is not None and any(s is not None for s in statistics):
            model_params = [
                {**mp, **(statistics[inp.source].lookup(inp.name) if statistics[inp.source] is not None else {})}
                for mp, inp in zip(task.model_params, task.inputs)
            ]
        out_dtype = plan.compute_dtype if plan.compute_dtype is not None and tensors[0].is_floating_point() else None

        def merge_rows(inputs: list[torch.Tensor]) -> torch.Tensor:
            return plan.method.merge(inputs, base_index=task.base_index, model_params=model_params,
                                     params=task.params, tensor_name=task.name, seed=seed, out_dtype=out_dtype)

        out = elementwise_in_rows(plan.method.name, tensors, merge_rows)
    if tuple(out.shape) != tuple(task.shape):
        raise MergeError(
            f"method {plan.method.name} returned shape {list(out.shape)} for {task.name}, expected {list(task.shape)}"
        )
    return out.to(task.dtype).contiguous()


def execute(plan: MergePlan, out: str | Path, options: MergeOptions | None = None, *,
            config_text: str | None = None) -> MergeResult:
    """Write the merged model of ``plan`` to ``out`` (atomically: all or nothing)."""
    from graftkit.io import CheckpointWriter, TensorInfo
    from graftkit.merge.allocator import keep_freed_memory
    from graftkit.progress import progress_bar

    options = options or MergeOptions()
    if options.tune_malloc:
        keep_freed_memory()  # same-sized buffers come and go all merge long: reuse them (see allocator.py)
    out = Path(out)
    start = time.perf_counter()
    nan_tensors: list[str] = []
    layout = [TensorInfo(t.name, tuple(t.shape), t.dtype) for t in plan.tasks]
    from graftkit.merge.data_aware import attach_statistics

    statistics = attach_statistics(plan)
    with CheckpointWriter(out, max_shard_size=options.shard_size, overwrite=options.overwrite, layout=layout) as writer:
        with _Prefetcher(plan, options, nan_tensors) as reader, \
                progress_bar(f"merging ({plan.method.name})", len(plan.tasks)) as advance:
            with _WriteBehind(writer) as behind:
                _merge_all(plan, options, reader, behind, advance, statistics, nan_tensors)
        result = MergeResult(
            output=out, tensors=len(plan.tasks), bytes=plan.total_bytes,
            seconds=time.perf_counter() - start, warnings=list(plan.warnings), nan_tensors=nan_tensors,
        )
        write_companions(plan, writer, result, config_text)
    for src in plan.sources:
        if src.reader is not None:
            src.reader.close()
    if nan_tensors:
        warnings.warn(f"{len(nan_tensors)} input tensor(s) held NaN/inf: {', '.join(nan_tensors[:5])}", stacklevel=2)
    return result


SMALL_TASK_BYTES = 32 * 1024**2  # inputs of tasks merged side by side, one per thread


def _merge_all(plan: MergePlan, options: MergeOptions, reader: "_Prefetcher", behind: "_WriteBehind",
               advance: Any, statistics: Any, nan_tensors: list[str]) -> None:
    """Merge every task in plan order, using every core without threads inside torch's kernels.

    Small tasks (most of a model: norms, projections) are merged side by side, one per
    thread with one torch thread each, and written in order: one tensor's kernels are too
    short to split well, and split kernels busy-wait at their barriers when the machine is
    shared. Huge row-separable tasks spread their row blocks over the same threads; any
    other big task runs alone with torch's threads (two at once could double peak memory).
    """
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    workers = max(1, torch.get_num_threads())
    pending: deque = deque()

    def finish_oldest() -> None:
        task, future = pending.popleft()
        behind.write(task.name, future.result())
        advance(1)

    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(workers, thread_name_prefix="graftkit-merge") as pool:
            for task, tensors, size in reader:
                if tensors is not None and workers > 1 and size <= SMALL_TASK_BYTES:
                    while len(pending) >= workers:
                        finish_oldest()
                    pending.append((task, pool.submit(merge_task, plan, task, tensors, options.seed, statistics)))
                    del tensors
                    # the reader may load on meanwhile (it would otherwise wait on budget that only
                    # finished tasks free, while this loop waits on the reader): at most ``workers``
                    # small tasks are held beyond ``prefetch_bytes``
                    reader.release(size)
                    continue
                while pending:
                    finish_oldest()
                if tensors is None:
                    merged = merge_in_blocks(plan, task, options.seed, options.nan, nan_tensors, workers=workers)
                else:
                    torch.set_num_threads(workers)
                    try:
                        merged = merge_task(plan, task, tensors, options.seed, statistics)
                    finally:
                        torch.set_num_threads(1)
                del tensors
                behind.write(task.name, merged)
                del merged
                reader.release(size)
                advance(1)
            while pending:
                finish_oldest()
    finally:
        torch.set_num_threads(workers)


def write_companions(plan: MergePlan, writer: Any, result: MergeResult, config_text: str | None) -> None:
    """Everything of a merged folder besides its tensors: config, tokenizer, chat template,
    the reference model's auxiliary files, the merge config and the model card."""
    from graftkit.merge.card import model_card
    from graftkit.merge.chat_template import resolve_chat_template

    if plan.out_config is not None:
        writer.write_json("config.json", plan.out_config)
    if plan.tokenizer is not None:
        plan.tokenizer.save(writer.folder)
    template = resolve_chat_template(plan)
    if template is not None:
        writer.write_text("chat_template.jinja", template)
    reference = plan.sources[plan.reference].checkpoint
    if reference.folder is not None:
        writer.copy_auxiliary(reference.folder)
    writer.write_text("graftkit_merge.yaml", config_text or plan.config.to_yaml())
    writer.write_text("README.md", model_card(plan, result, config_text))
