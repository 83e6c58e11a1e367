"""A quantized GGUF causal LM -> a float32 HF folder (SmolLM2-135M-Instruct, gemma-3-270m).

transformers dequantizes GGUF on load (``from_pretrained(dir, gguf_file=...)``), but the
loaded model still carries a ``quantization_config`` that would make the saved folder
claim to be GGUF. So the model is rebuilt from its config without it, the dequantized
state dict is loaded into the rebuilt model, and that is saved with the tokenizer (its
chat template included). The saved folder is read back and must equal the dequantized
GGUF tensor for tensor, bit for bit.
"""

from __future__ import annotations

import importlib
import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from graftkit.errors import ZooError
from graftkit.progress import status
from graftkit.zoo.registry import ZooEntry

# config fields that describe where the weights came from, not the model
_DROP = ("quantization_config", "_model_name_or_path", "_name_or_path")


@contextmanager
def gguf_file(entry: ZooEntry, sources: dict[str, Path], scratch_parent: Path) -> Iterator[Path]:
    """The single GGUF file of ``entry``: the package's file, or the chunks joined by the package's ``assemble()``."""
    if len(entry.sources) == 1:
        yield sources[entry.sources[0].path]
        return
    assembler = importlib.import_module(entry.packages[0].name.replace("-", "_"))
    with tempfile.TemporaryDirectory(prefix=".gguf-", dir=scratch_parent) as scratch:
        status(f"joining {len(entry.sources)} chunks with {assembler.__name__}.assemble()")
        yield Path(assembler.assemble(Path(scratch) / assembler.MODEL_NAME))


def dequantized(path: Path):
    """(model, tokenizer) from a GGUF file, dequantized to float32 by transformers."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    status(f"dequantizing {path.name} to float32 (transformers GGUF loader)")
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name, local_files_only=True)
    return model.eval(), tokenizer


def _plain_config(config):
    config = config.__class__.from_dict(config.to_dict())
    for key in _DROP:
        if hasattr(config, key):
            delattr(config, key)
    for key in ("rms_norm_eps", "layer_norm_eps"):  # GGUF stores float32: 9.9999997e-06 -> 1e-05 (same float32)
        value = getattr(config, key, None)
        if isinstance(value, float):
            setattr(config, key, float(f"{value:.6g}"))
    return config


def _clean_tokenizer_config(path: Path, config) -> None:
    """Drop the loader's own arguments that transformers saves with the tokenizer, and give a
    GGUF tokenizer (which records no length limit) the model's context length."""
    data = json.loads(path.read_text())
    for key in ("local_files_only", "is_local"):
        data.pop(key, None)
    limit = getattr(config, "max_position_embeddings", None)
    if limit and data.get("model_max_length", 0) > 1e9:
        data["model_max_length"] = int(limit)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def build(entry: ZooEntry, sources: dict[str, Path], out: Path) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM

    with gguf_file(entry, sources, out.parent) as path:
        model, tokenizer = dequantized(path)
    config = _plain_config(model.config)
    if type(model).__name__ != entry.architecture or config.model_type != entry.model_type:
        raise ZooError(f"{path.name} loaded as {type(model).__name__} ({config.model_type}), expected {entry.architecture}")
    state = model.state_dict()
    with torch.device("meta"):
        plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(state, strict=True, assign=True)
    plain.tie_weights()
    plain.generation_config = model.generation_config
    plain.save_pretrained(out)
    tokenizer.save_pretrained(out)
    _clean_tokenizer_config(out / "tokenizer_config.json", config)
    del plain

    saved, info = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32, output_loading_info=True, local_files_only=True)
    problems = {k: sorted(v) for k, v in info.items() if k != "error_msgs" and v}
    reloaded = saved.state_dict()
    differing = [n for n, t in state.items() if n not in reloaded or not torch.equal(t, reloaded[n])]
    if problems or differing or set(reloaded) != set(state):
        raise ZooError(f"{out} does not reload to the dequantized GGUF: {problems or differing[:5]}")
    if not tokenizer.chat_template and "instruct" in entry.name.lower():
        raise ZooError(f"{path.name} carries no chat template for {entry.name}")
    return {
        "gguf_file": path.name,
        "gguf_sha256_checked": True,
        "reload_equals_dequantized_gguf": True,
        "tensors": len(state),
        "parameters": sum(p.numel() for p in saved.parameters()),
        "tied_embeddings": bool(getattr(config, "tie_word_embeddings", False)),
        "chat_template": bool(tokenizer.chat_template),
    }
