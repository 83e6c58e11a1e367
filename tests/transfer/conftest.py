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


WORDS = ["the", "cat", "dog", "sat", "on", "mat", "a", "big", "red", "runs", "fast", "slow", "and", "is", "blue", "green",
         "good", "bad", "great", "awful", "film", "movie", "what", "who", "where", "when"]


def word_tokenizer():
    """A word-level fast tokenizer: [PAD]=0, [UNK]=1, then WORDS."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"[PAD]": 0, "[UNK]": 1, **{w: i + 2 for i, w in enumerate(WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]")


def random_texts(n: int, seed: int = 0) -> list[str]:
    g = torch.Generator().manual_seed(seed)
    return [" ".join(WORDS[int(i)] for i in torch.randint(0, len(WORDS), (int(torch.randint(3, 9, (1,), generator=g)),), generator=g))
            for _ in range(n)]


@pytest.fixture(scope="session")
def transfer_folders(tmp_path_factory) -> dict[str, Path]:
    """source base, source expert (classifier + its LoRA-able delta), target (48 wide, 3 layers); word tokenizer."""
    from graftkit import zoo

    root = tmp_path_factory.mktemp("transfer")
    tok = word_tokenizer()
    base = zoo.tiny("bert", seed=0)
    base.save_pretrained(root / "src_base")
    clf = zoo.tiny("bert", head="sequence-classification", seed=0, num_labels=3)
    clf.bert.load_state_dict(base.state_dict())
    perturb(clf.bert, rank=2, noise=0.0, seed=3)
    clf.save_pretrained(root / "src_expert")
    zoo.tiny("bert", seed=5, hidden_size=48, num_hidden_layers=3).save_pretrained(root / "target")
    for name in ("src_base", "src_expert", "target"):
        tok.save_pretrained(root / name)
    return {"base": root / "src_base", "expert": root / "src_expert", "target": root / "target"}
