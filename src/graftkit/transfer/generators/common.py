"""What both generators share: an encoder with its tokenizer, pooled features, the
modules a LoRA may target, a trainable LoRA wrapper, and the check every generated
adapter goes through before it is reported."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from graftkit.errors import TransferError
from graftkit.transfer.peft_export import Adapter, LoRAFactors, apply_adapter

LAYER = re.compile(r"^(.*?layers?)\.(\d+)\.(.+)$")


@dataclass
class Encoder:
    """A model (base encoder, no head) and its tokenizer; ``head`` is the task head of an expert, if any."""

    model: nn.Module
    tokenizer: Any
    head: nn.Module | None = None
    name: str = ""
    max_length: int = 64

    @classmethod
    def load(cls, path: str | Path, max_length: int = 64) -> Encoder:
        """An HF folder or zoo name; a *ForSequenceClassification expert keeps its head for teaching."""
        import json

        from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

        folder = Path(path)
        if not folder.exists():
            from graftkit.zoo import get

            folder = Path(get(str(path)))
        config = json.loads((folder / "config.json").read_text())
        tokenizer = AutoTokenizer.from_pretrained(folder)
        if any(a.endswith("ForSequenceClassification") for a in config.get("architectures") or []):
            full = AutoModelForSequenceClassification.from_pretrained(folder).eval()
            body = getattr(full, full.base_model_prefix)
            return cls(body, tokenizer, head=_HeadOnPooled(full), name=str(path), max_length=max_length)
        return cls(AutoModel.from_pretrained(folder).eval(), tokenizer, name=str(path), max_length=max_length)

    def batch(self, texts: list[str]) -> dict[str, torch.Tensor]:
        return self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")

    def pooled(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Masked mean of the last hidden state (what the probes and the readouts see)."""
        from graftkit.data.evaluate import pool

        out = self.model(**{k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")})
        return pool(out, batch["attention_mask"])

    @torch.no_grad()
    def features(self, texts: list[str], batch_size: int = 32) -> torch.Tensor:
        self.model.eval()
        return torch.cat([self.pooled(self.batch(texts[i:i + batch_size])) for i in range(0, len(texts), batch_size)])

    @torch.no_grad()
    def teach(self, texts: list[str], batch_size: int = 32) -> torch.Tensor:
        """The expert's logits on ``texts`` (its capability), or its pooled features when it has no head."""
        self.model.eval()
        outs = []
        for i in range(0, len(texts), batch_size):
            b = self.batch(texts[i:i + batch_size])
            outs.append(self.head(self.model, b) if self.head is not None else self.pooled(b))
        return torch.cat(outs)


class _HeadOnPooled(nn.Module):
    """Runs an HF *ForSequenceClassification end to end (its own pooling and classifier)."""

    def __init__(self, full: nn.Module):
        super().__init__()
        self.full = full

    def forward(self, body: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.full(**{k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}).logits


def layer_linears(model: nn.Module) -> dict[int, list[str]]:
    """Linear modules inside repeated layers, per layer index, in registration (execution) order."""
    out: dict[int, list[str]] = {}
    for name, module in model.named_modules():
        m = LAYER.match(name)
        if m and isinstance(module, nn.Linear):
            out.setdefault(int(m.group(2)), []).append(name)
    return out


def resolve_modules(model: nn.Module, patterns: list[str] | None, rank: int) -> list[str]:
    """Target module names: every Linear of the layers, or those matching ``patterns`` (each must match)."""
    linears = [n for names in layer_linears(model).values() for n in names]
    if not linears:
        raise TransferError("the target has no Linear modules inside numbered layers",
                            hint="pass target module names explicitly with modules=[...]")
    chosen = linears
    if patterns:
        modules = dict(model.named_modules())
        chosen = []
        for p in patterns:
            hits = [n for n in linears if re.search(p, n)] or ([p] if isinstance(modules.get(p), nn.Linear) else [])
            if not hits:
                import difflib

                close = difflib.get_close_matches(p, linears, n=1)
                raise TransferError(f"target module {p!r} does not exist in the target (no Linear matches it)",
                                    hint=f"did you mean {close[0]!r}?" if close else f"module names look like {linears[0]!r}")
            chosen += [h for h in hits if h not in chosen]
    modules = dict(model.named_modules())
    for n in chosen:
        limit = min(modules[n].weight.shape)
        if rank > limit:
            raise TransferError(f"rank {rank} is larger than module {n!r} allows ({tuple(modules[n].weight.shape)}: at most {limit})",
                                hint=f"pass rank <= {limit} or leave the module out")
    return chosen


class LoRALinear(nn.Module):
    """``base(x) + x A^T B^T``: B starts at zero so training starts from the unchanged model."""

    def __init__(self, base: nn.Linear, rank: int, generator: torch.Generator):
        super().__init__()
        self.base = base
        self.A = nn.Parameter(torch.randn(rank, base.in_features, generator=generator) / base.in_features ** 0.5)
        self.B = nn.Parameter(torch.zeros(base.out_features, rank))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.A.T) @ self.B.T


def inject_lora(model: nn.Module, names: list[str], rank: int, seed: int = 0) -> dict[str, LoRALinear]:
    """Wrap the named Linear modules in place; returns the wrappers (undo with ``remove_lora``)."""
    g = torch.Generator().manual_seed(seed)
    wrappers = {}
    for name in names:
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        wrapper = LoRALinear(getattr(parent, attr), rank, g)
        setattr(parent, attr, wrapper)
        wrappers[name] = wrapper
    return wrappers


def remove_lora(model: nn.Module, wrappers: dict[str, LoRALinear]) -> Adapter:
    """Put the original Linear modules back and return the learnt factors as an Adapter."""
    loras = {}
    for name, w in wrappers.items():
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, attr, w.base)
        loras[name] = LoRAFactors(A=w.A.detach().clone(), B=w.B.detach().clone())
    return Adapter(loras=loras)


def ridge(x: torch.Tensor, y: torch.Tensor, alpha: float = 1e-2) -> torch.Tensor:
    """W minimizing ||x W - y||^2 + lam ||W||^2 (x, y centered by the caller); lam = alpha * mean eigenvalue."""
    u, s, vh = torch.linalg.svd(x.double(), full_matrices=False)
    lam = alpha * float(s.pow(2).mean())
    return (vh.T @ torch.diag(s / (s.pow(2) + lam)) @ u.T @ y.double()).float()


@dataclass
class CheckReport:
    """The target with vs without the adapter, judged against the source's capability (no labels).

    A ridge readout from the target's pooled features to the teacher's outputs is fit on one
    half of held-out texts and scored on the other: ``agreement`` is how often its argmax
    equals the teacher's (classification teachers), ``r2`` the variance of the teacher's
    outputs it explains; ``feature_change`` the relative change of the target's features.
    """

    agreement_without: float
    agreement_with: float
    r2_without: float
    r2_with: float
    feature_change: float
    n: int
    extra: dict = field(default_factory=dict)

    @property
    def improved(self) -> bool:
        return self.r2_with > self.r2_without

    def summary(self) -> str:
        return (f"teacher agreement {self.agreement_without:.3f} -> {self.agreement_with:.3f}, readout R2 "
                f"{self.r2_without:.3f} -> {self.r2_with:.3f} (without -> with adapter, {self.n} held-out texts), "
                f"features changed {self.feature_change:.3f}")


def _readout_scores(train_x, train_y, test_x, test_y) -> tuple[float, float]:
    mx, my = train_x.mean(0), train_y.mean(0)
    w = ridge(train_x - mx, train_y - my)
    pred = (test_x - mx) @ w + my
    r2 = 1 - float((pred - test_y).pow(2).sum() / (test_y - test_y.mean(0)).pow(2).sum().clamp_min(1e-12))
    agree = float((pred.argmax(1) == test_y.argmax(1)).float().mean())
    return agree, r2


def check_adapter_effect(target: Encoder, adapter: Adapter, teacher_outputs: torch.Tensor, texts: list[str]) -> CheckReport:
    """Measure the adapter on the target (applied to a copy; the target is left unchanged)."""
    import copy

    if len(texts) < 8 or len(texts) != teacher_outputs.shape[0]:
        raise TransferError(f"the check needs at least 8 held-out texts with teacher outputs (got {len(texts)})",
                            hint="pass more unlabeled texts")
    before = target.features(texts)
    adapted = Encoder(apply_adapter(copy.deepcopy(target.model), adapter), target.tokenizer, max_length=target.max_length)
    after = adapted.features(texts)
    half = len(texts) // 2
    t = teacher_outputs.float()
    a0, r0 = _readout_scores(before[:half], t[:half], before[half:], t[half:])
    a1, r1 = _readout_scores(after[:half], t[:half], after[half:], t[half:])
    change = float((after - before).norm() / before.norm().clamp_min(1e-12))
    return CheckReport(a0, a1, r0, r1, change, len(texts) - half)
