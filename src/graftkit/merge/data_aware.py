"""Statistics for the data-aware methods (fisher, regmean), attached to a plan before it runs.

The methods take each model's statistics as extra per-model inputs; here they are
computed (or read from the cache) once per input model and looked up per tensor while
the merge streams. Each model's data is its own ``statistics`` entry in ``models``
(RegMean and Fisher as in their papers: every model on its own task's data) or else the
config's top-level ``statistics`` section; a base model needs none (the methods leave it
out).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graftkit.errors import MergeError

if TYPE_CHECKING:
    from graftkit.merge.plan import MergePlan


def statistics_kind(method: Any) -> str | None:
    """``fisher`` or ``gram`` for a method that needs statistics, else None."""
    if "fisher" in method.statistics:
        return "fisher"
    if "gram" in method.statistics:
        return "gram"
    return None


def model_settings(plan: "MergePlan") -> list[Any]:
    """The ``StatisticsSettings`` of each source: its own entry, else the config's, else None."""
    own = {entry.model: entry.statistics for entry in plan.config.models or [] if entry.statistics is not None}
    return [own.get(src.ref.ref, plan.config.statistics) for src in plan.sources]


def _base_refs(plan: "MergePlan") -> set[Any]:
    refs = {plan.config.base_model} if plan.config.base_model is not None else set()
    for sl in plan.config.slices or []:
        if sl.base_model is not None:
            refs.add(sl.base_model)
    return refs


def check_calibration(plan: "MergePlan") -> list[str]:
    kind = statistics_kind(plan.method)
    given = [e for e in plan.config.models or [] if e.statistics is not None]
    if kind is None:
        if plan.config.statistics is not None or given:
            plan.warnings.append(f"merge method '{plan.method.name}' uses no statistics: the 'statistics' "
                                 "section(s) are ignored")
        return []
    problems = []
    if "progressive" in plan.method.statistics and plan.config.slices:
        problems.append(f"merge method '{plan.method.name}' merges whole models block by block; it takes "
                        "'models:', not 'slices:' (use 'regmean' for slice merges)")
    bases = _base_refs(plan)
    for src, settings in zip(plan.sources, model_settings(plan)):
        if settings is None and src.ref.ref not in bases:
            problems.append(
                f"merge method '{plan.method.name}' needs statistics from data for {src.label}: add "
                "'statistics: {dataset: sst2, examples: 256}' (or 'texts: [...]') to the config, or to "
                "this model's entry in 'models' for data of its own")
        elif settings is not None and settings.kind is not None and settings.kind != kind:
            problems.append(f"statistics.kind of {src.label} is {settings.kind!r} but merge method "
                            f"'{plan.method.name}' uses {kind!r}")
    if any(s.lora is not None for s in plan.sources):
        problems.append(f"merge method '{plan.method.name}' cannot compute statistics of LoRA inputs "
                        "(path+lora); merge the adapter first")
    return problems


def _calibration(settings: Any) -> Any:
    from graftkit.merge.statistics import calibration_set, from_texts

    if settings.dataset is not None:
        return calibration_set(settings.dataset, split=settings.split, examples=settings.examples, seed=settings.seed)
    return from_texts(settings.texts or [])


def attach_statistics(plan: "MergePlan", merged_out: dict[str, Any] | None = None, seed: int = 0) -> list[Any]:
    """One ``ModelStatistics`` per source (None for a base model without statistics).

    A progressive method (RegMean++) merges every tensor on the way; ``merged_out``, when given,
    receives those tensors, so a caller holding the model in memory need not merge them again.
    """
    from graftkit.merge.statistics import statistics_for

    kind = statistics_kind(plan.method)
    if kind is None:
        return [None] * len(plan.sources)
    if "progressive" in plan.method.statistics:
        return progressive_statistics(plan, seed, merged_out)
    return [None if entry is None else statistics_for(kind, entry[0], entry[2], batch_size=entry[1].batch_size,
                                                      max_length=entry[1].max_length)
            for entry in _calibrated_sources(plan)]


def _calibrated_sources(plan: "MergePlan") -> list[tuple[Any, Any, Any] | None]:
    """Per source: (model folder, its statistics settings, its calibration set), or None for a base without data."""
    entries = []
    for src, settings in zip(plan.sources, model_settings(plan)):
        if settings is None:
            entries.append(None)
            continue
        if src.checkpoint.folder is None:
            raise MergeError(f"{src.label}: statistics need an HF model folder, not a single weight file")
        entries.append((src.checkpoint.folder, settings, _calibration(settings)))
    return entries


def progressive_statistics(plan: "MergePlan", seed: int = 0, merged_out: dict[str, Any] | None = None) -> list[Any]:
    """Grams taken block by block over the merged earlier blocks (RegMean++).

    Every input model with statistics is loaded at once (the blocks are merged in
    memory to feed the next block's Grams), so this needs the models' size in RAM;
    the streaming merge that follows reads the checkpoints again as usual.
    """
    from graftkit.merge.execute import load_inputs, merge_task
    from graftkit.merge.layers import is_pre_layer
    from graftkit.merge.statistics.compute import load_for_statistics
    from graftkit.merge.statistics.progressive import block_order, progressive_grams

    entries = _calibrated_sources(plan)
    models, tokenizers, calibrations = [], [], []
    for entry in entries:
        model, tokenizer = (None, None) if entry is None else load_for_statistics(entry[0], "gram", entry[2])
        models.append(None if model is None else model.eval())
        tokenizers.append(tokenizer)
        calibrations.append(None if entry is None else entry[2])
    tasks = {task.name: task for task in plan.tasks}
    architecture = plan.sources[plan.reference].checkpoint.architecture
    groups = block_order(list(tasks), architecture.layer_of, is_pre_layer)

    def merge_group(names: list[str], statistics: list[Any]) -> dict[str, Any]:
        merged = {}
        for name in names:
            task = tasks[name]
            merged[name] = merge_task(plan, task, load_inputs(plan, task, "warn", []), seed, statistics)
        if merged_out is not None:
            merged_out.update(merged)
        return merged

    first = next(entry[1] for entry in entries if entry is not None)
    return progressive_grams(models, calibrations, tokenizers, groups, merge_group,
                             batch_size=first.batch_size, max_length=first.max_length)
