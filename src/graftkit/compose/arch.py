"""Where a model keeps its parts, found from its module tree rather than a table per model.

An HF model is a base model (``model.base_model``) plus, usually, one head module. Inside
the base model the *layer stack* is the ``nn.ModuleList`` of identical blocks with the most
parameters (T5 has two: the encoder's and the decoder's); the *final norm* is the first
norm module registered after that stack; the *embeddings* are whatever the model's own
forward computes before it calls the first layer (the runtime captures them, so position
embeddings, scaling and embedding norms come for free). The family follows from the
config's ``is_encoder_decoder``, the main input (``pixel_values`` means vision) and whether
the model type has a masked-LM class (encoders) or only a causal-LM class (decoders).

Structure is read on the ``meta`` device from the config alone, so an expert whose layers
cannot be located, or a layer index out of range, fails before any weight is read.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from graftkit.errors import CompositionError

FAMILIES = ("decoder-only", "encoder-only", "encoder-decoder", "vision")
_HIDDEN_KEYS = ("hidden_size", "n_embd", "d_model", "dim", "embed_dim")


@dataclass(frozen=True)
class ArchInfo:
    """Dotted module paths (relative to the whole model) and sizes of one architecture."""

    model_type: str
    family: str
    hidden_size: int
    num_layers: int
    base_path: str  # the base model ("" when the model is the base model)
    layers_path: str  # the layer stack the runtime uses (the encoder's for encoder-decoders)
    final_norm_path: str | None
    head_path: str | None  # LM / task head (None for a bare base model)
    embeddings_path: str | None  # the token (or patch) embedding module
    stacks: dict[str, str] = field(default_factory=dict)  # every layer stack: name -> path
    main_input: str = "input_ids"

    @property
    def causal(self) -> bool:
        return self.family == "decoder-only"


def get_module(model: nn.Module, path: str | None) -> nn.Module | None:
    """The submodule at dotted ``path`` ("" is the model itself, None gives None)."""
    if path is None:
        return None
    return model.get_submodule(path) if path else model


def _is_norm(module: nn.Module) -> bool:
    name = type(module).__name__
    return isinstance(module, (nn.LayerNorm, nn.GroupNorm)) or name.endswith(("Norm", "LayerNorm", "RMSNorm"))


def _n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _layer_stacks(root: nn.Module, prefix: str) -> list[tuple[str, nn.ModuleList]]:
    """Every ModuleList under ``root`` whose children are blocks of one class holding parameters."""
    found = []
    for name, module in root.named_modules():
        if not isinstance(module, nn.ModuleList) or len(module) == 0:
            continue
        kinds = {type(child) for child in module}
        if len(kinds) == 1 and _n_params(module[0]) > 0 and not _is_norm(module[0]) and len(list(module[0].children())) > 0:
            found.append((_join(prefix, name), module))
    return found


def _join(*parts: str) -> str:
    return ".".join(p for p in parts if p)


def _family(model: nn.Module) -> str:
    config = model.config
    if getattr(config, "is_encoder_decoder", False):
        return "encoder-decoder"
    if getattr(model, "main_input_name", "input_ids") == "pixel_values":
        return "vision"
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES, MODEL_FOR_MASKED_LM_MAPPING_NAMES

    model_type = getattr(config, "model_type", "")
    if model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        return "encoder-only"
    if model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES or type(model).__name__.endswith("ForCausalLM"):
        return "decoder-only"
    return "encoder-only"


def _hidden_size(config: Any, label: str) -> int:
    for key in _HIDDEN_KEYS:
        value = getattr(config, key, None)
        if isinstance(value, int):
            return value
    raise CompositionError(f"{label}: the config names no hidden size (looked for {', '.join(_HIDDEN_KEYS)})",
                           hint="use a transformers model whose config has hidden_size")


def _final_norm(base: nn.Module, base_path: str, layers_rel: str) -> str | None:
    """The first norm registered after the layer stack, walking the stack's ancestors outward."""
    parts = layers_rel.split(".") if layers_rel else []
    for depth in range(len(parts), 0, -1):
        parent_rel = ".".join(parts[: depth - 1])
        parent = base.get_submodule(parent_rel) if parent_rel else base
        after = False
        for child_name, child in parent.named_children():
            if child_name == parts[depth - 1]:
                after = True
                continue
            if after and _is_norm(child):
                return _join(base_path, parent_rel, child_name)
    return None


def _head(model: nn.Module, base_path: str) -> str | None:
    """The one top-level child outside the base model that holds parameters (lm_head, cls, classifier)."""
    if not base_path:
        return None
    heads = [n for n, c in model.named_children() if n != base_path.split(".")[0] and _n_params(c) > 0]
    return heads[0] if len(heads) == 1 else None


def _path_of(model: nn.Module, getter: str) -> str | None:
    try:
        target = getattr(model, getter)()
    except (NotImplementedError, AttributeError):
        return None
    if target is None:
        return None
    return next((name for name, module in model.named_modules() if module is target), None)


def _embeddings(model: nn.Module) -> str | None:
    return _path_of(model, "get_input_embeddings")




def describe(model: nn.Module, label: str | None = None) -> ArchInfo:
    """The ArchInfo of an HF model (works on ``meta`` tensors); CompositionError when layers cannot be located."""
    label = label or type(model).__name__
    config = getattr(model, "config", None)
    if config is None:
        raise CompositionError(f"{label} is a {type(model).__name__}, not a transformers model (it has no .config)",
                               hint="pass an HF model, a model folder or a graftkit zoo name")
    base = getattr(model, "base_model", model)
    base_path = next((n for n, m in model.named_modules() if m is base), "")
    family = _family(model)
    stacks: dict[str, str] = {}
    if family == "encoder-decoder":
        for side in ("encoder", "decoder"):
            getter = getattr(model, f"get_{side}", None)
            part = getter() if getter else None
            if part is None:
                continue
            part_path = next(n for n, m in model.named_modules() if m is part)
            candidates = _layer_stacks(part, part_path)
            if candidates:
                stacks[side] = max(candidates, key=lambda c: _n_params(c[1]))[0]
    else:
        candidates = _layer_stacks(base, base_path)
        if candidates:
            stacks["layers"] = max(candidates, key=lambda c: _n_params(c[1]))[0]
    if not stacks:
        raise CompositionError(
            f"{label} ({getattr(config, 'model_type', '?')}): no layer stack found (no ModuleList of identical "
            f"blocks in {type(base).__name__})",
            hint="use a model whose blocks sit in an nn.ModuleList (every HF transformer does) or name its layers explicitly",
        )
    layers_path = stacks.get("layers") or stacks["encoder"]
    layers = model.get_submodule(layers_path)
    rel = layers_path[len(base_path) + 1 :] if base_path else layers_path
    if family == "encoder-decoder":
        owner_path, stack_name = layers_path.rsplit(".", 1)
        norm = _final_norm(model.get_submodule(owner_path), owner_path, stack_name)
    else:
        norm = _final_norm(base, base_path, rel)
    return ArchInfo(
        model_type=str(getattr(config, "model_type", type(model).__name__)),
        family=family,
        hidden_size=_hidden_size(config, label),
        num_layers=len(layers),
        base_path=base_path,
        layers_path=layers_path,
        final_norm_path=norm,
        head_path=_head(model, base_path) or _path_of(model, "get_output_embeddings"),
        embeddings_path=_embeddings(model),
        stacks=stacks,
        main_input=getattr(model, "main_input_name", "input_ids"),
    )


_CACHE: dict[str, ArchInfo] = {}


def _config_key(config: Any, cls_name: str) -> str:
    text = json.dumps(config.to_dict(), sort_keys=True, default=str)
    return hashlib.sha256(f"{cls_name}\n{text}".encode()).hexdigest()


def describe_config(config: Any, model_class: type | None = None, label: str | None = None) -> ArchInfo:
    """ArchInfo from a config alone: the model is built on ``meta`` (no weights read, no memory), then cached."""
    import torch
    import transformers

    if model_class is None:
        names = [a for a in (getattr(config, "architectures", None) or []) if hasattr(transformers, a)]
        model_class = getattr(transformers, names[0]) if names else transformers.AutoModel
    key = _config_key(config, getattr(model_class, "__name__", str(model_class)))
    if key not in _CACHE:
        with torch.device("meta"):
            try:
                model = (model_class.from_config(config) if hasattr(model_class, "from_config")
                         else model_class._from_config(config))
            except (ValueError, KeyError, TypeError) as exc:
                raise CompositionError(f"{label or config.model_type}: transformers cannot build {model_class.__name__} "
                                       f"from its config: {exc}", hint="check the model's config.json") from None
        _CACHE[key] = describe(model, label)
    return _CACHE[key]
