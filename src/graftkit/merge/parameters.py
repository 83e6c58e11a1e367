"""Resolve a parameter setting to one value for one tensor, as mergekit does.

A setting is a scalar, a gradient (a list of scalars interpolated piecewise-linearly
at ``t``, the position of the layer within its slice, 0 for the first layer and 1 for
the last) or a filter list (``[{filter, value}]``: the first entry whose filter is a
substring of the tensor name, or has no filter, wins). Settings are looked up from the
most specific scope to the least: slice source, slice, module, global.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from graftkit.merge.config import ConditionalParameter, ParameterSetting

_MISSING = object()


def evaluate(setting: ParameterSetting, tensor_name: str, t: float) -> Any:
    """The value of one setting for ``tensor_name`` at gradient position ``t`` (None: no filter matched)."""
    if isinstance(setting, ConditionalParameter):
        setting = [setting]
    if isinstance(setting, (bool, int, float, str)):
        return setting
    if isinstance(setting, list):
        if not setting:
            return None
        if all(isinstance(v, (bool, int, float, str)) for v in setting):
            return _gradient(setting, t)
        for cond in setting:
            if not isinstance(cond, ConditionalParameter):
                cond = ConditionalParameter.model_validate(cond)
            if cond.filter is None or cond.filter == "*" or (tensor_name and cond.filter in tensor_name):
                return evaluate(cond.value, tensor_name, t)
        return None
    if isinstance(setting, dict):
        return evaluate(ConditionalParameter.model_validate(setting), tensor_name, t)
    raise TypeError(f"unexpected parameter setting {setting!r}")


def _gradient(values: list, t: float) -> Any:
    numeric = [_as_number(v) for v in values]
    if any(v is None for v in numeric):
        # booleans and labels are picked, not interpolated
        return values[int(t * (len(values) - 1))]
    scaled = t * (len(values) - 1)
    i0 = int(scaled)
    i1 = min(len(values) - 1, i0 + 1)
    frac = scaled - i0
    return (1 - frac) * numeric[i0] + frac * numeric[i1]


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    try:
        return float(value)  # YAML reads "1e-3" as a string
    except (TypeError, ValueError):
        return None


def resolve(
    name: str, scopes: Iterable[Mapping[str, ParameterSetting] | None], tensor_name: str, t: float
) -> Any:
    """The first value found for parameter ``name`` in ``scopes`` (most specific first), else _MISSING."""
    for scope in scopes:
        if scope is not None and name in scope:
            value = evaluate(scope[name], tensor_name, t)
            if value is not None:
                return value
    return _MISSING


def is_missing(value: Any) -> bool:
    return value is _MISSING
