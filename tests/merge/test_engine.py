"""The streaming engine on the cases where mergekit 0.1.5 fails, and on bad input."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from graftkit.errors import MergeError, ValidationError
from graftkit.merge import merge

from .helpers import load_tensors, perturbed_family


def linear_yaml(*models, weights=None) -> str:
    weights = weights or [1.0] * len(models)
    body = "".join(f"  - model: {m}\n    parameters: {{weight: {w}}}\n" for m, w in zip(models, weights))
    return f"merge_method: linear\nmodels:\n{body}"


def test_same_model_listed_twice(llama_family, tmp_path):
    f1 = llama_family[1]
    merge(linear_yaml(f1, f1, weights=[0.3, 0.7]), tmp_path / "out", check=False)
    ours, theirs = load_tensors(tmp_path / "out"), load_tensors(f1)
    assert all(torch.allclose(ours[k], theirs[k], atol=1e-6) for k in theirs)


def test_relative_paths_from_working_dir_and_config_dir(llama_family, tmp_path, monkeypatch):
    import shutil

    work = tmp_path / "work"
    (work / "models").mkdir(parents=True)
    for p in llama_family[:2]:
        shutil.copytree(p, work / "models" / p.name)
    cfg = work / "recipe.yaml"
    cfg.write_text(linear_yaml(f"models/{llama_family[0].name}", f"./models/{llama_family[1].name}"))
    monkeypatch.chdir(tmp_path)  # relative to the config file's folder
    merge(cfg, tmp_path / "a", check=False)
    monkeypatch.chdir(work)  # relative to the working directory, config given as text
    merge(cfg.read_text(), tmp_path / "b", check=False)
    assert (tmp_path / "a" / "graftkit_merge.yaml").read_text() == cfg.read_text()
    assert set(load_tensors(tmp_path / "a")) == set(load_tensors(tmp_path / "b"))


def test_bert_merge(tmp_path):
    base, ft1, ft2 = perturbed_family(tmp_path, "bert", n=2)
    text = f"merge_method: ties\nbase_model: {base}\n" + linear_yaml(ft1, ft2).split("\n", 1)[1].replace(
        "weight: 1.0", "weight: 0.5, density: 0.5")
    merge(text, tmp_path / "out", check=False)
    out = load_tensors(tmp_path / "out")
    assert set(out) == set(load_tensors(base))
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(tmp_path / "out"))
    assert torch.isfinite(model(torch.arange(8)[None]).last_hidden_state).all()


def test_mpnet_shaped_checkpoint_merges_every_tensor(tmp_path):
    """Config says MPNetForMaskedLM, weights are MPNetModel (as all-mpnet-base-v2): mergekit writes nothing."""
    base, ft1 = perturbed_family(tmp_path, "mpnet", n=1)
    for folder in (base, ft1):
        cfg = json.loads((folder / "config.json").read_text())
        cfg["architectures"] = ["MPNetForMaskedLM"]
        (folder / "config.json").write_text(json.dumps(cfg))
    merge(linear_yaml(base, ft1), tmp_path / "out", check=True)
    assert set(load_tensors(tmp_path / "out")) == set(load_tensors(base))
    assert "hidden cosine" in (tmp_path / "out" / "README.md").read_text()


def test_tied_embeddings_stay_tied(tmp_path):
    base, ft1 = perturbed_family(tmp_path, "qwen2", n=1)
    merge(linear_yaml(base, ft1), tmp_path / "out", check=False)
    names = set(load_tensors(tmp_path / "out"))
    assert "lm_head.weight" not in names and "model.embed_tokens.weight" in names


def test_untied_head_of_one_input_is_kept(tmp_path):
    """A tied reference and an input with its own lm_head: the head is merged, the output untied."""
    base, ft1 = perturbed_family(tmp_path, "qwen2", n=1)
    weights = load_file(str(ft1 / "model.safetensors"))
    weights["lm_head.weight"] = weights["model.embed_tokens.weight"] + 1.0
    save_file(weights, str(ft1 / "model.safetensors"), metadata={"format": "pt"})
    merge(linear_yaml(base, ft1), tmp_path / "out", check=False)
    out = load_tensors(tmp_path / "out")
    expected = (load_tensors(base)["model.embed_tokens.weight"] + weights["lm_head.weight"]) / 2
    assert torch.allclose(out["lm_head.weight"], expected, atol=1e-6)
    assert json.loads((tmp_path / "out" / "config.json").read_text())["tie_word_embeddings"] is False


def test_different_vocab_sizes_use_common_rows(llama_family, tmp_path):
    big = perturbed_family(tmp_path, "llama", n=0, vocab_size=136)[0]
    merge(linear_yaml(llama_family[0], big), tmp_path / "out", check=False)
    out = load_tensors(tmp_path / "out")
    assert out["model.embed_tokens.weight"].shape[0] == 128 and out["lm_head.weight"].shape[0] == 128
    assert json.loads((tmp_path / "out" / "config.json").read_text())["vocab_size"] == 128


def test_extra_tensor_is_never_dropped_silently(llama_family, tmp_path):
    import shutil

    odd = tmp_path / "odd"
    shutil.copytree(llama_family[1], odd)
    weights = load_file(str(odd / "model.safetensors"))
    weights["model.extra_adapter.weight"] = torch.ones(4, 4)
    save_file(weights, str(odd / "model.safetensors"), metadata={"format": "pt"})
    text = linear_yaml(llama_family[0], odd)
    with pytest.raises(ValidationError, match="model.extra_adapter.weight"):
        merge(text, tmp_path / "out", check=False)
    assert not (tmp_path / "out").exists()
    merge(text, tmp_path / "out", check=False, allow_missing=True)
    assert "skipped" in (tmp_path / "out" / "README.md").read_text()


def _with_nan(src, dst):
    import shutil

    shutil.copytree(src, dst)
    weights = load_file(str(dst / "model.safetensors"))
    weights["model.norm.weight"][0] = float("nan")
    save_file(weights, str(dst / "model.safetensors"), metadata={"format": "pt"})
    return dst


def test_nan_input_warns_or_fails(llama_family, tmp_path):
    bad = _with_nan(llama_family[1], tmp_path / "bad")
    text = linear_yaml(llama_family[0], bad)
    with pytest.warns(UserWarning, match="NaN"):
        result = merge(text, tmp_path / "warned", check=False)
    assert result.nan_tensors and "model.norm.weight" in result.nan_tensors[0]
    with pytest.raises(MergeError, match="model.norm.weight"):
        merge(text, tmp_path / "failed", check=False, nan="fail")
    assert not (tmp_path / "failed").exists()


def test_interrupted_merge_leaves_no_folder(llama_family, tmp_path, monkeypatch):
    from graftkit.merge import execute as engine

    calls = {"n": 0}
    original = engine.merge_task

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(engine, "merge_task", flaky)
    with pytest.raises(KeyboardInterrupt):
        merge(linear_yaml(*llama_family[:2]), tmp_path / "out", check=False)
    assert list(tmp_path.iterdir()) == []


def test_random_methods_follow_the_seed(llama_family, tmp_path):
    b, f1, f2, _ = llama_family
    text = (f"merge_method: dare_ties\nbase_model: {b}\nmodels:\n  - model: {f1}\n    parameters: {{weight: 1, density: 0.5}}\n"
            f"  - model: {f2}\n    parameters: {{weight: 1, density: 0.5}}\n")
    merge(text, tmp_path / "a", seed=1, check=False)
    merge(text, tmp_path / "b", seed=1, check=False)
    merge(text, tmp_path / "c", seed=2, check=False)
    a, b_, c = (load_tensors(tmp_path / x) for x in "abc")
    name = "model.layers.0.mlp.up_proj.weight"
    assert torch.equal(a[name], b_[name]) and not torch.equal(a[name], c[name])


def test_output_dtype_and_shards(llama_family, tmp_path):
    merge(linear_yaml(*llama_family[:2]), tmp_path / "out", dtype="bfloat16", shard_size="20KB", check=False)
    index = json.loads((tmp_path / "out" / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1
    assert all(t.dtype == torch.bfloat16 for t in load_tensors(tmp_path / "out").values())


@pytest.mark.parametrize("method,rescale_mode", [
    ("linear", None), ("ties", None), ("dare_ties", "l1"), ("dare_linear", "paper"), ("della", "l1"),
    ("della_linear", "paper"),
])
def test_block_merge_equals_whole_merge(llama_family, tmp_path, monkeypatch, method, rescale_mode):
    """Huge tensors are merged in row blocks (TIES with a first pass for its trim thresholds;
    DARE and DELLA with index-addressed drop masks and a first pass for the L1 rescale)."""
    from graftkit.merge import chunking

    b, f1, f2, _ = llama_family
    text = (f"merge_method: {method}\nbase_model: {b}\nmodels:\n  - model: {f1}\n    parameters: {{weight: 0.3, density: 0.4}}\n"
            f"  - model: {f2}\n    parameters: {{weight: [0.2, 0.9], density: 0.7}}\n")
    if method.startswith("della"):
        text += "parameters: {epsilon: 0.2}\n"
    if rescale_mode is not None:
        text += f"parameters: {{rescale_mode: {rescale_mode}}}\n" if "epsilon" not in text else ""
        text = text.replace("{epsilon: 0.2}", f"{{epsilon: 0.2, rescale_mode: {rescale_mode}}}")
    if method == "linear":
        text = text.replace(", density: 0.4", "").replace(", density: 0.7", "")
        text += f"  - model: {b}\n    parameters: {{weight: 0.5}}\n"
    merge(text, tmp_path / "whole", check=False)
    monkeypatch.setattr(chunking, "MIN_BYTES", 0)
    monkeypatch.setattr(chunking, "BLOCK_BYTES", 2000)
    blocks = []
    original = chunking.merge_in_blocks
    monkeypatch.setattr("graftkit.merge.execute.merge_in_blocks",
                        lambda *a, **k: blocks.append(1) or original(*a, **k))
    merge(text, tmp_path / "blocks", check=False)
    assert len(blocks) > 10
    whole, parts = load_tensors(tmp_path / "whole"), load_tensors(tmp_path / "blocks")
    for k in whole:
        assert torch.allclose(whole[k], parts[k], atol=1e-6, rtol=0), k
    if method != "linear":  # the trim or the drop kept the same entries
        base = load_tensors(b)
        for k in whole:
            assert torch.equal(whole[k] == base[k], parts[k] == base[k]), k


def test_modules_are_tensor_prefixes(llama_family, tmp_path):
    b, f1, _, _ = llama_family
    text = (f"merge_method: linear\nmodules:\n  model:\n    models:\n      - model: {b}\n        parameters: {{weight: 1}}\n"
            f"      - model: {f1}\n        parameters: {{weight: 0}}\n"
            f"  lm_head:\n    models:\n      - model: {b}\n        parameters: {{weight: 0}}\n"
            f"      - model: {f1}\n        parameters: {{weight: 1}}\n")
    merge(text, tmp_path / "out", check=False)
    out, tb, tf = load_tensors(tmp_path / "out"), load_tensors(b), load_tensors(f1)
    assert torch.equal(out["model.norm.weight"], tb["model.norm.weight"])
    assert torch.equal(out["lm_head.weight"], tf["lm_head.weight"])
    assert set(out) == set(tb)
