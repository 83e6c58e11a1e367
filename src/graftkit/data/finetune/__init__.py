"""``finetune(base, task, out)``: make a task expert from a base model, on CPU, reproducibly.

The recipe follows from the base and the task: a ViT preset (``vit-tiny``,
``vit-small``) or image dataset trains an image classifier; a language-modelling
dataset continues a causal LM; a classification dataset gives an encoder a linear
head (``*ForSequenceClassification``) or teaches a causal LM to answer with label
words. Every output folder loads with ``transformers`` and holds
``graftkit_finetune.json`` with the settings and the validation score.
"""

from __future__ import annotations

import json
from pathlib import Path

from graftkit.data.files import load_csv, load_jsonl
from graftkit.data.finetune.causal import train_label_words, train_language_model
from graftkit.data.finetune.classifier import train_classifier
from graftkit.data.finetune.common import RESULT_FILE, FinetuneResult, FinetuneSettings, resolve_base
from graftkit.data.finetune.vision import PRESETS, train_vit
from graftkit.data.registry import load_dataset
from graftkit.data.types import Dataset
from graftkit.errors import CheckpointError, DataError

__all__ = ["PRESETS", "RESULT_FILE", "FinetuneResult", "FinetuneSettings", "finetune", "load_task"]


def load_task(task: str | Dataset, root: str | Path | None = None) -> Dataset:
    """A dataset by name, a Dataset as is, or your own ``.csv`` / ``.jsonl`` with ``text`` and ``label`` columns."""
    if isinstance(task, Dataset):
        return task
    path = Path(task)
    if path.suffix in (".csv", ".jsonl") and path.is_file():
        return load_csv(path, "text", "label") if path.suffix == ".csv" else load_jsonl(path)
    return load_dataset(task, root=root)


def _is_causal(folder: Path) -> bool:
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{folder / 'config.json'} is unreadable ({exc})") from exc
    return any(a.endswith("ForCausalLM") or a.endswith("LMHeadModel") for a in config.get("architectures") or [])


def finetune(
    base: str | Path,
    task: str | Dataset,
    out: str | Path,
    settings: FinetuneSettings | None = None,
    *,
    overwrite: bool = False,
    data_root: str | Path | None = None,
) -> FinetuneResult:
    """Fine-tune ``base`` (folder, zoo name or ViT preset) on ``task`` and save the expert to ``out``.

    Example: ``finetune("all-MiniLM-L6-v2", "synthetic-sentiment", "experts/sentiment")``.
    """
    settings = settings or FinetuneSettings()
    out = Path(out)
    if out.exists() and not overwrite:
        raise CheckpointError(f"output folder {out} already exists", hint="choose another path or pass --overwrite")
    dataset = load_task(task, data_root)
    dataset.train  # noqa: B018 - fails early, naming the splits, when there is no training split
    if str(base) in PRESETS or dataset.kind == "image-classification":
        if dataset.kind != "image-classification":
            raise DataError(f"{base} trains image classifiers; {dataset.name!r} is {dataset.kind}",
                            hint="pick mnist, fashion_mnist, digits or lfw_subset")
        return train_vit(base if str(base) in PRESETS else resolve_base(base), dataset, out, settings, overwrite)
    folder = resolve_base(base)
    causal = _is_causal(folder)
    if dataset.kind == "language-modeling":
        if not causal:
            raise DataError(f"{dataset.name!r} is language modelling; base {base} is not a causal LM",
                            hint="use a causal LM such as SmolLM2-135M-Instruct")
        return train_language_model(folder, dataset, out, settings, overwrite, base_name=str(base))
    if causal:
        return train_label_words(folder, dataset, out, settings, overwrite, base_name=str(base))
    return train_classifier(folder, dataset, out, settings, overwrite, base_name=str(base))
