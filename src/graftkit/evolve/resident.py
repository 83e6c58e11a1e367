"""Merge candidates in memory into one resident model: inputs read once, no disk writes.

A search evaluates many recipes over the same inputs. Writing each merged model to
disk and loading it back costs more than the merge; here each input tensor is read once
(through the merge engine's own reader, cast to the compute dtype) and kept, and every
candidate's plan (``graftkit.merge.plan.build_plan``) runs through the engine's
``merge_task``, whose outputs are copied into the parameters of a model loaded once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from graftkit.errors import MergeError


def load_model(path: str | Path) -> torch.nn.Module:
    """The HF model of folder ``path``, by the class its config.json names (float32, eval mode)."""
    import transformers
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.from_pretrained(path)
    cls = AutoModel
    for name in config.architectures or []:
        if hasattr(transformers, name):
            cls = getattr(transformers, name)
            break
    model = cls.from_pretrained(path, dtype=torch.float32)
    return model.eval()


class ResidentMerger:
    """Holds the inputs and one model; ``apply(config)`` makes the model the merge of ``config``."""

    def __init__(self, reference: str | Path, *, config_dir: str | Path | None = None, seed: int = 0) -> None:
        self.reference = Path(reference)
        self.config_dir = Path(config_dir) if config_dir is not None else None
        self.seed = seed
        self.model = load_model(self.reference)
        # non-persistent buffers (e.g. BERT's position_ids) are absent from state_dict() but may be in the files
        self.state = {**dict(self.model.named_buffers()), **self.model.state_dict()}
        self._inputs: dict[tuple[str, str, str], torch.Tensor] = {}
        self._statistics: dict[tuple[str, str, str], Any] = {}
        self._pristine = {k: v.detach().clone() for k, v in self.state.items()}

    def _read(self, plan: Any, source: int, name: str) -> torch.Tensor:
        from graftkit.merge.execute import read_input

        src = plan.sources[source]
        key = (str(src.ref.path), str(src.ref.lora_path), name)
        if key not in self._inputs:
            self._inputs[key] = read_input(plan, source, name)
        return self._inputs[key]

    def plan(self, config: dict | Any) -> Any:
        from graftkit.merge.config import MergeConfig, load_config
        from graftkit.merge.plan import build_plan

        cfg = config if isinstance(config, MergeConfig) else load_config(config)
        return build_plan(cfg, config_dir=self.config_dir, verify=False)

    def statistics(self, plan: Any, merged: dict[str, torch.Tensor] | None = None) -> list[Any]:
        """Each source's statistics (fisher / regmean), kept in memory: candidates share their data settings,
        so the statistics are computed (or read from the disk cache) once per model and setting.

        RegMean++'s Grams are taken over the candidate's own merged earlier blocks, so they differ from one
        candidate to the next: computed afresh for every plan, never kept; the tensors merged on the way
        go into ``merged``."""
        from graftkit.merge.data_aware import attach_statistics, model_settings, statistics_kind

        kind = statistics_kind(plan.method)
        if kind is None:
            return [None] * len(plan.sources)
        if "progressive" in plan.method.statistics:
            return attach_statistics(plan, merged, self.seed)
        keys = [(kind, str(src.ref.path), settings.model_dump_json() if settings is not None else "")
                for src, settings in zip(plan.sources, model_settings(plan))]
        if not all(k in self._statistics for k in keys):
            self._statistics.update(zip(keys, attach_statistics(plan)))
        return [self._statistics[k] for k in keys]

    def merged_tensors(self, config: dict | Any):
        """Yield (name, merged tensor) for every output tensor of ``config``."""
        from graftkit.merge.execute import align_vocabulary, merge_task

        plan = self.plan(config)
        done: dict[str, torch.Tensor] = {}  # merged while RegMean++ took its Grams: the same tensors, not merged twice
        statistics = self.statistics(plan, done)
        for task in plan.tasks:
            if task.name in done and task.copy_from is None and not task.vocab:
                yield task.name, done.pop(task.name)
                continue
            slots = [task.inputs[task.copy_from]] if task.copy_from is not None else task.inputs
            tensors = [self._read(plan, s.source, s.name) for s in slots]
            if task.vocab:
                tensors = align_vocabulary(plan, task, tensors, slots)
            yield task.name, merge_task(plan, task, tensors, self.seed, statistics)
        for src in plan.sources:
            if src.reader is not None:
                src.reader.close()

    @torch.no_grad()
    def apply(self, config: dict | Any) -> torch.nn.Module:
        """Write the merge of ``config`` into the resident model's parameters and return the model."""
        written = set()
        for name, tensor in self.merged_tensors(config):
            target = self.state.get(name)
            if target is None:
                raise MergeError(
                    f"merged tensor {name} has no parameter in the resident model loaded from {self.reference}",
                    hint="the reference model must have the architecture of the merge output")
            if tuple(target.shape) != tuple(tensor.shape):
                raise MergeError(f"merged tensor {name} has shape {list(tensor.shape)}, the resident model's "
                                 f"parameter {list(target.shape)}: a data-flow recipe must keep the layer count")
            target.copy_(tensor.to(target.dtype))
            written.add(name)
        for name, value in self._pristine.items():  # tensors a recipe does not write keep the reference's values
            if name not in written and not _tied(self.state, name, written):
                self.state[name].copy_(value)
        return self.model


def _tied(state: dict[str, torch.Tensor], name: str, written: set[str]) -> bool:
    """True when ``name`` shares storage with a tensor that was written (tied embeddings)."""
    ptr = state[name].data_ptr()
    return any(state[w].data_ptr() == ptr for w in written)
