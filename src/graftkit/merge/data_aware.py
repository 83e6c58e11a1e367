"""Statistics for the data-aware methods (fisher, regmean), attached to a plan before it runs.

The methods take each model's statistics as extra per-model inputs; here they are
computed (or read from the cache) once per input model from the config's
``statistics`` section, and looked up per tensor while the merge streams.
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


def check_calibration(plan: "MergePlan") -> list[str]:
    kind = statistics_kind(plan.method)
    settings = plan.config.statistics
    if kind and settings is None:
        return [
            f"merge method '{plan.method.name}' needs statistics from data: add "
            "'statistics: {dataset: sst2, examples: 256}' (or 'texts: [...]') to the config"
        ]
    if kind and settings.kind is not None and settings.kind != kind:
        return [f"statistics.kind is {settings.kind!r} but merge method '{plan.method.name}' uses {kind!r}"]
    if any(s.lora is not None for s in plan.sources) and statistics_kind(plan.method):
        return [f"merge method '{plan.method.name}' cannot compute statistics of LoRA inputs (path+lora); merge the adapter first"]
    return []


def attach_statistics(plan: "MergePlan") -> list[Any]:
    """One ``ModelStatistics`` per source (None for sources without a folder)."""
    from graftkit.merge.statistics import calibration_set, from_texts, statistics_for

    kind = statistics_kind(plan.method)
    settings = plan.config.statistics
    if kind is None or settings is None:
        return [None] * len(plan.sources)
    if settings.dataset is not None:
        calib = calibration_set(settings.dataset, split=settings.split, examples=settings.examples, seed=settings.seed)
    else:
        calib = from_texts(settings.texts or [])
    stats = []
    for src in plan.sources:
        if src.checkpoint.folder is None:
            raise MergeError(f"{src.label}: statistics need an HF model folder, not a single weight file")
        stats.append(statistics_for(kind, src.checkpoint.folder, calib, batch_size=settings.batch_size,
                                    max_length=settings.max_length))
    return stats
