"""Different vocabularies: a real union tokenizer, embeddings permuted into it, tokens some model lacks filled."""

from __future__ import annotations

import json

import torch

from graftkit.merge import merge
from graftkit.zoo import save_tiny

from .helpers import load_tensors, with_word_tokenizer


def test_union_vocabulary(tmp_path):
    shared = ["<unk>", "</s>"] + [f"w{i}" for i in range(118)]
    only_a = [f"a{i}" for i in range(8)]
    only_b = [f"b{i}" for i in range(8)]
    a = with_word_tokenizer(save_tiny("llama", tmp_path / "a", seed=1), shared + only_a)
    b = with_word_tokenizer(save_tiny("llama", tmp_path / "b", seed=2), list(reversed(shared)) + only_b)
    merge(f"merge_method: linear\ntokenizer_source: union\nbase_model: {a}\nmodels:\n"
          f"  - model: {a}\n    parameters: {{weight: 0.5}}\n  - model: {b}\n    parameters: {{weight: 0.5}}\n",
          tmp_path / "out", check=True)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tmp_path / "out"))
    vocab = tok.get_vocab()
    assert len(vocab) == 136 and "b3" in vocab and "a3" in vocab
    out, ta, tb = load_tensors(tmp_path / "out"), load_tensors(a), load_tensors(b)
    emb = "model.embed_tokens.weight"
    assert out[emb].shape == (136, 32)
    assert json.loads((tmp_path / "out" / "config.json").read_text())["vocab_size"] == 136
    b_vocab = {w: i for i, w in enumerate(list(reversed(shared)) + only_b)}
    w5 = vocab["w5"]  # in both: the average of the two models' rows for the same word
    assert torch.allclose(out[emb][w5], 0.5 * ta[emb][w5] + 0.5 * tb[emb][b_vocab["w5"]], atol=1e-6)
    # only in b: a's copy takes b's row, so the merge keeps b's row
    assert torch.allclose(out[emb][vocab["b3"]], tb[emb][b_vocab["b3"]], atol=1e-6)
    # only in a (the base): b's copy takes the base's row
    assert torch.allclose(out[emb][vocab["a3"]], ta[emb][vocab["a3"]], atol=1e-6)
    assert "hidden cosine" in (tmp_path / "out" / "README.md").read_text()


def test_token_overrides_and_padding(tmp_path):
    words = ["<unk>", "</s>"] + [f"w{i}" for i in range(126)]
    a = with_word_tokenizer(save_tiny("llama", tmp_path / "a", seed=1), words)
    b = with_word_tokenizer(save_tiny("llama", tmp_path / "b", seed=2), words)
    merge(f"merge_method: linear\nbase_model: {a}\nmodels:\n"
          f"  - model: {a}\n    parameters: {{weight: 0.5}}\n  - model: {b}\n    parameters: {{weight: 0.5}}\n"
          "tokenizer:\n  source: base\n  pad_to_multiple_of: 64\n  tokens:\n"
          f"    w7:\n      source: {b}\n      force: true\n    <new>:\n      source:\n        kind: zero\n",
          tmp_path / "out", check=False)
    out, tb = load_tensors(tmp_path / "out"), load_tensors(b)
    emb = "model.embed_tokens.weight"
    assert out[emb].shape[0] == 192  # 129 tokens padded to a multiple of 64
    assert torch.allclose(out[emb][9], tb[emb][9], atol=1e-6)  # w7 forced from b in both copies
    assert torch.count_nonzero(out[emb][128]) == 0  # <new>: zero
