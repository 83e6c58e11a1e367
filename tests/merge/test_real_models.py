"""Real zoo models where mergekit 0.1.5 fails: all-mpnet-base-v2 (no tensors written) and MiniLM (BERT crash)."""

from __future__ import annotations

import shutil

import pytest
import torch

from graftkit.merge import merge

from .helpers import load_tensors


@pytest.mark.slow
def test_all_mpnet_base_v2_merges_every_tensor(tmp_path):
    from graftkit import zoo
    from graftkit.io import Checkpoint

    mpnet = zoo.get("all-mpnet-base-v2")
    result = merge(f"merge_method: linear\nmodels:\n  - model: {mpnet}\n    parameters: {{weight: 0.5}}\n"
                   f"  - model: {mpnet}\n    parameters: {{weight: 0.5}}\n", tmp_path / "out", probes=2)
    with Checkpoint.open(mpnet) as ck:
        assert result.tensors == len(ck.names())
    assert result.check.comparisons[0].hidden_cosine > 0.9999  # the same model twice: the model itself


@pytest.mark.slow
def test_minilm_task_arithmetic_merge(tmp_path):
    from safetensors.torch import save_file

    from graftkit import zoo

    base = zoo.get("all-MiniLM-L6-v2")
    ft = tmp_path / "ft"
    shutil.copytree(base, ft, ignore=shutil.ignore_patterns("*.safetensors"))
    gen = torch.Generator().manual_seed(0)
    tensors = {k: v + 0.01 * v.float().std() * torch.randn(v.shape, generator=gen) if v.is_floating_point() and v.numel() > 1
               else v for k, v in load_tensors(base).items()}
    save_file(tensors, str(ft / "model.safetensors"), metadata={"format": "pt"})
    result = merge(f"merge_method: task_arithmetic\nbase_model: {base}\nmodels:\n  - model: {ft}\n"
                   f"    parameters: {{weight: 0.5}}\n", tmp_path / "out", probes=2)
    assert result.tensors == len(load_tensors(base))
    assert all(c.hidden_cosine > 0.99 for c in result.check.comparisons)
    assert (tmp_path / "out" / "tokenizer.json").exists() or (tmp_path / "out" / "vocab.txt").exists()
