"""MoLTrainer: trains a runtime's adapters and routers (and a task head when asked), never the experts.

Adapters and routers get separate AdamW parameter groups and learning rates (routers
usually want a smaller one); the router losses of the config are added to the task loss;
``gradient_checkpointing`` recomputes each fused layer in the backward pass. Evaluation
goes through ``graftkit.data.evaluate`` so fused models are scored exactly like their
experts.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from graftkit.compose.runtime import MoLRuntime
from graftkit.data.types import Split
from graftkit.errors import CompositionError
from graftkit.progress import progress_bar


@dataclass
class TrainingConfig:
    adapter_lr: float = 1e-3
    router_lr: float = 1e-4
    head_lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 8
    max_length: int = 128
    epochs: int = 1
    max_steps: int | None = None
    gradient_checkpointing: bool = False
    seed: int = 0


class MoLTrainer:
    """``MoLTrainer(runtime, TrainingConfig(...))``; ``num_labels`` adds a linear classification head
    over the mean-pooled fused hidden state (for encoders, whose head model has no task head)."""

    def __init__(self, runtime: MoLRuntime, config: TrainingConfig | None = None, *, num_labels: int | None = None) -> None:
        self.runtime = runtime
        self.config = config or TrainingConfig()
        torch.manual_seed(self.config.seed)
        self.head = nn.Linear(runtime.hidden_size, num_labels) if num_labels else None
        for name in runtime.used_experts():
            for p in runtime.experts[name].model.parameters():
                p.requires_grad_(False)
        groups = runtime.trainable_parameters()
        param_groups = [{"params": groups["adapters"], "lr": self.config.adapter_lr, "name": "adapters"},
                        {"params": groups["routers"], "lr": self.config.router_lr, "name": "routers"}]
        if self.head is not None:
            param_groups.append({"params": list(self.head.parameters()), "lr": self.config.head_lr, "name": "head"})
        self.optimizer = torch.optim.AdamW([g for g in param_groups if g["params"]], weight_decay=self.config.weight_decay)
        if self.config.gradient_checkpointing:
            runtime.gradient_checkpointing_enable()
        self.history: list[dict[str, float]] = []

    # ------------------------------------------------------------------ data
    def _tokenizer(self) -> Any:
        tok = self.runtime.tokenizer
        if tok is None:
            raise CompositionError(f"the embedding model {self.runtime.config.embedding_model!r} has no tokenizer",
                                   hint="build the runtime from model folders with tokenizer files, or pass tokenizer=")
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        return tok

    def _batches(self, n: int, epoch: int) -> list[list[int]]:
        order = list(range(n))
        random.Random(self.config.seed + epoch).shuffle(order)
        bs = self.config.batch_size
        return [order[i : i + bs] for i in range(0, n, bs)]

    def _step(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def _run(self, n: int, compute_loss: Any, description: str) -> list[dict[str, float]]:
        steps_per_epoch = math.ceil(n / self.config.batch_size)
        total = steps_per_epoch * self.config.epochs
        if self.config.max_steps is not None:
            total = min(total, self.config.max_steps)
        self.runtime.train()
        step = 0
        with progress_bar(description, total) as advance:
            for epoch in range(self.config.epochs):
                for idx in self._batches(n, epoch):
                    if step >= total:
                        break
                    loss, aux = compute_loss(idx)
                    self._step(loss)
                    self.history.append({"step": step, "loss": float(loss.detach()), "aux_loss": float(aux.detach())})
                    step += 1
                    advance(1)
        self.runtime.eval()
        return self.history

    # ------------------------------------------------------------------ tasks
    def train_lm(self, data: list[str] | Split, description: str = "train fused LM") -> list[dict[str, float]]:
        """Next-token training on texts (a list, or a language-modelling Split cut into max_length chunks)."""
        tok = self._tokenizer()
        if isinstance(data, Split):
            ids = tok(data.text, add_special_tokens=False)["input_ids"]
            chunks = [ids[i : i + self.config.max_length] for i in range(0, len(ids) - 1, self.config.max_length)]
        else:
            chunks = [tok(t, truncation=True, max_length=self.config.max_length)["input_ids"] for t in data]
        chunks = [c for c in chunks if len(c) > 1]

        def loss_of(idx: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
            batch = tok.pad({"input_ids": [chunks[i] for i in idx]}, return_tensors="pt")
            labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
            out = self.runtime(batch["input_ids"], batch["attention_mask"], labels=labels)
            return out.loss, out.aux_loss

        return self._run(len(chunks), loss_of, description)

    def train_classification(self, data: Split, description: str = "train fused classifier") -> list[dict[str, float]]:
        """Cross-entropy of the task head over mean-pooled fused hidden states."""
        if self.head is None:
            raise CompositionError("train_classification needs a task head", hint="create the trainer with num_labels=")
        tok = self._tokenizer()
        texts, labels = data.texts or [], data.labels or []
        from graftkit.data.evaluate import pool

        def loss_of(idx: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
            pairs = None if data.text_pairs is None else [data.text_pairs[i] for i in idx]
            enc = tok([texts[i] for i in idx], pairs, padding=True, truncation=True, max_length=self.config.max_length,
                      return_tensors="pt")
            out = self.runtime(enc["input_ids"], enc["attention_mask"])
            logits = self.head(pool(out, enc["attention_mask"], "mean"))
            loss = nn.functional.cross_entropy(logits, torch.tensor([labels[i] for i in idx])) + out.aux_loss
            return loss, out.aux_loss

        return self._run(len(texts), loss_of, description)

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, data: Split, **options: Any):
        """Accuracy (labelled splits, through the task head or label words) or perplexity (running text)."""
        from graftkit.data import evaluate

        tok = self._tokenizer()
        if data.text is not None:
            return evaluate.perplexity(self.runtime, data, tok, **options)
        if self.head is None:
            return evaluate.classification_accuracy(self.runtime, data, tok, **options)
        return evaluate.classification_accuracy(self.runtime, data, tok, head=self.head, pooling="mean", **options)

    # ------------------------------------------------------------------ checkpoints
    def _extra(self) -> dict[str, nn.Module]:
        return {"head": self.head} if self.head is not None else {}

    def save_checkpoint(self, path: str | Path) -> Path:
        return self.runtime.save_checkpoint(path, self._extra())

    def load_checkpoint(self, path: str | Path) -> None:
        self.runtime.load_checkpoint(path, self._extra())
