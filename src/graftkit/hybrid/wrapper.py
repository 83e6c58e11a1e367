"""HybridModel: a frozen HF decoder whose chosen layers get a gated SSM branch.

The base model's attention modules in ``config.layers`` are replaced by ``HybridAttention``
(the same attention, blended with a branch); every base parameter is frozen, so only the
branches train. Layers are found with ``graftkit.compose.arch.describe``; anything but a
decoder-only model, an index out of range or a layer without an attention module is a
``HybridError`` raised before any branch is built.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from graftkit.errors import HybridError
from graftkit.hybrid.config import HybridConfig
from graftkit.hybrid.layer import HybridAttention, HybridBranch

CONFIG_FILE = "hybrid_config.json"
WEIGHTS_FILE = "hybrid.safetensors"
_ATTENTION_NAMES = ("self_attn", "attention", "attn", "self_attention")


def _attention_name(layer: nn.Module, index: int) -> str:
    for name in _ATTENTION_NAMES:
        if isinstance(getattr(layer, name, None), nn.Module):
            return name
    raise HybridError(f"decoder layer {index} ({type(layer).__name__}) has no attention module",
                      hint=f"graftkit looks for one of {', '.join(_ATTENTION_NAMES)}")


class HybridModel(nn.Module):
    """Wraps ``base`` (an HF causal LM) in place; ``base_source`` is remembered for reloading."""

    def __init__(self, base: nn.Module, config: HybridConfig, base_source: str | None = None) -> None:
        super().__init__()
        from graftkit.compose.arch import describe
        from graftkit.errors import CompositionError

        try:
            info = describe(base)
        except CompositionError as exc:
            raise HybridError(f"unsupported base model {type(base).__name__}: {exc.message}") from exc
        if info.family != "decoder-only":
            raise HybridError(f"unsupported base model {type(base).__name__}: it is {info.family}",
                              hint="hybrid wraps decoder-only causal LMs (llama, gemma3, qwen2, ...)")
        if not config.layers:
            raise HybridError("hybrid config names no layers", hint="give at least one decoder layer index")
        bad = [i for i in config.layers if not 0 <= i < info.num_layers]
        if bad:
            raise HybridError(f"layer indices {bad} out of range: {type(base).__name__} has {info.num_layers} "
                              f"decoder layers", hint=f"use indices 0..{info.num_layers - 1}")
        if len(set(config.layers)) != len(config.layers):
            raise HybridError(f"layer indices repeat: {config.layers}")
        config.ssm.validate()
        if config.memory is not None:
            config.memory.validate()
        stack = base.get_submodule(info.layers_path)
        names = {i: _attention_name(stack[i], i) for i in config.layers}

        self.base = base
        self.config = config
        self.info = info
        self.base_source = base_source
        for p in base.parameters():
            p.requires_grad_(False)
        param = next(base.parameters())
        self.branches = nn.ModuleDict()
        for i in sorted(config.layers):
            branch = HybridBranch(info.hidden_size, config).to(param.device)
            self.branches[str(i)] = branch
            layer = stack[i]
            setattr(layer, names[i], HybridAttention(getattr(layer, names[i]), branch))

    # -- use -----------------------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.base(*args, **kwargs)

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        return self.base.generate(*args, **kwargs)

    # -- parameters ----------------------------------------------------------------------
    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.branches.parameters() if p.requires_grad]

    def parameter_counts(self) -> dict[str, Any]:
        """Trainable (hybrid) vs frozen (base) parameter counts and the trainable fraction."""
        hybrid = sum(p.numel() for p in self.branches.parameters())
        base = sum(p.numel() for p in self.base.parameters()) - hybrid  # branches live inside base too
        return {"hybrid": hybrid, "base": base, "trainable_fraction": hybrid / (hybrid + base)}

    # -- persistence ---------------------------------------------------------------------
    def save(self, folder: str | Path, overwrite: bool = False) -> Path:
        """Writes hybrid_config.json (config + base source) and hybrid.safetensors (branches only)."""
        from safetensors.torch import save_file

        from graftkit.io.atomic import atomic_directory

        folder = Path(folder)
        with atomic_directory(folder, overwrite=overwrite) as tmp:
            state = {k: v.detach().contiguous().cpu() for k, v in self.branches.state_dict().items()}
            save_file(state, str(Path(tmp) / WEIGHTS_FILE))
            meta = {"base": self.base_source, "config": self.config.to_dict(), **self.parameter_counts()}
            (Path(tmp) / CONFIG_FILE).write_text(json.dumps(meta, indent=2))
        return folder

    @classmethod
    def load(cls, folder: str | Path, base: nn.Module | None = None) -> HybridModel:
        """Rebuilds the base (from the recorded source unless given) and loads the branches."""
        from safetensors.torch import load_file

        folder = Path(folder)
        if not (folder / CONFIG_FILE).is_file():
            raise HybridError(f"{folder}: no {CONFIG_FILE}", hint="point at a folder written by HybridModel.save or `graft hybrid train`")
        meta = json.loads((folder / CONFIG_FILE).read_text())
        if base is None:
            if not meta.get("base"):
                raise HybridError(f"{folder / CONFIG_FILE} records no base model", hint="pass base= explicitly")
            base, _ = load_base(meta["base"])
        model = cls(base, HybridConfig.from_dict(meta["config"]), base_source=meta.get("base"))
        state = load_file(str(folder / WEIGHTS_FILE))
        missing, unexpected = model.branches.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise HybridError(f"{folder / WEIGHTS_FILE} does not fit the config: missing {missing[:3]}, unexpected {unexpected[:3]}")
        return model


def load_base(source: str, dtype: torch.dtype = torch.float32) -> tuple[nn.Module, Any]:
    """A causal LM and its tokenizer from a zoo name or an HF folder."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from graftkit import zoo

    path = Path(source)
    if not path.exists():
        names = {e.name for e in zoo.list_models()} | {a for e in zoo.list_models() for a in e.aliases}
        if source not in names:
            raise HybridError(f"base model {source!r} is neither a folder nor a zoo name",
                              hint="use a HF folder or one of: " + ", ".join(sorted(e.name for e in zoo.list_models())))
        path = zoo.get(source)
    if not (path / "config.json").is_file():
        raise HybridError(f"{path} holds neither a hybrid model ({CONFIG_FILE}) nor an HF model (config.json)",
                          hint="give a folder written by `graft hybrid train`, an HF model folder or a zoo name")
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype)
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    return model, tokenizer
