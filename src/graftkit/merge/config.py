"""The merge configuration: mergekit's YAML schema, accepted unchanged.

A config names its inputs in exactly one of three ways: ``models`` (whole models),
``slices`` (layer ranges stacked into the output) or ``modules`` (several of those, one
per module of a multi-module model). Parameters are settings resolved per tensor (see
``graftkit.merge.parameters``). Model references are ``path``, ``path@revision`` or
``path+lora_path``; unlike mergekit, a relative path is a path (see ``references``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_serializer, model_validator

from graftkit.errors import ConfigError

Scalar = Union[bool, int, float, str]
ScalarOrGradient = Union[Scalar, list[Scalar]]


class ModelPath(BaseModel):
    """A model folder (or hub-style name) with an optional revision (``path@rev``)."""

    model_config = ConfigDict(frozen=True)
    path: str
    revision: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value.count("@") > 1:
                raise ValueError(f"model path {value!r} has more than one '@'")
            path, _, rev = value.partition("@")
            return {"path": path, "revision": rev or None}
        return value

    def __str__(self) -> str:
        return f"{self.path}@{self.revision}" if self.revision else self.path


class ModelRef(BaseModel):
    """A model, optionally with a LoRA adapter applied on top (``path+lora``)."""

    model_config = ConfigDict(frozen=True)
    model: ModelPath
    lora: ModelPath | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        if isinstance(value, str):
            parts = value.split("+")
            if len(parts) > 2:
                raise ValueError(f"model reference {value!r} has more than one '+'")
            return {"model": parts[0], "lora": parts[1] if len(parts) == 2 else None}
        return value

    @model_serializer
    def _to_string(self) -> str:
        return str(self)

    def __str__(self) -> str:
        return f"{self.model}+{self.lora}" if self.lora else str(self.model)


class ConditionalParameter(BaseModel):
    """One entry of a filter list: ``value`` applies to tensors whose name contains ``filter``."""

    value: ScalarOrGradient
    filter: str | None = None


ParameterSetting = Union[ConditionalParameter, list[ConditionalParameter], ScalarOrGradient]
Parameters = dict[str, ParameterSetting]


class InputModel(BaseModel):
    model: ModelRef
    parameters: Parameters | None = None
    # graftkit extension: this model's own calibration data for fisher / regmean
    statistics: "StatisticsSettings | None" = None


class InputSlice(BaseModel):
    model: ModelRef
    layer_range: tuple[int, int]
    parameters: Parameters | None = None


class OutputSlice(BaseModel):
    sources: list[InputSlice]
    base_model: ModelRef | None = None
    residual_weight: float | None = None
    parameters: Parameters | None = None


class OutputModule(BaseModel):
    slices: list[OutputSlice] | None = None
    models: list[InputModel] | None = None
    parameters: Parameters | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> "OutputModule":
        if bool(self.slices) == bool(self.models):
            raise ValueError("a module needs exactly one of 'slices' or 'models'")
        return self


class ZeroEmbedding(BaseModel):
    kind: Literal["zero"]


class ModelTokenEmbedding(BaseModel):
    kind: Literal["model_token"]
    model: ModelRef
    token_id: int | None = None
    token: str | None = None

    @model_validator(mode="after")
    def _one_of(self) -> "ModelTokenEmbedding":
        if (self.token_id is None) == (self.token is None):
            raise ValueError("give exactly one of token_id or token")
        return self


class TokenEmbedding(BaseModel):
    """Where the embedding of one token of the output vocabulary comes from."""

    source: Union[ZeroEmbedding, ModelTokenEmbedding, ModelRef, None] = None
    force: bool = False


class TokenizerSettings(BaseModel):
    source: Union[Literal["union"], Literal["base"], ModelRef] = "union"
    tokens: dict[str, TokenEmbedding] | None = None
    pad_to_multiple_of: int | None = None


class StatisticsSettings(BaseModel):
    """graftkit extension for data-aware methods (fisher, regmean): the data their statistics come from."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["fisher", "gram"] | None = None  # implied by the method when left out
    dataset: str | None = None  # a graftkit.data dataset name
    texts: list[str] | None = None  # or your own texts
    split: str = "train"
    examples: int = 256
    seed: int = 0
    max_length: int = 128
    batch_size: int = 16

    @model_validator(mode="after")
    def _one_source(self) -> "StatisticsSettings":
        if (self.dataset is None) == (self.texts is None):
            raise ValueError("statistics needs exactly one of 'dataset' or 'texts'")
        return self


class MergeConfig(BaseModel):
    """A whole merge, as written in mergekit's YAML."""

    model_config = ConfigDict(extra="forbid")

    merge_method: str
    models: list[InputModel] | None = None
    slices: list[OutputSlice] | None = None
    modules: dict[str, OutputModule] | None = None
    base_model: ModelRef | None = None
    dtype: str | None = None
    out_dtype: str | None = None
    tokenizer_source: Union[Literal["union"], Literal["base"], ModelRef, None] = None
    tokenizer: TokenizerSettings | None = None
    chat_template: str | None = None
    parameters: Parameters | None = None
    name: str | None = Field(default=None, description="optional name (mergekit-multi)")
    statistics: StatisticsSettings | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> "MergeConfig":
        given = [k for k in ("models", "slices", "modules") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("exactly one of 'models', 'slices' or 'modules' must be given")
        if self.tokenizer_source is not None and self.tokenizer is not None:
            raise ValueError("give 'tokenizer_source' or 'tokenizer', not both")
        return self

    def tokenizer_choice(self) -> Union[str, ModelRef, None]:
        """The tokenizer source, whichever of the two spellings set it."""
        if self.tokenizer is not None:
            return self.tokenizer.source
        return self.tokenizer_source

    def referenced_models(self) -> list[ModelRef]:
        """Every model the config names, in first-mention order, without repeats."""
        seen: list[ModelRef] = []

        def add(ref: ModelRef | None) -> None:
            if ref is not None and ref not in seen:
                seen.append(ref)

        for module in self.iter_modules():
            for entry in module.models or []:
                add(entry.model)
            for out_slice in module.slices or []:
                for src in out_slice.sources:
                    add(src.model)
                add(out_slice.base_model)
        add(self.base_model)
        return seen

    def iter_modules(self) -> list[OutputModule]:
        """The config as a list of modules (``models`` and ``slices`` are one module)."""
        if self.modules:
            return list(self.modules.values())
        return [OutputModule(models=self.models, slices=self.slices)]

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(exclude_none=True, mode="json"), sort_keys=False)


def load_config(source: str | Path | dict) -> MergeConfig:
    """Parse a config from a YAML file, YAML text or a dict; a ConfigError lists every schema problem."""
    from pydantic import ValidationError as PydanticError

    from graftkit.errors import ValidationError

    where = None
    if isinstance(source, dict):
        data = source
    else:
        text = str(source)
        if isinstance(source, Path) or ("\n" not in text and text.endswith((".yaml", ".yml"))):
            path = Path(source)
            if not path.is_file():
                raise ConfigError(f"config file {path} not found", hint="check the path")
            where = str(path)
            text = path.read_text(encoding="utf-8")
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{where or 'config'} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'} must be a YAML mapping with at least 'merge_method'")
    try:
        return MergeConfig.model_validate(data)
    except PydanticError as exc:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith(("function-", "union[")))
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = _unknown_key_message(str(err["loc"][-1]))
            problems.append(f"{loc}: {msg}" if loc else msg)
        raise ValidationError(_dedupe(problems), source=where) from None


_TOP_KEYS = [
    "merge_method", "models", "slices", "modules", "base_model", "dtype", "out_dtype",
    "tokenizer_source", "tokenizer", "chat_template", "parameters", "name", "statistics",
]


def _unknown_key_message(key: str) -> str:
    import difflib

    close = difflib.get_close_matches(key, _TOP_KEYS, n=1)
    return f"unknown key {key!r}" + (f" (did you mean {close[0]!r}?)" if close else "")


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


InputModel.model_rebuild()
