"""Encoder + linear head: a task expert saved as an HF ``*ForSequenceClassification`` folder.

Made for CPU: texts are tokenized once (truncated to ``max_length`` 64), batches are
padded only to their longest member, and a few hundred AdamW steps suffice for the
small encoders of the zoo. The head is initialized from the seed, so the same seed,
data and thread count give the same expert.
"""

from __future__ import annotations

from pathlib import Path

import torch

from graftkit.data.evaluate import classification_accuracy
from graftkit.data.finetune.common import (
    FinetuneResult,
    FinetuneSettings,
    batches,
    optimize,
    schedule,
    set_threads,
    tail_mean,
)
from graftkit.data.types import Dataset
from graftkit.io.atomic import atomic_directory

def pad_batch(encoded: dict, idx: list[int], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad the pre-tokenized examples ``idx`` to their longest member."""
    width = max(len(encoded["input_ids"][i]) for i in idx)
    out = {}
    for key, rows in encoded.items():
        fill = pad_id if key == "input_ids" else 0
        out[key] = torch.tensor([rows[i] + [fill] * (width - len(rows[i])) for i in idx])
    return out


DEFAULTS = dict(steps=300, lr=1e-4, batch_size=16, max_length=64, val_size=1000)


def train_classifier(base: Path, dataset: Dataset, out: Path, settings: FinetuneSettings, overwrite: bool = False,
                     base_name: str | None = None) -> FinetuneResult:
    """Fine-tune ``base`` on ``dataset`` (text or text-pair classification) and save it to ``out``."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    s = settings.filled(DEFAULTS)
    set_threads(s.threads)
    train, validation = dataset.train, dataset.validation
    tokenizer = AutoTokenizer.from_pretrained(base)
    id2label = dict(enumerate(dataset.label_names))
    torch.manual_seed(s.seed)
    model = AutoModelForSequenceClassification.from_pretrained(
        base, num_labels=dataset.num_labels, id2label=id2label, label2id={v: k for k, v in id2label.items()},
        problem_type="single_label_classification", ignore_mismatched_sizes=True,
    )
    encoded = tokenizer(train.texts, train.text_pairs, truncation=True, max_length=s.max_length)
    labels = torch.tensor(train.labels)
    optimizer = torch.optim.AdamW(model.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    scheduler = schedule(optimizer, s.steps, s.warmup)
    pad_id = tokenizer.pad_token_id or 0
    losses, seconds = optimize(
        model, optimizer, scheduler, batches(len(train), s.batch_size, s.steps, s.seed),
        lambda idx: model(**pad_batch(encoded, idx, pad_id), labels=labels[idx]).loss,
        f"fine-tune {dataset.name}", s.steps,
    )
    val = validation.head(s.val_size) if s.val_size else validation
    result = classification_accuracy(model, val, tokenizer, max_length=s.max_length, description="validate")
    record = FinetuneResult(
        output=str(out), base=base_name or str(base), task=dataset.name, recipe="sequence-classification",
        metric="accuracy", value=float(result.accuracy), validation_n=result.n, validation_loss=result.loss,
        train_seconds=round(seconds, 2), final_train_loss=tail_mean(losses),
        settings=vars(s), label_names=list(dataset.label_names),
    )
    with atomic_directory(out, overwrite=overwrite) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        record.write(tmp)
    return record
