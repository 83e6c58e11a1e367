"""Transformers models without weights: built from a config on the meta device, with
example inputs of the right kind (token ids, pixels, encoder-decoder pairs).

Why: a signature must cost seconds and no memory, so the model that is traced never
holds a real tensor; only shapes and dtypes flow through it.
"""

from __future__ import annotations

from typing import Any

import torch

from graftkit.errors import ArchitectureError, ShapeMismatchError

# Canonical trace sizes: (batch, sequence). Fixed for every model so that signatures of
# different models are comparable; two sizes so that batch and sequence dims are symbolic.
TRACE_SIZES: tuple[tuple[int, int], tuple[int, int]] = ((2, 5), (3, 7))


def is_hf_model(model: torch.nn.Module) -> bool:
    return hasattr(model, "config") and hasattr(model.config, "model_type")


def meta_model(config: Any, class_name: str | None = None) -> torch.nn.Module:
    """Build a transformers model from ``config`` on the meta device (no weights), eval mode.

    ``class_name`` picks the class (``LlamaForCausalLM``); default: the config's first
    ``architectures`` entry, else ``AutoModel``.
    """
    import transformers

    if class_name is None:
        names = list(getattr(config, "architectures", None) or [])
        class_name = names[0] if names else "AutoModel"
    cls = getattr(transformers, class_name, None)
    if cls is None:
        raise ArchitectureError(
            f"transformers has no class {class_name!r} (from config.architectures)",
            hint="upgrade transformers or set architectures in config.json",
        )
    config = _eager_config(config)
    with torch.device("meta"):
        model = cls._from_config(config) if hasattr(cls, "_from_config") else cls.from_config(config)
    return model.eval()


def _eager_config(config: Any) -> Any:
    """A private copy of the config without cache (the attention implementation is left to
    transformers' default, as ``from_pretrained`` would pick it)."""
    config = config.__class__.from_dict(config.to_dict())
    config.use_cache = False
    return config


def _main_input_name(model: torch.nn.Module) -> str:
    return getattr(model, "main_input_name", "input_ids")


def hf_example_inputs(model: torch.nn.Module, batch: int, seq: int) -> dict[str, torch.Tensor]:
    """Inputs for a transformers model at (batch, seq), on the meta device (as traced)."""
    config = model.config
    device = torch.device("meta")
    name = _main_input_name(model)
    if name == "pixel_values":
        size = getattr(config, "image_size", 224)
        size = size if isinstance(size, (tuple, list)) else (size, size)
        channels = getattr(config, "num_channels", 3)
        return {"pixel_values": torch.zeros(batch, channels, *size, device=device)}
    inputs = {name: torch.zeros(batch, seq, dtype=torch.long, device=device)}
    if getattr(config, "is_encoder_decoder", False):
        inputs["decoder_input_ids"] = torch.zeros(batch, seq, dtype=torch.long, device=device)
    return inputs


def hf_call_kwargs(model: torch.nn.Module) -> dict[str, Any]:
    """Keyword arguments that keep the forward pass to plain tensors (no cache objects)."""
    return {"use_cache": False, "return_dict": True}


def check_hf_inputs(model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> None:
    """Report example inputs of the wrong kind or shape before any tracing."""
    config = model.config
    for key, value in inputs.items():
        if not isinstance(value, torch.Tensor):
            continue
        if key.endswith("input_ids"):
            if value.dim() != 2 or value.dtype not in (torch.int64, torch.int32):
                raise ShapeMismatchError(
                    f"example input {key!r} has shape {tuple(value.shape)} and dtype {value.dtype}; "
                    f"{type(model).__name__} expects integer token ids of shape (batch, sequence)",
                    hint="pass torch.zeros(batch, seq, dtype=torch.long)",
                )
        if key == "pixel_values":
            size = getattr(config, "image_size", None)
            size = size if isinstance(size, (tuple, list)) else (size, size)
            expected = (getattr(config, "num_channels", 3), *size)
            if value.dim() != 4 or tuple(value.shape[1:]) != tuple(expected):
                raise ShapeMismatchError(
                    f"example input 'pixel_values' has shape {tuple(value.shape)}; "
                    f"{type(model).__name__} expects (batch, {', '.join(map(str, expected))})",
                    hint="resize the images to the config's image_size and num_channels",
                )
