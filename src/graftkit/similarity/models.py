"""Open a text model for similarity analysis from a folder path or a zoo name."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from graftkit.errors import CheckpointError, MissingPathError, ZooError


@dataclass
class TextModel:
    """A model in eval mode with its tokenizer, and the name it is reported under."""

    name: str
    model: nn.Module
    tokenizer: Any
    path: Path | None = None


def resolve_folder(spec: str | Path) -> tuple[str, Path]:
    """(display name, HF folder) of a path or a zoo model name; a path wins when both exist."""
    path = Path(spec).expanduser()
    if path.exists():
        if not path.is_dir():
            raise CheckpointError(f"{path} is a file, need an HF model folder (config.json, weights, tokenizer)",
                                  hint="pass the folder that holds config.json")
        return path.name or str(path), path
    from graftkit import zoo

    try:
        entry = zoo.resolve(str(spec))
    except ZooError as exc:
        raise MissingPathError(
            f"{spec!r} is neither an existing folder nor a zoo model name",
            hint=f"pass an HF model folder; {exc.hint}",
        ) from None
    return entry.name, zoo.get(entry.name)


def load_text_model(spec: str | Path | TextModel | tuple[nn.Module, Any], name: str | None = None) -> TextModel:
    """A ``TextModel`` from a folder, a zoo name, a (model, tokenizer) pair or a TextModel.

    Folders load with ``AutoModel`` (the encoder or decoder body, any task head is
    dropped: similarity looks at hidden states) in float32.
    """
    if isinstance(spec, TextModel):
        return spec
    if isinstance(spec, tuple):
        model, tokenizer = spec
        return TextModel(name or type(model).__name__, model.eval(), tokenizer)
    display, folder = resolve_folder(spec)
    if not (folder / "config.json").is_file():
        raise CheckpointError(f"{folder} has no config.json", hint="pass an HF model folder")
    import torch
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{folder}: no usable tokenizer ({exc})",
                              hint="copy the tokenizer files of the base model into the folder") from None
    model = AutoModel.from_pretrained(folder, dtype=torch.float32)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return TextModel(name or display, model.eval(), tokenizer, folder)
