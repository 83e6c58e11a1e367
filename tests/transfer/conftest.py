"""Tiny BERT folders: a base and a 'fine-tune' whose delta is known (low rank + small noise)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models: thread hand-offs cost more than the math on the shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def perturb(model: torch.nn.Module, rank: int = 2, noise: float = 1e-3, seed: int = 1) -> torch.nn.Module:
    """Add a rank-``rank`` delta plus small full-rank noise to every 2-D non-embedding weight and the norms."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 2 and "embeddings" not in name:
                out, inp = p.shape
                p.add_(0.05 * torch.randn(out, rank, generator=g) @ torch.randn(rank, inp, generator=g) / rank)
                p.add_(noise * torch.randn(out, inp, generator=g))
            elif "word_embeddings" in name:
                p.add_(0.01 * torch.randn(p.shape[0], rank, generator=g) @ torch.randn(rank, p.shape[1], generator=g))
            elif "LayerNorm.weight" in name:
                p.add_(0.01 * torch.randn(p.shape, generator=g))
    return model


@pytest.fixture(scope="session")
def bert_pair(tmp_path_factory) -> tuple[Path, Path]:
    """(finetuned, base) tiny BERT folders; the fine-tune is a *ForSequenceClassification (prefix ``bert.``)."""
    from graftkit import zoo

    root = tmp_path_factory.mktemp("bert")
    base = zoo.tiny("bert", seed=0)
    base.save_pretrained(root / "base")
    clf = zoo.tiny("bert", head="sequence-classification", seed=0, num_labels=3)
    clf.bert.load_state_dict(base.state_dict())
    perturb(clf.bert)
    clf.save_pretrained(root / "finetuned")
    return root / "finetuned", root / "base"
