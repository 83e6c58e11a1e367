"""Compute a model's statistics (or load them from the cache)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from torch import nn

from graftkit.errors import ConfigError
from graftkit.merge.statistics.calibration import Calibration
from graftkit.merge.statistics.fisher import compute_fisher
from graftkit.merge.statistics.gram import compute_grams
from graftkit.merge.statistics.store import ModelStatistics, cache_key, cache_root

KINDS = {"fisher": "fisher", "gram": "gram", "regmean": "gram"}


def compute_statistics(
    kind: str,
    model: nn.Module,
    tokenizer: Any,
    calibration: Calibration,
    *,
    batch_size: int = 16,
    max_length: int = 128,
    per_example: bool = True,
) -> ModelStatistics:
    """Statistics of an in-memory model (no cache): ``kind`` is "fisher" or "gram"."""
    if kind not in KINDS:
        raise ConfigError(f"unknown statistics kind '{kind}'; use 'fisher' or 'gram'")
    kind = KINDS[kind]
    batches = calibration.batches(tokenizer, batch_size=batch_size, max_length=max_length)
    total = math.ceil(len(calibration) / batch_size)
    meta = {"data": calibration.key, "max_length": str(max_length)}
    if kind == "fisher":
        tensors = compute_fisher(model, batches, per_example=per_example, total=total)
        return ModelStatistics("fisher", tensors, meta)
    grams, counts = compute_grams(model, batches, total=total)
    meta["tokens"] = str(max(counts.values()))
    return ModelStatistics("gram", grams, meta)


def statistics_for(
    kind: str,
    model_path: str | Path,
    calibration: Calibration,
    *,
    batch_size: int = 16,
    max_length: int = 128,
    per_example: bool = True,
    cache_dir: str | Path | None = None,
    refresh: bool = False,
) -> ModelStatistics:
    """Statistics of the HF model folder ``model_path``, from the cache when present.

    The model is loaded as ``AutoModelForSequenceClassification`` when the
    calibration set has labels and its config names such a class, else as
    ``AutoModelForCausalLM`` (loss on the next token) for Fisher and ``AutoModel``
    for Grams.
    """
    if kind not in KINDS:
        raise ConfigError(f"unknown statistics kind '{kind}'; use 'fisher' or 'gram'")
    settings = {"batch_size": batch_size, "max_length": max_length, "per_example": per_example}
    key = cache_key(KINDS[kind], model_path, calibration.key, settings)
    path = Path(cache_dir) if cache_dir else cache_root()
    path = path / f"{KINDS[kind]}-{key}.safetensors"
    if path.is_file() and not refresh:
        return ModelStatistics.load(path)
    model, tokenizer = load_for_statistics(model_path, kind, calibration)
    stats = compute_statistics(kind, model, tokenizer, calibration, batch_size=batch_size, max_length=max_length, per_example=per_example)
    stats.save(path)
    return stats


def load_for_statistics(model_path: str | Path, kind: str, calibration: Calibration):
    """The HF model (with a loss where Fisher needs one) and tokenizer whose statistics are taken."""
    import transformers

    config = transformers.AutoConfig.from_pretrained(str(model_path))
    architectures = config.architectures or []
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(model_path))
    if any(a.endswith("ForSequenceClassification") for a in architectures):
        cls = transformers.AutoModelForSequenceClassification
    elif any(a.endswith("ForCausalLM") for a in architectures):
        cls = transformers.AutoModelForCausalLM
    else:
        cls = transformers.AutoModel
    if KINDS[kind] == "fisher" and cls is transformers.AutoModel:
        raise ConfigError(
            f"{model_path}: Fisher statistics need a model with a loss (a *ForSequenceClassification or *ForCausalLM)"
        )
    if cls is transformers.AutoModelForCausalLM and calibration.labels is not None:
        calibration = Calibration(calibration.texts, None, calibration.text_pairs, calibration.key)
    model = cls.from_pretrained(str(model_path))
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer
