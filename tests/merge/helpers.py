"""Tiny model families and runners shared by the merge engine tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
import yaml

from graftkit.zoo import save_tiny


def perturbed_family(root: Path, arch: str = "llama", n: int = 2, scale: float = 0.02, **overrides) -> list[Path]:
    """A base model and ``n`` "fine-tunes": the base plus small deterministic perturbations."""
    from safetensors.torch import load_file, save_file

    base = save_tiny(arch, root / f"{arch}_base", seed=0, **overrides)
    paths = [base]
    for i in range(1, n + 1):
        out = root / f"{arch}_ft{i}"
        shutil.copytree(base, out)
        weights = load_file(str(out / "model.safetensors"))
        gen = torch.Generator().manual_seed(100 + i)
        noisy = {k: (v + scale * torch.randn(v.shape, generator=gen)) if v.is_floating_point() else v
                 for k, v in weights.items()}
        save_file(noisy, str(out / "model.safetensors"), metadata={"format": "pt"})
        paths.append(out)
    return paths


def run_mergekit(config_text: str, out: Path) -> Path:
    """Run mergekit 0.1.5 in-process on ``config_text`` (absolute paths only)."""
    from mergekit.config import MergeConfiguration
    from mergekit.merge import run_merge
    from mergekit.options import MergeOptions

    config = MergeConfiguration.model_validate(yaml.safe_load(config_text))
    run_merge(config, str(out), MergeOptions(copy_tokenizer=False, quiet=True, random_seed=0,
                                             write_model_card=False, lazy_unpickle=False))
    return out


def run_graftkit(config_text: str, out: Path, **options):
    from graftkit.merge import merge

    return merge(config_text, out, **options)


def load_tensors(folder: Path) -> dict[str, torch.Tensor]:
    from graftkit.io import Checkpoint

    with Checkpoint.open(folder) as ck:
        return {n: ck[n].clone() for n in ck.names()}


def with_word_tokenizer(folder: Path, words: list[str]) -> Path:
    """Save a whitespace word-level tokenizer over ``words`` (ids in list order) into ``folder``."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", eos_token="</s>").save_pretrained(str(folder))
    return folder
