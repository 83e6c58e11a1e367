"""RegMean++ (regmean_plus): Grams block by block over the merged earlier blocks."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from graftkit.errors import ValidationError
from graftkit.merge import merge, validate
from graftkit.merge.methods import get_method
from graftkit.merge.statistics import compute_grams, from_texts

from .helpers import load_tensors
from .test_statistics_config import word_family

TEXTS = [[" ".join(f"w{(7 * i + j + offset) % 120}" for j in range(12)) for i in range(8)] for offset in (0, 50)]


def _config(method: str, f1, f2) -> str:
    def own(texts: list[str]) -> str:
        return "    statistics:\n      texts:\n" + "".join(f"        - \"{t}\"\n" for t in texts) + \
            "      batch_size: 4\n      max_length: 16\n"

    return (f"merge_method: {method}\nparameters:\n  alpha: 0.9\nmodels:\n"
            f"  - model: {f1}\n{own(TEXTS[0])}  - model: {f2}\n{own(TEXTS[1])}")


def test_compute_grams_only_stops_early_with_the_same_values():
    from graftkit import zoo

    model = zoo.tiny("llama", seed=0).eval()
    batches = [{"input_ids": torch.randint(0, 100, (2, 9)), "attention_mask": torch.ones(2, 9, dtype=torch.long)}]
    full, _ = compute_grams(model, batches)
    wanted = {"model.layers.0.mlp.up_proj", "model.layers.0.self_attn.q_proj"}
    part, _ = compute_grams(model, batches, only=wanted)
    assert set(part) == wanted
    for name in wanted:
        torch.testing.assert_close(part[name], full[name])


def test_last_block_fits_the_merged_prefix(tmp_path, monkeypatch):
    """Independent check: rebuild each expert with the merged model's earlier blocks, take the last
    block's Grams there, and RegMean of the last block must give exactly the merged tensors."""
    _, f1, f2 = word_family(tmp_path, monkeypatch)
    merge(_config("regmean_plus", f1, f2), tmp_path / "plus", check=False)
    merge(_config("regmean", f1, f2), tmp_path / "plain", check=False)
    merged, plain = load_tensors(tmp_path / "plus"), load_tensors(tmp_path / "plain")
    last = max(int(n.split(".")[2]) for n in merged if n.startswith("model.layers."))
    prefix = {n: t for n, t in merged.items() if not n.startswith(f"model.layers.{last}.")
              and not n.startswith(("model.norm", "lm_head"))}
    grams = []
    for folder, texts in zip((f1, f2), TEXTS):
        model = AutoModelForCausalLM.from_pretrained(folder).eval()
        model.load_state_dict(prefix, strict=False)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
        found, _ = compute_grams(model, from_texts(texts).batches(tokenizer, batch_size=4, max_length=16))
        grams.append(found)
    experts = [load_tensors(f1), load_tensors(f2)]
    regmean = get_method("regmean")
    name = f"model.layers.{last}.mlp.down_proj.weight"
    expected = regmean.merge([e[name] for e in experts], base_index=None,
                             model_params=[{"weight": 1.0, "gram": g[name[:-len(".weight")]]} for g in grams],
                             params={"alpha": 0.9}, tensor_name=name, seed=0)
    torch.testing.assert_close(merged[name], expected.to(merged[name].dtype), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(merged[name], plain[name], atol=1e-6)  # the merged prefix changed the Grams
    logits = AutoModelForCausalLM.from_pretrained(tmp_path / "plus")(torch.tensor([[3, 5, 7]])).logits
    assert torch.isfinite(logits).all()


def test_one_model_comes_back_unchanged(tmp_path, monkeypatch):
    _, f1, _ = word_family(tmp_path, monkeypatch)
    config = _config("regmean_plus", f1, f1).split(f"  - model: {f1}")
    merge(config[0] + f"  - model: {f1}" + config[1], tmp_path / "one", check=False)
    merged, source = load_tensors(tmp_path / "one"), load_tensors(f1)
    for name, tensor in source.items():
        torch.testing.assert_close(merged[name], tensor, rtol=1e-4, atol=1e-5)


def test_slices_are_refused(tmp_path, monkeypatch):
    _, f1, f2 = word_family(tmp_path, monkeypatch)
    config = (f"merge_method: regmean_plus\nslices:\n  - sources:\n      - model: {f1}\n        layer_range: [0, 2]\n"
              f"      - model: {f2}\n        layer_range: [0, 2]\n"
              "statistics:\n  texts: [\"w1 w2 w3\"]\n")
    with pytest.raises(ValidationError, match="block by block"):
        validate(config)  # refused while validating, before any tensor or model is read
    with pytest.raises(ValidationError, match="block by block"):
        merge(config, tmp_path / "sliced", check=False)
    assert not (tmp_path / "sliced").exists()
