"""Data-aware methods from a config: statistics computed from `statistics:` texts, then merged (RegMean here;
the methods' own tests cover Fisher)."""

from __future__ import annotations

import pytest
import torch

from graftkit.errors import ValidationError
from graftkit.merge import merge, validate

from .helpers import load_tensors, perturbed_family, with_word_tokenizer


def word_family(tmp_path, monkeypatch) -> list:
    """A base and two perturbed tiny llamas with a word-level tokenizer; statistics cached under tmp_path."""
    monkeypatch.setenv("GRAFTKIT_CACHE", str(tmp_path / "cache"))
    words = ["<unk>", "</s>"] + [f"w{i}" for i in range(126)]
    family = perturbed_family(tmp_path, "llama", n=2, scale=0.05)
    for folder in family:
        with_word_tokenizer(folder, words)
    return family


def test_regmean_from_config(tmp_path, monkeypatch):
    _, f1, f2 = word_family(tmp_path, monkeypatch)
    texts = [" ".join(f"w{(7 * i + j) % 120}" for j in range(12)) for i in range(8)]
    models = f"models:\n  - model: {f1}\n  - model: {f2}\n"
    with pytest.raises(ValidationError, match="needs statistics from data"):
        validate(f"merge_method: regmean\n{models}")
    stats = "statistics:\n  texts:\n" + "".join(f"    - \"{t}\"\n" for t in texts) + "  batch_size: 8\n  max_length: 16\n"
    merge(f"merge_method: regmean\n{models}{stats}", tmp_path / "regmean", check=False)
    a, b = load_tensors(f1), load_tensors(f2)
    merged = load_tensors(tmp_path / "regmean")
    name = "model.layers.0.mlp.up_proj.weight"
    assert torch.isfinite(merged[name]).all()
    assert not torch.allclose(merged[name], (a[name] + b[name]) / 2, atol=1e-6)  # not a plain average


def test_each_model_can_bring_its_own_calibration_data(tmp_path, monkeypatch):
    """RegMean as in its paper: every model's Grams on its own data; the base needs none."""
    base, f1, f2 = word_family(tmp_path, monkeypatch)

    def texts(offset: int) -> str:
        lines = [" ".join(f"w{(7 * i + j + offset) % 120}" for j in range(12)) for i in range(8)]
        return "      texts:\n" + "".join(f"        - \"{t}\"\n" for t in lines) + "      max_length: 16\n"

    own = (f"merge_method: regmean\nbase_model: {base}\nmodels:\n"
           f"  - model: {f1}\n    statistics:\n{texts(0)}  - model: {f2}\n    statistics:\n{texts(50)}")
    with pytest.raises(ValidationError, match=f"needs statistics from data for {f2}"):
        validate(own.split(f"  - model: {f2}")[0] + f"  - model: {f2}\n")
    merge(own, tmp_path / "own", check=False)
    shared = own.replace(texts(50), texts(0))
    merge(shared, tmp_path / "shared", check=False)
    name = "model.layers.0.mlp.up_proj.weight"
    a, b = load_tensors(tmp_path / "own"), load_tensors(tmp_path / "shared")
    assert torch.isfinite(a[name]).all()
    assert not torch.allclose(a[name], b[name], atol=1e-6)  # the second model's own data changed its Grams
