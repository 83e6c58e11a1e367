"""The merge engine's per-tensor plan executed across Ray workers, written by the driver.

For models too large for one machine's cores: the driver validates and plans once
(headers only), splits the tasks into chunks, and each Ray task rebuilds the same plan
from the same config and runs the engine's own ``load_inputs``/``merge_task`` (or
``merge_in_blocks``) for its chunk. The driver writes the tensors in plan order with the
same writer, config, tokenizer and auxiliary files as `graftkit.merge.execute`, so the
output is identical to a local merge. Chunks are merged in parallel but at most
``workers`` chunks are in flight, so driver memory stays near ``workers`` chunks.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from graftkit.merge.config import MergeConfig


def _merge_chunk(config_yaml: str, config_dir: str | None, names: list[str], seed: int, nan: str,
                 dtype: str | None) -> list[tuple[str, Any]]:
    """Runs on a worker: the merged tensors of ``names``, in order."""
    from graftkit.merge.chunking import merge_in_blocks, row_separable
    from graftkit.merge.config import load_config
    from graftkit.merge.data_aware import attach_statistics
    from graftkit.merge.execute import load_inputs, merge_task
    from graftkit.merge.plan import build_plan

    plan = build_plan(load_config(config_yaml), config_dir=config_dir, out_dtype=dtype, verify=False)
    by_name = {t.name: t for t in plan.tasks}
    statistics = attach_statistics(plan)
    nan_tensors: list[str] = []
    out = []
    for name in names:
        task = by_name[name]
        if row_separable(plan, task):
            out.append((name, merge_in_blocks(plan, task, seed, nan, nan_tensors)))
        else:
            out.append((name, merge_task(plan, task, load_inputs(plan, task, nan, nan_tensors), seed, statistics)))
    for src in plan.sources:
        if src.reader is not None:
            src.reader.close()
    return out


def distributed_merge(config: str | Path | dict | MergeConfig, out: str | Path, *, workers: int = 2,
                      chunk_bytes: int = 256 * 1024**2, address: str | None = None, seed: int = 0,
                      dtype: str | None = None, nan: str = "warn", overwrite: bool = False,
                      shard_size: str | int = "5GB") -> Any:
    """Merge ``config`` into ``out`` with the tensors computed on Ray workers; returns a MergeResult."""
    from graftkit.io import CheckpointWriter, TensorInfo
    from graftkit.merge.api import _load, _plan
    from graftkit.merge.execute import MergeOptions, MergeResult, write_companions
    from graftkit.progress import progress_bar
    from graftkit.evolve.workers import init_ray

    MergeOptions(nan=nan)  # same option check as the local engine
    cfg, folder, text = _load(config)
    plan = _plan(cfg, folder, str(config) if folder is not None else None, False, dtype, True)
    ray = init_ray(address, num_cpus=None if address else max(2, workers))
    remote = ray.remote(num_cpus=1, max_retries=2)(_merge_chunk)

    chunks: list[list[str]] = [[]]
    size = 0
    for task in plan.tasks:
        if chunks[-1] and size + task.nbytes > chunk_bytes:
            chunks.append([])
            size = 0
        chunks[-1].append(task.name)
        size += task.nbytes
    config_yaml = cfg.to_yaml()
    config_dir = str(folder) if folder is not None else None

    start = time.perf_counter()
    out = Path(out)
    layout = [TensorInfo(t.name, tuple(t.shape), t.dtype) for t in plan.tasks]
    with CheckpointWriter(out, max_shard_size=shard_size, overwrite=overwrite, layout=layout) as writer:
        pending = []
        next_chunk = 0
        with progress_bar(f"merging on Ray ({plan.method.name})", len(plan.tasks)) as advance:
            while next_chunk < len(chunks) or pending:
                while next_chunk < len(chunks) and len(pending) < max(1, workers):
                    pending.append(remote.remote(config_yaml, config_dir, chunks[next_chunk], seed, nan, dtype))
                    next_chunk += 1
                for name, tensor in ray.get(pending.pop(0)):  # in plan order
                    writer.write(name, tensor)
                    advance(1)
        result = MergeResult(output=out, tensors=len(plan.tasks), bytes=plan.total_bytes,
                             seconds=time.perf_counter() - start, warnings=list(plan.warnings))
        write_companions(plan, writer, result, text or cfg.to_yaml())
    return result
