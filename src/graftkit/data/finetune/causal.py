"""Causal LM recipes: continued training on running text, or label words after a prompt.

On a language-modelling dataset the model learns on random windows of
``max_length`` tokens of the training text and is scored by validation perplexity.
On a classification dataset it learns to answer ``default_prompt(text)`` with the
label word (loss on the answer tokens only) and is scored like
``causal_lm_accuracy``. Either way the result is an HF ``*ForCausalLM`` folder.
"""

from __future__ import annotations

from pathlib import Path

import torch

from graftkit.data.evaluate import _encode_words, _right_pad, causal_lm_accuracy, default_prompt, perplexity
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
from graftkit.errors import DataError
from graftkit.io.atomic import atomic_directory

DEFAULTS = dict(steps=200, lr=5e-5, batch_size=8, max_length=64, val_size=8192)
CLASSIFY_DEFAULTS = dict(steps=200, lr=5e-5, batch_size=8, max_length=128, val_size=500)


def _load(base: Path, seed: int):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(base)
    return model, tokenizer


def _train(model, steps: int, s: FinetuneSettings, make_batch, description: str) -> tuple[list[float], float]:
    optimizer = torch.optim.AdamW(model.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    scheduler = schedule(optimizer, steps, s.warmup)

    def loss_of(step: int) -> torch.Tensor:
        input_ids, attention_mask, labels = make_batch(step)
        return model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss

    return optimize(model, optimizer, scheduler, range(steps), loss_of, description, steps)


def _save(model, tokenizer, out: Path, record: FinetuneResult, overwrite: bool) -> None:
    with atomic_directory(out, overwrite=overwrite) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        record.write(tmp)


def train_language_model(base: Path, dataset: Dataset, out: Path, settings: FinetuneSettings, overwrite: bool = False,
                         base_name: str | None = None) -> FinetuneResult:
    """Continue training a causal LM on ``dataset.train.text``; report validation perplexity."""
    s = settings.filled(DEFAULTS)
    set_threads(s.threads)
    train_text = dataset.train.text or ""
    model, tokenizer = _load(base, s.seed)
    ids = torch.tensor(tokenizer(train_text, add_special_tokens=False, verbose=False)["input_ids"], dtype=torch.long)
    if ids.numel() <= s.max_length + 1:
        raise DataError(f"{dataset.name}: training text has {ids.numel()} tokens, fewer than max_length {s.max_length}")
    val_text = dataset.validation.text or ""
    before = perplexity(model, val_text, tokenizer, window=s.max_length * 2, max_tokens=s.val_size, description="perplexity before")
    g = torch.Generator().manual_seed(s.seed)
    starts = torch.randint(0, ids.numel() - s.max_length, (s.steps, s.batch_size), generator=g)

    def make_batch(step: int):
        x = torch.stack([ids[a : a + s.max_length] for a in starts[step].tolist()])
        return x, torch.ones_like(x), x

    losses, seconds = _train(model, s.steps, s, make_batch, f"fine-tune {dataset.name}")
    after = perplexity(model, val_text, tokenizer, window=s.max_length * 2, max_tokens=s.val_size, description="perplexity after")
    record = FinetuneResult(
        output=str(out), base=base_name or str(base), task=dataset.name, recipe="causal-lm", metric="perplexity",
        value=float(after.perplexity), validation_n=after.n, validation_loss=after.loss, train_seconds=round(seconds, 2),
        final_train_loss=tail_mean(losses), settings=vars(s),
        extra={"perplexity_before": before.perplexity},
    )
    _save(model, tokenizer, out, record, overwrite)
    return record


def train_label_words(base: Path, dataset: Dataset, out: Path, settings: FinetuneSettings, overwrite: bool = False,
                      base_name: str | None = None) -> FinetuneResult:
    """Teach a causal LM to answer ``default_prompt(text)`` with the label word; report accuracy."""
    s = settings.filled(CLASSIFY_DEFAULTS)
    set_threads(s.threads)
    model, tokenizer = _load(base, s.seed)
    words = _encode_words(tokenizer, dataset.label_names)
    train = dataset.train
    pairs = train.text_pairs or [None] * len(train)
    prompts = [tokenizer(default_prompt(t, p))["input_ids"] for t, p in zip(train.texts or [], pairs)]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    order = batches(len(train), s.batch_size, s.steps, s.seed)

    def make_batch(step: int):
        rows, targets = [], []
        for i in order[step]:
            answer = words[train.labels[i]]
            prompt = prompts[i][-(s.max_length - len(answer)):]
            rows.append(prompt + answer)
            targets.append([-100] * len(prompt) + answer)
        x, mask = _right_pad(rows, pad)
        y, _ = _right_pad(targets, -100)
        return x, mask, y

    losses, seconds = _train(model, s.steps, s, make_batch, f"fine-tune {dataset.name} (label words)")
    val = dataset.validation.head(s.val_size) if s.val_size else dataset.validation
    result = causal_lm_accuracy(model, val, tokenizer, dataset.label_names, max_length=s.max_length, description="validate")
    record = FinetuneResult(
        output=str(out), base=base_name or str(base), task=dataset.name, recipe="causal-lm-label-words",
        metric="accuracy", value=float(result.accuracy), validation_n=result.n, validation_loss=result.loss,
        train_seconds=round(seconds, 2), final_train_loss=tail_mean(losses),
        settings=vars(s), label_names=list(dataset.label_names),
        extra={"prompt": default_prompt("{text}"), "label_words": list(dataset.label_names)},
    )
    _save(model, tokenizer, out, record, overwrite)
    return record
