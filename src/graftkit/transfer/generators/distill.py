"""Generator (b): fit the target's LoRA so that it reproduces the sources' capability.

Trans-LoRA in spirit: on unlabeled texts, the source experts' outputs (class
probabilities, or pooled features when a source has no head) are the targets. The
target gets a LoRA plus one small readout per source on its pooled features; both are
trained to match the teachers (KL for probabilities, MSE for features), weighted by
the fusion weights. Only the LoRA is kept: the readout is scaffolding, and no task
label is read anywhere.
"""

from __future__ import annotations

import torch
from torch import nn

from graftkit.errors import TransferError
from graftkit.progress import progress_bar
from graftkit.transfer.generators.common import Encoder, inject_lora, remove_lora, resolve_modules
from graftkit.transfer.peft_export import Adapter


class DistillGenerator:
    """Label-free distillation of one or more source experts into a LoRA for the target."""

    name = "distill"

    def __init__(self, rank: int = 8, steps: int = 100, lr: float = 1e-3, batch_size: int = 16, seed: int = 0,
                 temperature: float = 1.0):
        self.rank, self.steps, self.lr, self.batch_size, self.seed, self.temperature = rank, steps, lr, batch_size, seed, temperature

    def generate(self, sources: list[Encoder], target: Encoder, texts: list[str], weights: list[float] | None = None,
                 modules: list[str] | None = None, **_: object) -> Adapter:
        if not sources:
            raise TransferError("distillation needs at least one source expert", hint="pass a fine-tuned model folder")
        if len(texts) < self.batch_size:
            raise TransferError(f"{len(texts)} unlabeled texts are fewer than one batch ({self.batch_size})",
                                hint="pass more texts")
        weights = weights or [1.0 / len(sources)] * len(sources)
        names = resolve_modules(target.model, modules, self.rank)
        teachers = [s.teach(texts) for s in sources]
        soft = [s.head is not None for s in sources]
        width = target.features(texts[:2]).shape[1]
        torch.manual_seed(self.seed)
        readouts = nn.ModuleList(nn.Linear(width, t.shape[1]) for t in teachers)
        wrappers = inject_lora(target.model, names, self.rank, self.seed)
        for p in target.model.parameters():
            p.requires_grad_(False)
        lora_params = [p for w in wrappers.values() for p in (w.A, w.B)]
        for p in lora_params:
            p.requires_grad_(True)
        opt = torch.optim.AdamW([{"params": lora_params, "lr": self.lr}, {"params": readouts.parameters(), "lr": 1e-2}],
                                weight_decay=0.0)
        g = torch.Generator().manual_seed(self.seed)
        losses: list[float] = []
        target.model.train()
        try:
            with progress_bar("distill LoRA", self.steps) as advance:
                for _ in range(self.steps):
                    idx = torch.randperm(len(texts), generator=g)[: self.batch_size].tolist()
                    feats = target.pooled(target.batch([texts[i] for i in idx]))
                    loss = torch.zeros(())
                    for readout, teacher, is_soft, w in zip(readouts, teachers, soft, weights):
                        out, ref = readout(feats), teacher[idx]
                        if is_soft:
                            loss = loss + w * nn.functional.kl_div(
                                torch.log_softmax(out / self.temperature, -1), torch.softmax(ref / self.temperature, -1),
                                reduction="batchmean")
                        else:
                            loss = loss + w * nn.functional.mse_loss(out, ref) / ref.var().clamp_min(1e-8)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    losses.append(float(loss.detach()))
                    advance(1)
        finally:
            target.model.eval()
            adapter = remove_lora(target.model, wrappers)
            for p in target.model.parameters():
                p.requires_grad_(True)
        adapter.meta = {"made_by": "graftkit transfer distill", "sources": [s.name for s in sources], "weights": weights,
                        "rank": self.rank, "steps": self.steps, "texts": len(texts),
                        "first_loss": losses[0], "final_loss": sum(losses[-10:]) / len(losses[-10:])}
        return adapter
