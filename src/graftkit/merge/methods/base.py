"""What a merge method is: a parameter schema, an input contract and a pure tensor function.

The engine (``graftkit.merge.execute``) resolves parameters per tensor and calls
``MergeMethod.merge``; the method never reads files or configs. Keeping the schema
beside the function lets the config validator check names, types and defaults
before any tensor is read.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from graftkit.errors import ConfigError, MergeError, ShapeMismatchError
from graftkit.merge.methods.noise import DropNoise


class _Required:
    """Marker default: the parameter has no default and must be given."""

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


@dataclass(frozen=True)
class ParamSpec:
    """One parameter of a method: its name, scalar type, default and scope.

    ``per_model`` parameters take one value per input model (mergekit's
    ``PerInput``/``PerNonBase``); ``non_base`` says the base model takes none.
    ``choices`` restricts string parameters; ``optional`` lets ``None`` through.
    """

    name: str
    type: type
    default: Any = REQUIRED
    per_model: bool = False
    non_base: bool = False
    description: str = ""
    choices: tuple[str, ...] | None = None
    optional: bool = False

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def validate(self, value: Any, *, where: str = "") -> Any:
        """Coerce ``value`` to this parameter's type or raise ConfigError naming it."""
        label = f"parameter '{self.name}'" + (f" ({where})" if where else "")
        if value is None:
            if self.optional:
                return None
            raise ConfigError(f"{label} must not be null")
        if self.type is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, (int, float)) and value in (0, 1):
                return bool(value)
            if isinstance(value, str) and value.lower() in ("true", "false"):
                return value.lower() == "true"
            raise ConfigError(f"{label} must be true or false, got {value!r}")
        if self.type in (int, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                if isinstance(value, torch.Tensor) and value.numel() == 1:
                    value = value.item()
                elif isinstance(value, str) and _is_number(value):
                    value = float(value)
                else:
                    raise ConfigError(f"{label} must be a number, got {value!r}")
            if self.type is int and float(value) != int(value):
                raise ConfigError(f"{label} must be an integer, got {value!r}")
            return self.type(value)
        if self.type is str:
            text = str(value)
            if self.choices is not None and text not in self.choices:
                raise ConfigError(
                    f"{label} must be one of {', '.join(self.choices)}, got {value!r}"
                )
            return text
        return value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def suggest(name: str, candidates: Sequence[str]) -> str:
    """A ' (did you mean X?)' suffix for a misspelled name, or ''."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


MergeFunction = Callable[..., torch.Tensor]


@dataclass(frozen=True)
class MergeMethod:
    """A registered merge method.

    ``min_models``/``max_models`` count every input tensor, the base included;
    ``min_non_base``/``max_non_base`` add limits on the others (nuslerp needs
    exactly two besides an optional base). ``base`` is "required", "optional" or
    "ignored" (the base, if any, is treated as an ordinary input).
    ``missing_tensor`` tells the engine what to do when some model lacks a tensor:
    "error", "passthrough" (a single present input is copied), "base" (fall back to
    the base's tensor). ``statistics`` names extra per-model inputs the engine must
    supply through ``graftkit.merge.statistics`` (e.g. ``("fisher",)``).
    """

    name: str
    function: MergeFunction
    reference: str = ""
    description: str = ""
    base: str = "ignored"
    min_models: int = 1
    max_models: int | None = None
    min_non_base: int = 0
    max_non_base: int | None = None
    global_params: dict[str, ParamSpec] = field(default_factory=dict)
    model_params: dict[str, ParamSpec] = field(default_factory=dict)
    random: bool = False
    # "masks": random drop masks from an index-addressed DropNoise (block-wise equal);
    # "generator": anything else random, from a per-tensor torch.Generator
    noise: str = "generator"
    missing_tensor: str = "error"
    statistics: tuple[str, ...] = ()
    mergekit: bool = True

    @property
    def requires_base(self) -> bool:
        return self.base == "required"

    @property
    def uses_base(self) -> bool:
        return self.base in ("required", "optional")

    # ---- validation -------------------------------------------------------------
    def check_inputs(self, count: int, base_index: int | None, *, where: str = "") -> None:
        """Raise ConfigError when ``count`` inputs with this base do not fit the contract."""
        label = f" for {where}" if where else ""
        if base_index is not None and not 0 <= base_index < count:
            raise ConfigError(f"{self.name}: base_index {base_index} out of range{label}")
        if self.requires_base and base_index is None:
            raise ConfigError(
                f"merge method '{self.name}' needs a base model{label}",
                hint="set base_model in the config",
            )
        has_base = base_index is not None and self.uses_base
        non_base = count - int(has_base)
        if count < self.min_models or (self.max_models is not None and count > self.max_models):
            bound = (
                f"exactly {self.min_models}"
                if self.max_models == self.min_models
                else f"at least {self.min_models}"
                + (f" and at most {self.max_models}" if self.max_models is not None else "")
            )
            raise ConfigError(
                f"merge method '{self.name}' takes {bound} models (base included), got {count}{label}"
            )
        if non_base < self.min_non_base or (
            self.max_non_base is not None and non_base > self.max_non_base
        ):
            bound = (
                f"exactly {self.min_non_base}"
                if self.max_non_base == self.min_non_base
                else f"at least {self.min_non_base}"
            )
            raise ConfigError(
                f"merge method '{self.name}' takes {bound} models besides the base, got {non_base}{label}"
            )

    def resolve_params(self, params: Mapping[str, Any] | None, *, where: str = "") -> dict[str, Any]:
        """Global parameters with defaults filled in and types checked."""
        params = dict(params or {})
        unknown = [k for k in params if k not in self.global_params]
        for key in unknown:
            if key in self.model_params:
                continue  # a per-model parameter given globally: broadcast by resolve_model_params
            raise ConfigError(
                f"merge method '{self.name}' has no parameter '{key}'"
                + suggest(key, [*self.global_params, *self.model_params])
                + (f" ({where})" if where else "")
            )
        out: dict[str, Any] = {}
        for name, spec in self.global_params.items():
            if name in params:
                out[name] = spec.validate(params[name], where=where)
            elif spec.required:
                raise ConfigError(
                    f"merge method '{self.name}' needs parameter '{name}'"
                    + (f" ({where})" if where else "")
                )
            else:
                out[name] = spec.default
        return out

    def resolve_model_params(
        self,
        model_params: Sequence[Mapping[str, Any]] | None,
        count: int,
        base_index: int | None,
        params: Mapping[str, Any] | None = None,
        *,
        where: str = "",
    ) -> list[dict[str, Any]]:
        """Per-model parameters, one dict per input, defaults filled, types checked.

        A per-model parameter missing for a model falls back to the global value of
        the same name (mergekit lets ``weight`` sit under the global ``parameters``)
        and then to its default. Keys named in ``self.statistics`` (``fisher``,
        ``gram``...) pass through untouched; a global parameter given per model is
        ignored there (mergekit's precedence resolves it globally).
        """
        supplied = list(model_params) if model_params is not None else [{}] * count
        if len(supplied) != count:
            raise ConfigError(
                f"{self.name}: got {len(supplied)} model parameter sets for {count} tensors"
                + (f" ({where})" if where else "")
            )
        globals_ = dict(params or {})
        resolved: list[dict[str, Any]] = []
        for index, given in enumerate(supplied):
            is_base = index == base_index and self.uses_base
            entry: dict[str, Any] = {}
            for key, value in given.items():
                if key in self.statistics:
                    entry[key] = value
                elif key not in self.model_params and key not in self.global_params:
                    raise ConfigError(
                        f"merge method '{self.name}' has no per-model parameter '{key}'"
                        + suggest(key, list(self.model_params))
                        + (f" ({where})" if where else "")
                    )
            for name, spec in self.model_params.items():
                if is_base and spec.non_base:
                    continue
                if name in given and given[name] is not None:
                    entry[name] = spec.validate(given[name], where=where)
                elif name in globals_ and globals_[name] is not None:
                    entry[name] = spec.validate(globals_[name], where=where)
                elif spec.required:
                    raise ConfigError(
                        f"merge method '{self.name}' needs '{name}' for model {index}"
                        + (f" ({where})" if where else ""),
                        hint=f"give each model a '{name}' under its parameters",
                    )
                else:
                    entry[name] = spec.default
            resolved.append(entry)
        return resolved

    # ---- the call the engine makes ----------------------------------------------
    def merge(
        self,
        tensors: Sequence[torch.Tensor],
        *,
        base_index: int | None = None,
        model_params: Sequence[Mapping[str, Any]] | None = None,
        params: Mapping[str, Any] | None = None,
        tensor_name: str = "",
        generator: torch.Generator | DropNoise | None = None,
        seed: int = 0,
        out_dtype: torch.dtype | None = None,
    ) -> torch.Tensor:
        """Merge the inputs of one output tensor.

        Inputs are upcast to float32 (float64 stays float64) and the result is cast
        to ``out_dtype`` or else the first input's dtype. Random methods draw from
        ``generator``; without one they seed their own stream from ``seed`` and
        ``tensor_name`` (``DropNoise.for_tensor`` for drop masks, else
        ``tensor_generator``), so a rerun gives the same output.
        """
        tensors = list(tensors)
        if not tensors:
            raise MergeError(f"{self.name}: no input tensors for '{tensor_name}'")
        self.check_inputs(len(tensors), base_index, where=tensor_name)
        first = tensors[0]
        for index, tensor in enumerate(tensors[1:], start=1):
            if tensor.shape != first.shape:
                raise ShapeMismatchError(
                    f"{self.name}: tensor '{tensor_name}' has shape {tuple(first.shape)} in "
                    f"model 0 but {tuple(tensor.shape)} in model {index}",
                    hint="align vocabularies or pick models of one architecture",
                )
        resolved = self.resolve_params(params, where=tensor_name)
        per_model = self.resolve_model_params(
            model_params, len(tensors), base_index, params, where=tensor_name
        )
        if not first.is_floating_point():
            if all(torch.equal(t, first) for t in tensors[1:]):
                return first.clone()
            raise MergeError(
                f"{self.name}: non-floating tensor '{tensor_name}' differs between models",
                hint="integer buffers can only be copied when every model agrees",
            )
        compute = torch.float64 if first.dtype == torch.float64 else torch.float32
        work = [t.to(compute) for t in tensors]
        if self.random and generator is None:
            if self.noise == "masks":
                generator = DropNoise.for_tensor(seed, tensor_name)
            else:
                generator = tensor_generator(seed, tensor_name, first.device)
        base = base_index if self.uses_base else None
        out = self.function(
            work,
            base_index=base,
            model_params=per_model,
            generator=generator,
            tensor_name=tensor_name,
            **resolved,
        )
        return out.to(out_dtype or first.dtype)


def tensor_generator(seed: int, tensor_name: str, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator seeded from a global seed and the tensor's name.

    Each tensor gets its own stream, so outputs do not depend on the order in
    which the engine visits tensors, and the same seed always gives the same mask.
    """
    digest = hashlib.sha256(f"{seed}:{tensor_name}".encode()).digest()
    generator = torch.Generator(device=device)
    generator.manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))
    return generator


def split_base(
    tensors: Sequence[torch.Tensor], base_index: int | None
) -> tuple[torch.Tensor | None, list[int]]:
    """The base tensor (or None) and the indices of the other inputs."""
    others = [i for i in range(len(tensors)) if i != base_index]
    return (tensors[base_index] if base_index is not None else None), others
