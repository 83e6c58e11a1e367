"""Checks over a whole plan, run by ``build_plan`` after every tensor is planned (still no tensor read).

Each check is a function ``check(plan) -> list[str]`` of problems (it may also append to
``plan.warnings``); ``build_plan`` reports them with the planner's own problems (paths,
method, parameters, layer ranges, slice lengths, shapes, dropped tensors) in one
ValidationError. Other packages can append their own checks to ``PLAN_CHECKS``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING


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
