"""PEFT LoRA adapters in and out: the folder ``peft.PeftModel.from_pretrained`` loads.

A graftkit adapter is a dict ``module name -> LoRAFactors`` (names as in the base model
the adapter is meant for, without PEFT's ``base_model.model.`` prefix). PEFT computes
``W + (alpha / r) * B @ A``; graftkit always writes ``alpha = r`` per module (through
``rank_pattern`` / ``alpha_pattern``), so the stored factors are the delta itself.
Keys follow PEFT 0.21: ``base_model.model.<module>.lora_A.weight`` (r x in),
``lora_B.weight`` (out x r); embeddings ``lora_embedding_A`` (r x num) and
``lora_embedding_B`` (dim x r) with delta = (B @ A)^T; full replacements of small
modules (norms) ``base_model.model.<module>.<param>`` listed in ``modules_to_save``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from graftkit.errors import TransferError
from graftkit.io.atomic import atomic_directory

PREFIX = "base_model.model."
CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
META_FILE = "graftkit_adapter.json"  # how the adapter was made and checked (PEFT ignores it)


@dataclass
class LoRAFactors:
    """One module's low-rank delta: ``delta = B @ A`` (Linear) or ``(B @ A).T`` (Embedding)."""

    A: torch.Tensor
    B: torch.Tensor
    kind: str = "linear"  # "linear" | "embedding"

    @property
    def rank(self) -> int:
        return int(self.A.shape[0])

    @property
    def shape(self) -> tuple[int, int]:
        """Shape of the adapted weight."""
        out, inp = int(self.B.shape[0]), int(self.A.shape[1])
        return (inp, out) if self.kind == "embedding" else (out, inp)

    def delta(self) -> torch.Tensor:
        d = self.B.float() @ self.A.float()
        return d.T if self.kind == "embedding" else d


@dataclass
class Adapter:
    """LoRA factors per module plus full replacement tensors (``module.param -> tensor``)."""

    loras: dict[str, LoRAFactors]
    replaced: dict[str, torch.Tensor] = field(default_factory=dict)
    base: str = ""
    meta: dict = field(default_factory=dict)


def _base_module(model: nn.Module, name: str, what: str) -> nn.Module:
    modules = dict(model.named_modules())
    if name not in modules:
        import difflib

        close = difflib.get_close_matches(name, list(modules), n=1)
        raise TransferError(f"{what}: module {name!r} does not exist in the target model",
                            hint=f"did you mean {close[0]!r}?" if close else "list the model's modules with model.named_modules()")
    return modules[name]


def check_adapter(adapter: Adapter, model: nn.Module, source: str = "adapter") -> None:
    """Every module exists in ``model`` with matching shapes; raises TransferError naming the first that does not."""
    params = dict(model.named_parameters())
    for name, f in adapter.loras.items():
        module = _base_module(model, name, source)
        weight = getattr(module, "weight", None)
        if weight is None or weight.dim() != 2:
            raise TransferError(f"{source}: module {name!r} has no 2-D weight to adapt",
                                hint="target Linear or Embedding modules only")
        shape = f.shape
        if tuple(weight.shape) != shape:
            raise TransferError(
                f"{source}: module {name!r} is {tuple(weight.shape)} in the target but the adapter's delta is {shape}",
                hint="the adapter was made for another base model; generate it for this target",
            )
    for name, t in adapter.replaced.items():
        if name not in params:
            raise TransferError(f"{source}: tensor {name!r} does not exist in the target model",
                                hint="the adapter was made for another base model")
        if tuple(params[name].shape) != tuple(t.shape):
            raise TransferError(f"{source}: tensor {name!r} is {tuple(params[name].shape)} in the target, {tuple(t.shape)} in the adapter",
                                hint="the adapter was made for another base model")


@torch.no_grad()
def apply_adapter(model: nn.Module, adapter: Adapter, scale: float = 1.0) -> nn.Module:
    """Add every delta to ``model`` in place (checked first: nothing changes on error)."""
    check_adapter(adapter, model)
    modules = dict(model.named_modules())
    params = dict(model.named_parameters())
    for name, f in adapter.loras.items():
        w = modules[name].weight
        w.add_((scale * f.delta()).to(w.dtype))
    for name, t in adapter.replaced.items():
        params[name].copy_(t.to(params[name].dtype))
    return model


def write_peft_adapter(adapter: Adapter, out: str | Path, base_model_name_or_path: str = "", overwrite: bool = False,
                       model: nn.Module | None = None) -> Path:
    """Write ``adapter_config.json`` + ``adapter_model.safetensors``; with ``model`` it is checked against it first."""
    from safetensors.torch import save_file

    if not adapter.loras:
        raise TransferError(f"adapter for {out} holds no module", hint="choose target modules that exist and changed")
    if model is not None:
        check_adapter(adapter, model, source=str(out))
    tensors: dict[str, torch.Tensor] = {}
    ranks: dict[str, int] = {}
    for name, f in adapter.loras.items():
        a_key, b_key = ("lora_embedding_A", "lora_embedding_B") if f.kind == "embedding" else ("lora_A.weight", "lora_B.weight")
        tensors[f"{PREFIX}{name}.{a_key}"] = f.A.detach().float().contiguous()
        tensors[f"{PREFIX}{name}.{b_key}"] = f.B.detach().float().contiguous()
        ranks[name] = f.rank
    to_save = sorted({n.rsplit(".", 1)[0] for n in adapter.replaced})
    for name, t in adapter.replaced.items():
        tensors[f"{PREFIX}{name}"] = t.detach().float().contiguous()
    r = max(ranks.values())
    config = {
        "peft_type": "LORA", "task_type": None, "auto_mapping": None,
        "base_model_name_or_path": base_model_name_or_path or adapter.base or None,
        "revision": None, "inference_mode": True, "r": r, "lora_alpha": r, "lora_dropout": 0.0,
        "target_modules": sorted(ranks), "exclude_modules": None,
        "rank_pattern": {f"^{n}$": k for n, k in ranks.items()},
        "alpha_pattern": {f"^{n}$": k for n, k in ranks.items()},
        "fan_in_fan_out": False, "bias": "none", "use_rslora": False, "use_dora": False,
        "modules_to_save": to_save or None, "init_lora_weights": True, "layers_to_transform": None,
        "layers_pattern": None, "megatron_config": None, "megatron_core": "megatron.core", "loftq_config": {},
    }
    with atomic_directory(out, overwrite=overwrite) as tmp:
        save_file(tensors, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2, default=str))
        (tmp / META_FILE).write_text(json.dumps(adapter.meta, indent=2, default=str))
    return Path(out)


def read_peft_adapter(folder: str | Path) -> Adapter:
    """Read a PEFT LoRA folder (written by graftkit or PEFT) into an Adapter with scaling folded into B."""
    from safetensors.torch import load_file

    folder = Path(folder)
    cfg_path, w_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    if not cfg_path.is_file() or not w_path.is_file():
        raise TransferError(f"{folder} is not a PEFT adapter folder (needs {CONFIG_FILE} and {WEIGHTS_FILE})",
                            hint="point at the folder `graft extract-lora` or `graft transfer generate` wrote")
    cfg = json.loads(cfg_path.read_text())
    if cfg.get("peft_type") != "LORA":
        raise TransferError(f"{cfg_path}: peft_type {cfg.get('peft_type')!r} is not LORA", hint="only LoRA adapters are read")
    if cfg.get("use_dora"):
        raise TransferError(f"{cfg_path}: DoRA adapters are not supported", hint="export a plain LoRA")
    tensors = load_file(str(w_path))
    import re

    def pattern(patterns: dict, name: str, default):
        for key, value in (patterns or {}).items():
            if re.fullmatch(key.lstrip("^").rstrip("$"), name) or name.endswith("." + key) or name == key:
                return value
        return default

    loras: dict[str, LoRAFactors] = {}
    replaced: dict[str, torch.Tensor] = {}
    for key, t in tensors.items():
        name = key[len(PREFIX):] if key.startswith(PREFIX) else key
        for a_key, b_key, kind in (("lora_A.weight", "lora_B.weight", "linear"), ("lora_embedding_A", "lora_embedding_B", "embedding")):
            if name.endswith("." + a_key):
                module = name[: -len(a_key) - 1]
                b = tensors.get(f"{PREFIX}{module}.{b_key}", tensors.get(f"{module}.{b_key}"))
                if b is None:
                    raise TransferError(f"{w_path}: {key} has no matching {b_key}", hint="the adapter file is incomplete")
                r = pattern(cfg.get("rank_pattern"), module, cfg.get("r", t.shape[0]))
                alpha = pattern(cfg.get("alpha_pattern"), module, cfg.get("lora_alpha", r))
                scale = alpha / (r ** 0.5 if cfg.get("use_rslora") else r)
                loras[module] = LoRAFactors(A=t.float(), B=b.float() * scale, kind=kind)
                break
        else:
            if "lora_" not in name:
                replaced[name.replace(".modules_to_save.default", "")] = t.float()
    return Adapter(loras=loras, replaced=replaced, base=str(cfg.get("base_model_name_or_path") or ""),
                   meta=json.loads((folder / META_FILE).read_text()) if (folder / META_FILE).is_file() else {})
