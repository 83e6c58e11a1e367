"""Merge methods: pure tensor functions with their parameter schemas, by name.

    from graftkit.merge.methods import get_method, METHODS
    out = get_method("ties").merge(tensors, base_index=0, model_params=[...], params={...})
"""

from graftkit.merge.methods import data_aware, linear, model_stock, ram, sce, simple, slerp, spherical, task_arithmetic
from graftkit.merge.methods.base import REQUIRED, MergeMethod, ParamSpec, tensor_generator
from graftkit.merge.methods.registry import METHODS, get_method, method_names, register

for _method in (
    linear.LINEAR,
    slerp.SLERP,
    *spherical.METHODS,
    *task_arithmetic.METHODS,
    sce.SCE,
    *ram.METHODS,
    model_stock.MODEL_STOCK,
    *simple.METHODS,
    *data_aware.METHODS,
):
    register(_method)
del _method

__all__ = [
    "METHODS",
    "REQUIRED",
    "MergeMethod",
    "ParamSpec",
    "get_method",
    "method_names",
    "register",
    "tensor_generator",
]
