"""Validate a merge before any tensor is read, reporting every problem in one pass.

``validate_config`` parses the YAML and builds the plan from headers (which checks
paths, method, parameters, layer ranges, slice lengths, shapes, dropped tensors) and
then runs ``PLAN_CHECKS``: functions ``check(plan) -> list[str]`` that look at the
whole plan. Other packages add their own checks by appending to ``PLAN_CHECKS``
(graph-signature compatibility from ``graftkit.genome`` is meant to plug in here).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from graftkit.errors import ValidationError

if TYPE_CHECKING:
    from graftkit.merge.plan import MergePlan


def check_float_inputs(plan: "MergePlan") -> list[str]:
    """Integer tensors can only be copied; merging quantized integer weights would be nonsense."""
    problems = []
    for task in plan.tasks:
        src = plan.sources[task.inputs[0].source].checkpoint
        dtype = src.dtype(task.inputs[0].name)
        if not dtype.is_floating_point and task.copy_from is None and plan.method.name != "passthrough":
            plan.warnings.append(f"{task.name} is {dtype}: copied only if every input agrees")
    return problems


def check_chat_template(plan: "MergePlan") -> list[str]:
    from graftkit.merge.chat_template import check_chat_template as check

    return check(plan)


def check_calibration(plan: "MergePlan") -> list[str]:
    from graftkit.merge.data_aware import check_calibration as check

    return check(plan)


PLAN_CHECKS: list[Callable[["MergePlan"], list[str]]] = [check_float_inputs, check_chat_template, check_calibration]


def run_plan_checks(plan: "MergePlan") -> list[str]:
    problems: list[str] = []
    for check in PLAN_CHECKS:
        problems.extend(check(plan))
    return problems


def validate_config(
    config_path: str | Path,
    *,
    allow_missing: bool = False,
    out_dtype: str | None = None,
) -> "MergePlan":
    """Parse and validate a config file; the plan on success, ValidationError listing every problem otherwise."""
    from graftkit.merge.config import load_config
    from graftkit.merge.plan import build_plan

    path = Path(config_path)
    config = load_config(path)
    try:
        return build_plan(config, config_dir=path.parent, allow_missing=allow_missing, out_dtype=out_dtype)
    except ValidationError as exc:
        raise ValidationError(exc.problems, source=str(path)) from None
