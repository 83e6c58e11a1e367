"""Search spaces: a vector of genes in [0, 1] -> a `graft merge` config (a plain dict).

Two spaces, alone or combined, as in Sakana's evolutionary model merge:

* ``parameters``: per-layer-group values of the method's per-model parameters (``weight``,
  ``density``) or of ``t`` (slerp); each group's value becomes one point of a mergekit
  gradient list, interpolated over the layers by the merge engine.
* ``dataflow``: the output is a sequence of ``slots`` layers; each slot draws layer ``k`` of
  one model (model chosen by the largest of M genes, ``k`` = slot index shifted by up to
  ``layer_spread``), merged with ``passthrough``; when the model changes from one slot to
  the next (a hop), the hopped-to layer's tensors are multiplied by an evolved ``scale``.
* ``both``: each slot draws layer ``k`` (as above) from every model, merged by ``method``
  with the slot's layer-group parameters.

``global_params`` adds method-wide parameters (e.g. RegMean's ``alpha``) with one gene per
layer group; ``filters`` gives the tensors whose names contain a substring their own genes for
some of the searched parameters (one gene each, one per model for per-model parameters),
written as mergekit filter lists: a tensor that feeds the task heads directly (BERT's
``pooler``) may want another RegMean ``alpha`` than the layers of its group; ``model_statistics`` gives each model its own calibration data (fisher and
regmean, written into that model's entry); ``start`` puts the optimizer's start point on
given values (e.g. a hand-tuned recipe) instead of the centre of every range.

Every candidate maps to a valid config; ``validate_space`` builds the plan of the centre
candidate from headers only, so missing models or layers fail before any worker starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from graftkit.errors import ConfigError, GraftError, ValidationError

SUPPORTED_METHODS = ("linear", "task_arithmetic", "ties", "dare_ties", "slerp", "fisher", "regmean", "regmean_plus")
_DATA_AWARE = ("fisher", "regmean", "regmean_plus")  # methods with per-model statistics
_MODEL_PARAMS = {
    "linear": ("weight",),
    "task_arithmetic": ("weight",),
    "ties": ("weight", "density"),
    "dare_ties": ("weight", "density"),
    "fisher": ("weight",),
    "regmean": ("weight",),
    "regmean_plus": ("weight",),
    "slerp": (),
}
_USES_BASE = ("task_arithmetic", "ties", "dare_ties", "slerp")  # the others would take the base as one more model
_DEFAULT_RANGES = {"weight": (0.0, 1.0), "density": (0.1, 1.0), "t": (0.0, 1.0), "scale": (0.5, 1.5)}


@dataclass
class SearchSpace:
    """What may vary: the models, the method, the layer groups and the value ranges."""

    models: list[str]
    method: str = "linear"
    kind: str = "parameters"  # parameters | dataflow | both
    base_model: str | None = None
    layer_groups: int = 1
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    slots: int | None = None  # dataflow: output layers (default: the reference's layer count)
    layer_spread: int = 1  # dataflow: how far a slot may reach from its own index
    statistics: dict[str, Any] | None = None  # fisher / regmean calibration settings shared by all models
    model_statistics: list[dict[str, Any] | None] = field(default_factory=list)  # per model, its own data
    global_params: list[str] = field(default_factory=list)  # method-wide parameters evolved per layer group
    start: dict[str, float] = field(default_factory=dict)  # parameter -> start value (default: range centre)
    filters: dict[str, list[str]] = field(default_factory=dict)  # tensor-name substring -> its own parameters
    dtype: str = "float32"
    config_dir: Path | None = None
    num_layers: int = 0  # filled by validate_space

    def __post_init__(self) -> None:
        if self.kind not in ("parameters", "dataflow", "both"):
            raise ConfigError(f"space kind {self.kind!r} is unknown", hint="use parameters, dataflow or both")
        if self.method not in SUPPORTED_METHODS:
            raise ConfigError(f"evolve method {self.method!r} is not searchable",
                              hint=f"choose one of: {', '.join(SUPPORTED_METHODS)}")
        if not self.models:
            raise ConfigError("the evolve config lists no models", hint="add 'models: [path_a, path_b]'")
        if self.method == "regmean_plus" and self.kind != "parameters":
            raise ConfigError(f"regmean_plus merges whole models block by block: it has no {self.kind} space",
                              hint="use space: parameters, or method: regmean for slices")
        if self.layer_groups < 1:
            raise ConfigError(f"layer_groups must be >= 1, got {self.layer_groups}")
        if self.method == "slerp" and (self.base_model is None or len(self.models) != 1):
            raise ConfigError("slerp interpolates exactly two models",
                              hint="give 'base_model: A' and 'models: [B]' (t = 0 is A)")
        self.ranges = {**_DEFAULT_RANGES, **{k: tuple(v) for k, v in self.ranges.items()}}
        self._check_extensions()

    def _check_extensions(self) -> None:
        """global_params, model_statistics and start name things this method and space have."""
        from graftkit.merge.methods import get_method

        if self.global_params:
            if self.kind == "dataflow" or self.method == "slerp":
                raise ConfigError(f"global_params apply to the parameters and both spaces of methods other than "
                                  f"slerp, not to {self.kind} with {self.method}", hint="remove 'global_params'")
            known = get_method(self.method).global_params
            for name in self.global_params:
                spec = known.get(name)
                if spec is None or spec.type is not float:
                    floats = [n for n, p in known.items() if p.type is float]
                    raise ConfigError(f"global_params: {name!r} is not a numeric parameter of {self.method}",
                                      hint=f"numeric parameters of {self.method}: {', '.join(floats) or 'none'}")
                if name not in self.ranges:
                    raise ConfigError(f"global_params: {name!r} has no range",
                                      hint=f"add 'ranges: {{{name}: [low, high]}}'")
        if self.model_statistics:
            if len(self.model_statistics) != len(self.models):
                raise ConfigError(f"{len(self.model_statistics)} per-model statistics for {len(self.models)} models")
            if any(s is not None for s in self.model_statistics) and self.method not in _DATA_AWARE:
                raise ConfigError(f"per-model statistics are for {', '.join(_DATA_AWARE)}, not {self.method}",
                                  hint="remove 'statistics' from the entries of 'models'")
            if any(s is not None for s in self.model_statistics) and self.kind != "parameters":
                raise ConfigError(f"per-model statistics need the parameters space, not {self.kind}: a merge "
                                  "config with 'slices' has no model entries to hold them",
                                  hint="use space: parameters, or one top-level 'statistics' for every model")
        searched = set(self.model_params) | set(self.global_params) | ({"t"} if self.method == "slerp" else set())
        if self.filters:
            if self.kind != "parameters" or self.method == "slerp":
                raise ConfigError(f"filters apply to the parameters space of methods other than slerp, not to "
                                  f"{self.kind} with {self.method}", hint="remove 'filters'")
            for name, params in self.filters.items():
                if not isinstance(name, str) or not name or name == "*":
                    raise ConfigError(f"filters: {name!r} is not a tensor-name substring",
                                      hint="use e.g. 'filters: {pooler: [alpha]}'")
                if not params or not isinstance(params, (list, tuple)):
                    raise ConfigError(f"filters: {name!r} lists no parameters", hint=f"e.g. '{name}: [alpha]'")
                for p in params:
                    if p not in searched:
                        raise ConfigError(f"filters: {name!r} names {p!r}, which this space does not search",
                                          hint=f"searched parameters: {', '.join(sorted(searched)) or 'none'}")
            self.filters = {name: list(dict.fromkeys(params)) for name, params in self.filters.items()}
        for name, value in self.start.items():
            if name not in searched:
                raise ConfigError(f"start: {name!r} is not searched in this space",
                                  hint=f"searched parameters: {', '.join(sorted(searched)) or 'none'}")
            lo, hi = self.ranges[name]
            if not min(lo, hi) <= float(value) <= max(lo, hi) or lo == hi:
                raise ConfigError(f"start: {name}={value} is outside its range [{lo}, {hi}]")

    # ------------------------------------------------------------------ sizes
    @property
    def model_params(self) -> tuple[str, ...]:
        return _MODEL_PARAMS[self.method]

    @property
    def layer_models(self) -> list[str]:
        """Models layers can be drawn from in the data-flow space (experts, then the base)."""
        return self.models + ([self.base_model] if self.base_model and self.base_model not in self.models else [])

    def _n_slots(self) -> int:
        return self.slots or self.num_layers

    def _param_dim(self) -> int:
        per_group = 1 if self.method == "slerp" else len(self.models) * len(self.model_params) + len(self.global_params)
        return per_group * self.layer_groups + len(self._filter_genes())

    def _filter_genes(self) -> list[tuple[str, str, int | None]]:
        """(filter, parameter, model index or None for a global parameter), one per filter gene, in gene order."""
        genes = []
        for name, params in self.filters.items():
            for p in params:
                if p in self.model_params:
                    genes += [(name, p, m) for m in range(len(self.models))]
                else:
                    genes.append((name, p, None))
        return genes

    def _flow_dim(self) -> int:
        m = len(self.layer_models) if self.kind == "dataflow" else 0
        per_slot = m + 1 + (1 if self.kind == "dataflow" else 0)  # model choice, layer shift, hop scale
        return per_slot * self._n_slots()

    @property
    def dim(self) -> int:
        return (self._param_dim() if self.kind != "dataflow" else 0) + (self._flow_dim() if self.kind != "parameters" else 0)

    def centre(self) -> np.ndarray:
        return np.full(self.dim, 0.5)

    def start_point(self) -> np.ndarray:
        """The optimizer's start: the centre, with the genes of parameters named in ``start`` on those values."""
        x = self.centre()
        if not self.start or self.kind == "dataflow":
            return x
        names = ["t"] if self.method == "slerp" else [p for _ in self.models for p in self.model_params] + self.global_params
        g = self.layer_groups
        for i, name in enumerate(names):
            if name in self.start:
                lo, hi = self.ranges[name]
                x[i * g : (i + 1) * g] = (float(self.start[name]) - lo) / (hi - lo)
        for j, (_, name, _) in enumerate(self._filter_genes()):
            if name in self.start:
                lo, hi = self.ranges[name]
                x[len(names) * g + j] = (float(self.start[name]) - lo) / (hi - lo)
        return x

    # ------------------------------------------------------------------ decoding
    def _scale(self, name: str, g: float) -> float:
        lo, hi = self.ranges[name]
        return round(float(lo + (hi - lo) * float(np.clip(g, 0.0, 1.0))), 6)

    def _param_values(self, genes: np.ndarray) -> dict[str, Any]:
        """{(model index, param) -> [one value per group]} or {'t': [...]} for slerp."""
        g = self.layer_groups
        if self.method == "slerp":
            return {"t": [self._scale("t", v) for v in genes[:g]]}
        out: dict[Any, list[float]] = {}
        i = 0
        for m in range(len(self.models)):
            for p in self.model_params:
                out[(m, p)] = [self._scale(p, v) for v in genes[i : i + g]]
                i += g
        for p in self.global_params:
            out[p] = [self._scale(p, v) for v in genes[i : i + g]]
            i += g
        for filt, p, m in self._filter_genes():
            out[(filt, p, m)] = self._scale(p, genes[i])
            i += 1
        return out

    def _filtered(self, values: dict, p: str, m: int | None) -> Any:
        """Parameter ``p`` (of model ``m``, or global): a filter list when some filter evolves it, else its groups."""
        default = self._value(values[(m, p)] if m is not None else values[p])
        entries = [{"filter": f, "value": values[(f, p, m)]} for f, params in self.filters.items() if p in params]
        return entries + [{"value": default}] if entries else default

    def _model_entry(self, m: int, entry: dict[str, Any]) -> dict[str, Any]:
        """A model's entry with its own statistics (fisher / regmean), if it has any."""
        own = self.model_statistics[m] if m < len(self.model_statistics) else None
        return {**entry, "statistics": dict(own)} if own is not None else entry

    @staticmethod
    def _value(values: list[float]) -> float | list[float]:
        return values[0] if len(values) == 1 else values

    def _slot_layers(self, genes: np.ndarray) -> list[tuple[int, int, float]]:
        """(model index into layer_models, layer, hop scale) per slot."""
        m = len(self.layer_models) if self.kind == "dataflow" else 0
        per = m + 1 + (1 if self.kind == "dataflow" else 0)
        out = []
        for j in range(self._n_slots()):
            g = genes[j * per : (j + 1) * per]
            model = int(np.argmax(g[:m])) if m else 0
            shift = int(round((float(np.clip(g[m], 0, 1)) - 0.5) * 2 * self.layer_spread))
            base = min(j, self.num_layers - 1) if self.num_layers else j
            layer = int(np.clip(base + shift, 0, max(self.num_layers - 1, 0)))
            scale = self._scale("scale", g[m + 1]) if self.kind == "dataflow" else 1.0
            out.append((model, layer, scale))
        return out

    def config(self, x: np.ndarray) -> dict[str, Any]:
        """The `graft merge` config (dict) of candidate ``x``."""
        x = np.asarray(x, dtype=float)
        if x.shape != (self.dim,):
            raise ConfigError(f"candidate has {x.shape} genes, the space has {self.dim}")
        cfg: dict[str, Any] = {"dtype": self.dtype}
        if self.kind == "parameters":
            cfg.update(self._parameters_config(self._param_values(x)))
        elif self.kind == "dataflow":
            cfg.update(self._dataflow_config(self._slot_layers(x)))
        else:
            values = self._param_values(x[: self._param_dim()])
            cfg.update(self._combined_config(values, self._slot_layers(x[self._param_dim():])))
        if self.statistics and self.method in _DATA_AWARE and self.kind != "dataflow":
            cfg["statistics"] = dict(self.statistics)
        return cfg

    def _parameters_config(self, values: dict) -> dict[str, Any]:
        cfg: dict[str, Any] = {"merge_method": self.method}
        if self.method == "slerp":
            cfg["models"] = [{"model": self.base_model}, {"model": self.models[0]}]
            cfg["base_model"] = self.base_model
            cfg["parameters"] = {"t": self._value(values["t"])}
            return cfg
        cfg["models"] = [
            self._model_entry(m, {"model": path, "parameters": {p: self._filtered(values, p, m) for p in self.model_params}})
            for m, path in enumerate(self.models)
        ]
        if self.global_params:
            cfg["parameters"] = {p: self._filtered(values, p, None) for p in self.global_params}
        if self.base_model and self.method in _USES_BASE:
            cfg["base_model"] = self.base_model
        if self.method == "linear":
            cfg["parameters"] = {"normalize": True}
        return cfg

    def _dataflow_config(self, slots: list[tuple[int, int, float]]) -> dict[str, Any]:
        models = self.layer_models
        out_slices = []
        prev = None
        for model, layer, scale in slots:
            source: dict[str, Any] = {"model": models[model], "layer_range": [layer, layer + 1]}
            if prev is not None and model != prev:
                source["parameters"] = {"scale": scale}
            out_slices.append({"sources": [source]})
            prev = model
        return {"merge_method": "passthrough", "slices": out_slices}

    def _combined_config(self, values: dict, slots: list[tuple[int, int, float]]) -> dict[str, Any]:
        n = len(slots)
        out_slices = []
        for j, (_, layer, _) in enumerate(slots):
            group = min(j * self.layer_groups // max(n, 1), self.layer_groups - 1)
            if self.method == "slerp":
                sources = [{"model": self.base_model, "layer_range": [layer, layer + 1]},
                           {"model": self.models[0], "layer_range": [layer, layer + 1]}]
                out_slices.append({"sources": sources, "parameters": {"t": values["t"][group]}})
                continue
            sources = [
                {"model": path, "layer_range": [layer, layer + 1],
                 "parameters": {p: values[(m, p)][group] for p in self.model_params}}
                for m, path in enumerate(self.models)
            ]
            if self.base_model and self.base_model not in self.models and self.method in _USES_BASE:
                sources.append({"model": self.base_model, "layer_range": [layer, layer + 1]})
            out_slice: dict[str, Any] = {"sources": sources}
            if self.global_params:
                out_slice["parameters"] = {p: values[p][group] for p in self.global_params}
            out_slices.append(out_slice)
        cfg: dict[str, Any] = {"merge_method": self.method, "slices": out_slices}
        if self.base_model and self.method in _USES_BASE:
            cfg["base_model"] = self.base_model
        if self.method == "linear":
            cfg["parameters"] = {"normalize": True}
        return cfg


def validate_space(space: SearchSpace) -> SearchSpace:
    """Check models, layers and a sample candidate against the inputs' headers (no tensor read).

    Raises a GraftError naming what is missing; fills ``space.num_layers``.
    """
    from graftkit.io import Checkpoint
    from graftkit.merge.config import load_config
    from graftkit.merge.plan import build_plan

    problems = []
    layers = {}
    for path in dict.fromkeys(space.layer_models):
        p = Path(path)
        if not p.is_absolute() and space.config_dir is not None and not p.exists():
            p = space.config_dir / p
        if not p.exists():
            problems.append(f"model {path} does not exist (looked in the working directory"
                            f"{' and ' + str(space.config_dir) if space.config_dir else ''})")
            continue
        try:
            layers[path] = Checkpoint.open(p).architecture.num_layers or 0
        except GraftError as exc:
            problems.append(f"model {path}: {exc}")
    if problems:
        raise ValidationError(problems, source="evolve space")
    counts = set(layers.values())
    space.num_layers = min(counts) if counts else 0
    if space.kind != "parameters":
        if space.num_layers == 0:
            raise ValidationError(["the data-flow space needs numbered layers, none found in " + ", ".join(layers)],
                                  source="evolve space")
        if len(counts) > 1:
            raise ValidationError([f"models have different layer counts {sorted(counts)}: "
                                   "layer k must exist in every model"], source="evolve space")
        if space.slots is not None and (space.slots < 1 or space.slots > 4 * space.num_layers):
            raise ValidationError([f"slots={space.slots} is outside 1..{4 * space.num_layers} "
                                   f"(models have {space.num_layers} layers)"], source="evolve space")
    if space.layer_groups > max(space.num_layers, 1):
        raise ValidationError([f"layer_groups={space.layer_groups} exceeds the {space.num_layers} layers of the models"],
                              source="evolve space")
    for x in (space.centre(), np.zeros(space.dim), np.ones(space.dim)):
        build_plan(load_config(space.config(x)), config_dir=space.config_dir, verify=False)
    return space
