"""A commented example config for every method (``graft merge examples DIR`` writes them).

Each example is mergekit YAML that graftkit runs unchanged (fisher and regmean,
which mergekit lacks, add a ``statistics`` block). The comments come from the
method's parameter schema, so they cannot drift from what the method accepts.
"""

from __future__ import annotations

from graftkit.merge.methods.base import MergeMethod, ParamSpec
from graftkit.merge.methods.registry import get_method

BASE = "./models/base"
MODELS = ["./models/expert-a", "./models/expert-b", "./models/expert-c"]

# Example values that show the typical use of each method; every parameter not
# listed here is written with its default.
_GLOBAL_VALUES: dict[str, dict[str, object]] = {
    "slerp": {"t": 0.5},
    "nearswap": {"t": 0.0001},
    "ties": {"lambda": 1.0},
    "task_arithmetic": {"lambda": 0.7},
    "dare_ties": {"lambda": 1.0},
    "dare_linear": {"lambda": 1.0},
    "della": {"lambda": 1.0},
    "della_linear": {"lambda": 1.0},
    "sce": {"select_topk": 0.3},
    "regmean": {"alpha": 0.9},
    "regmean_plus": {"alpha": 0.95},
}
_MODEL_VALUES: dict[str, list[dict[str, object]]] = {
    "linear": [{"weight": 0.5}, {"weight": 0.3}, {"weight": 0.2}],
    "ties": [{"weight": 1.0, "density": 0.5}, {"weight": 1.0, "density": 0.5}],
    "dare_ties": [{"weight": 1.0, "density": 0.5}, {"weight": 0.8, "density": 0.5}],
    "dare_linear": [{"weight": 0.6, "density": 0.5}, {"weight": 0.4, "density": 0.5}],
    "breadcrumbs": [{"weight": 0.6, "density": 0.9, "gamma": 0.01}, {"weight": 0.4, "density": 0.9, "gamma": 0.01}],
    "breadcrumbs_ties": [{"weight": 1.0, "density": 0.9, "gamma": 0.01}, {"weight": 1.0, "density": 0.9, "gamma": 0.01}],
    "della": [{"weight": 1.0, "density": 0.5, "epsilon": 0.1}, {"weight": 1.0, "density": 0.5, "epsilon": 0.1}],
    "della_linear": [{"weight": 0.6, "density": 0.5, "epsilon": 0.1}, {"weight": 0.4, "density": 0.5, "epsilon": 0.1}],
    "task_arithmetic": [{"weight": 1.0}, {"weight": 1.0}],
    "nuslerp": [{"weight": 0.6}, {"weight": 0.4}],
    "multislerp": [{"weight": 0.5}, {"weight": 0.3}, {"weight": 0.2}],
    "fisher": [{"weight": 1.0}, {"weight": 1.0}, {"weight": 1.0}],
    "regmean": [{"weight": 1.0}, {"weight": 1.0}, {"weight": 1.0}],
    "regmean_plus": [{"weight": 1.0}, {"weight": 1.0}, {"weight": 1.0}],
}
_MODEL_COUNT = {"slerp": 1, "nearswap": 1, "arcee_fusion": 1, "nuslerp": 2, "passthrough": 1}


def _scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float):
        text = repr(value)
        mantissa, _, exponent = text.partition("e")
        # YAML 1.1 reads 1e-08 as a string; 1.0e-08 is a float
        return f"{mantissa if '.' in mantissa else mantissa + '.0'}e{exponent}" if exponent else text
    return str(value)


def _comment(spec: ParamSpec) -> str:
    default = "required" if spec.required else f"default {_scalar(spec.default)}"
    choices = f"; one of {', '.join(spec.choices)}" if spec.choices else ""
    return f"{spec.description} ({default}{choices})"


def _models(method: MergeMethod) -> list[str]:
    if method.name in _MODEL_COUNT:
        return MODELS[: _MODEL_COUNT[method.name]]
    if method.name == "model_stock":
        return MODELS[:3]
    return MODELS[: len(_MODEL_VALUES.get(method.name, [{}, {}]))]


def example_config(method_name: str) -> str:
    """A commented mergekit YAML config for ``method_name`` (ConfigError if unknown)."""
    method = get_method(method_name)
    lines = [f"# {method.name}: {method.description}", f"# reference: {method.reference}"]
    if method.requires_base:
        lines.append("# needs base_model; the base's tensors are the reference every model is compared to")
    elif method.uses_base:
        lines.append("# base_model is optional here")
    if method.min_models == method.max_models:
        lines.append(f"# takes exactly {method.min_models} model(s), the base included")
    if method.random:
        lines.append("# random: the same --seed gives the same output (one generator per tensor, from the seed and the tensor name)")
    if not method.mergekit:
        lines.append("# graftkit only (mergekit lacks it): statistics are computed once on the calibration data and cached")
    lines.append(f"merge_method: {method.name}")
    if method.uses_base and method.name != "passthrough":
        lines.append(f"base_model: {BASE}")
    values = _MODEL_VALUES.get(method.name, [])
    lines.append("models:")
    if method.requires_base and method.name in ("slerp", "nearswap", "arcee_fusion"):
        lines.append(f"  - model: {BASE}   # the base is listed too: exactly two models")
    elif method.name == "model_stock":
        lines.append(f"  - model: {BASE}   # listed so the method sees base + two fine-tunes")
    for index, model in enumerate(_models(method)):
        lines.append(f"  - model: {model}")
        given = values[index] if index < len(values) else {}
        per_model = {k: v for k, v in given.items() if k in method.model_params}
        if not per_model:
            required = [s for s in method.model_params.values() if s.required]
            per_model = {s.name: 1.0 for s in required}
        if per_model:
            lines.append("    parameters:")
            for key, value in per_model.items():
                lines.append(f"      {key}: {_scalar(value)}   # {_comment(method.model_params[key])}")
    chosen = _GLOBAL_VALUES.get(method.name, {})
    if method.global_params:
        lines.append("parameters:")
        for name, spec in method.global_params.items():
            value = chosen.get(name, 0.5 if spec.required else spec.default)
            lines.append(f"  {name}: {_scalar(value)}   # {_comment(spec)}")
    if method.statistics:
        kind = "fisher" if "fisher" in method.statistics else "gram"
        lines += [
            "statistics:   # calibration data for the data-aware statistics",
            f"  kind: {kind}        # {'diagonal Fisher of each model on its data' if kind == 'fisher' else 'Gram matrices of every Linear input'}",
            "  dataset: sst2        # a graftkit.data dataset name (or give texts of your own)",
            "  split: train         # the split the examples are drawn from",
            "  examples: 256        # a small sample is enough",
            "  max_length: 128      # tokens per example",
        ]
    lines += ["dtype: float32   # compute dtype", "out_dtype: bfloat16   # dtype written to the output", ""]
    return "\n".join(lines)


def all_examples() -> dict[str, str]:
    """``{method name: example YAML}`` for every registered method."""
    from graftkit.merge.methods.registry import METHODS

    return {name: example_config(name) for name in METHODS}
