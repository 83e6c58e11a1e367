"""LoRA adapters as merge inputs (``path+lora``), applied tensor by tensor.

mergekit loads the whole base model, merges the adapter with PEFT, saves a copy and
merges that. Here the adapter (small) is read once, and each base tensor gets its
delta ``B @ A * alpha / r`` (``alpha / sqrt(r)`` with rsLoRA) added as it streams
past, so the full model is never in memory. Tensors the adapter stores whole
(``modules_to_save``: heads, embeddings) replace the base's.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from graftkit.errors import CheckpointError, UnsupportedFormatError

_PREFIX = "base_model.model."
_LORA_KEY = re.compile(r"^(?P<module>.+)\.(?P<kind>lora_A|lora_B|lora_embedding_A|lora_embedding_B)(?:\.[^.]+)?(?:\.weight)?$")


@dataclass
class _Pair:
    a: str
    b: str
    scale: float
    embedding: bool


class LoraAdapter:
    """A PEFT LoRA adapter folder: ``adapter_config.json`` and ``adapter_model.safetensors`` (or ``.bin``)."""

    def __init__(self, folder: Path, config: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        self.folder = folder
        self.config = config
        self.tensors = tensors
        self.fan_in_fan_out = bool(config.get("fan_in_fan_out", False))
        self.pairs: dict[str, _Pair] = {}  # module path -> A/B names and scale
        self.whole: dict[str, str] = {}  # base tensor name -> adapter tensor name (modules_to_save)
        modules: dict[str, dict[str, str]] = {}
        for key in tensors:
            name = key.removeprefix(_PREFIX)
            m = _LORA_KEY.match(name)
            if m:
                modules.setdefault(m.group("module"), {})[m.group("kind")] = key
            else:
                self.whole[name] = key
        for module, kinds in modules.items():
            embedding = "lora_embedding_A" in kinds
            a = kinds.get("lora_embedding_A" if embedding else "lora_A")
            b = kinds.get("lora_embedding_B" if embedding else "lora_B")
            if a is None or b is None:
                raise CheckpointError(f"{folder}: LoRA module {module} has only one of its A/B matrices")
            rank = self._pattern(module, "rank_pattern", config.get("r", 8))
            alpha = self._pattern(module, "alpha_pattern", config.get("lora_alpha", rank))
            scale = alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank
            self.pairs[module] = _Pair(a, b, scale, embedding)
        self._targets: dict[str, str] = {}  # base tensor name -> module path, filled by check_against

    def _pattern(self, module: str, key: str, default: float) -> float:
        for pattern, value in (self.config.get(key) or {}).items():
            if module == pattern or re.search(rf"(^|\.){pattern}$", module):
                return value
        return default

    @classmethod
    def open(cls, folder: str | Path) -> "LoraAdapter":
        folder = Path(folder)
        cfg_file = folder / "adapter_config.json"
        if not cfg_file.is_file():
            raise CheckpointError(f"{folder} is not a LoRA adapter: adapter_config.json missing",
                                  hint="point '+path' at a PEFT adapter folder")
        config = json.loads(cfg_file.read_text(encoding="utf-8"))
        kind = str(config.get("peft_type", "LORA")).upper()
        if kind != "LORA":
            raise UnsupportedFormatError(f"{folder}: PEFT type {kind} is not a LoRA adapter")
        if config.get("use_dora"):
            raise UnsupportedFormatError(f"{folder}: DoRA adapters are not supported as merge inputs",
                                         hint="merge it with PEFT's merge_and_unload first")
        weights = folder / "adapter_model.safetensors"
        if weights.is_file():
            from safetensors.torch import load_file

            tensors = load_file(str(weights))
        elif (folder / "adapter_model.bin").is_file():
            tensors = torch.load(folder / "adapter_model.bin", map_location="cpu", weights_only=True)
        else:
            raise CheckpointError(f"{folder}: no adapter_model.safetensors or adapter_model.bin")
        return cls(folder, config, tensors)

    def _base_name(self, module_or_name: str, names: set[str], suffix: str = ".weight") -> str | None:
        """The checkpoint's name for an adapter target, allowing for a head prefix that one side lacks."""
        candidate = module_or_name + suffix
        if candidate in names:
            return candidate
        tail = candidate.split(".", 1)[1] if "." in candidate else None
        if tail and tail in names:
            return tail
        ends = [n for n in names if n.endswith("." + candidate)]
        return ends[0] if len(ends) == 1 else None

    def check_against(self, checkpoint: Any) -> list[str]:
        """Problems fitting this adapter onto ``checkpoint`` (headers only); maps targets on success."""
        names = set(checkpoint.names())
        problems = []
        for module, pair in self.pairs.items():
            target = self._base_name(module, names)
            if target is None:
                problems.append(f"LoRA target {module} has no tensor {module}.weight in the base model")
                continue
            shape = tuple(self.delta_shape(pair))
            if shape != tuple(checkpoint.shape(target)):
                problems.append(f"LoRA delta for {target} has shape {list(shape)}, the base tensor "
                                f"{list(checkpoint.shape(target))}")
                continue
            self._targets[target] = module
        for name, key in list(self.whole.items()):
            target = self._base_name(name, names, suffix="")
            if target is None:
                problems.append(f"adapter tensor {key} matches no tensor of the base model")
            elif target != name:
                self.whole[target] = self.whole.pop(name)
        return problems

    def delta_shape(self, pair: _Pair) -> tuple[int, int]:
        a, b = self.tensors[pair.a].shape, self.tensors[pair.b].shape
        if pair.embedding:
            return (a[1], b[0])
        return (a[1], b[0]) if self.fan_in_fan_out else (b[0], a[1])

    def delta(self, target: str) -> torch.Tensor:
        """The float32 update of base tensor ``target``."""
        pair = self.pairs[self._targets[target]]
        a = self.tensors[pair.a].float()
        b = self.tensors[pair.b].float()
        delta = (b @ a) * pair.scale
        if pair.embedding or self.fan_in_fan_out:
            delta = delta.T
        return delta

    def apply(self, name: str, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` (base tensor ``name``) with the adapter applied, in the tensor's dtype."""
        if name in self.whole:
            return self.tensors[self.whole[name]].to(tensor.dtype)
        if name not in self._targets:
            return tensor
        return (tensor.float() + self.delta(name)).to(tensor.dtype)

    def add_to_module(self, model: torch.nn.Module) -> None:
        """Apply the adapter to a loaded transformers model in place (for the post-merge check)."""
        params = dict(model.named_parameters())
        names = set(params)
        with torch.no_grad():
            for target in list(self._targets) + list(self.whole):
                own = target if target in names else self._base_name(target.removesuffix(".weight"), names)
                if own is not None:
                    params[own].copy_(self.apply(target, params[own].detach()))
