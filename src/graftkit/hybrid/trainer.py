"""Training loop for a HybridModel: next-token loss on running text, only the branches learn.

Random windows of ``seq_len`` tokens are drawn from the tokenized text (seeded); AdamW
updates ``model.trainable_parameters()`` only, at a constant lr after an optional linear
warmup (``warmup_steps``): a freshly grafted branch sees large gradients on its first steps,
and the full lr at once can throw it far from the base before it has learned anything. The result records the loss curve and the
trainable fraction; ``save_to`` writes the branches as safetensors through HybridModel.save.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from graftkit.errors import HybridError
from graftkit.progress import progress_bar


@dataclass
class TrainSettings:
    steps: int = 100
    seq_len: int = 256
    batch_size: int = 4
    lr: float = 1e-3
    warmup_steps: int = 0  # linear ramp lr * (i + 1) / warmup_steps over steps i < warmup_steps, then lr
    weight_decay: float = 0.0
    seed: int = 0
    max_tokens: int | None = 200_000  # tokenize at most this many characters' worth of text

    def validate(self) -> None:
        """Raises HybridError on settings no loop can run, before any model is loaded or trained."""
        if self.steps < 1 or self.seq_len < 2 or self.batch_size < 1 or self.warmup_steps < 0:
            raise HybridError(f"bad training settings {self}",
                              hint="steps >= 1, seq_len >= 2, batch_size >= 1, warmup_steps >= 0")


@dataclass
class TrainResult:
    losses: list[float] = field(default_factory=list)
    trainable: int = 0
    total: int = 0
    trainable_fraction: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)


def token_windows(ids: torch.Tensor, seq_len: int, batch_size: int, generator: torch.Generator) -> torch.Tensor:
    """A (batch, seq_len + 1) tensor of random contiguous windows of ``ids``."""
    starts = torch.randint(0, len(ids) - seq_len - 1, (batch_size,), generator=generator)
    return torch.stack([ids[s:s + seq_len + 1] for s in starts.tolist()])


def warmup_factor(step: int, warmup_steps: int) -> float:
    """The lr multiplier at 0-based ``step``: (step + 1) / warmup_steps during warmup, then 1 (never 0)."""
    return 1.0 if step >= warmup_steps else (step + 1) / warmup_steps


def make_optimizer(params: list[torch.nn.Parameter], settings: TrainSettings
                   ) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW and its warmup schedule (call ``scheduler.step()`` after each ``optimizer.step()``).

    Shared by train_loop and by benchmarks' own loops, so that a hybrid and its baseline get
    the same schedule.
    """
    settings.validate()
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    warmup = settings.warmup_steps
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: warmup_factor(step, warmup))
    return optimizer, scheduler


def train_loop(model: torch.nn.Module, params: list[torch.nn.Parameter], ids: torch.Tensor, settings: TrainSettings,
               description: str = "train") -> list[float]:
    """The plain loop shared with baselines (LoRA): same windows for the same seed."""
    if len(ids) < settings.seq_len + 2:
        raise HybridError(f"training text has {len(ids)} tokens, fewer than seq_len + 2 = {settings.seq_len + 2}",
                          hint="use more text or a smaller --seq-len")
    generator = torch.Generator().manual_seed(settings.seed)
    optimizer, scheduler = make_optimizer(params, settings)
    losses = []
    model.train()
    with progress_bar(description, settings.steps) as advance:
        for _ in range(settings.steps):
            batch = token_windows(ids, settings.seq_len, settings.batch_size, generator)
            logits = model(input_ids=batch[:, :-1]).logits
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), batch[:, 1:].reshape(-1))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(float(loss.detach()))
            advance(1)
    model.eval()
    return losses


def train_hybrid(model: Any, text: str, tokenizer: Any, settings: TrainSettings | None = None,
                 save_to: str | Path | None = None) -> TrainResult:
    """Trains the hybrid branches of ``model`` on ``text``; the base stays frozen."""
    settings = settings or TrainSettings()
    settings.validate()
    params = model.trainable_parameters()
    frozen_trainable = [n for n, p in model.base.named_parameters() if p.requires_grad and ".branch." not in n]
    if frozen_trainable:
        raise HybridError(f"base parameters are trainable: {frozen_trainable[:3]}", hint="build the model with HybridModel")
    source = text if settings.max_tokens is None else text[: settings.max_tokens * 4]
    ids = torch.tensor(tokenizer(source).input_ids, dtype=torch.long)
    losses = train_loop(model, params, ids, settings, "train hybrid")
    counts = model.parameter_counts()
    result = TrainResult(losses, counts["hybrid"], counts["hybrid"] + counts["base"], counts["trainable_fraction"],
                         asdict(settings))
    if save_to is not None:
        model.save(save_to, overwrite=True)
    return result
