"""Checkpoint: lazy listing, single files, architecture facts and the layer pattern."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from graftkit.errors import GraftError, TensorNotFoundError
from graftkit.io import ArchitectureInfo, Checkpoint
from graftkit.io.architecture import infer_layer_prefixes, layer_pattern
from graftkit.zoo import save_tiny


@pytest.fixture(scope="module")
def tiny_folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny")
    return {arch: save_tiny(arch, root / arch) for arch in ("llama", "qwen2", "gpt2", "bert", "t5", "gemma")}


def test_listing_reads_headers_only(tiny_folders: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """names/info/shape/dtype never open the tensor data; ck[name] does."""
    import safetensors

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("tensor data opened while listing")

    monkeypatch.setattr(safetensors, "safe_open", refuse)
    with Checkpoint.open(tiny_folders["llama"]) as ck:
        assert len(ck) == 21 and "model.embed_tokens.weight" in ck
        assert ck.shape("model.embed_tokens.weight") == (128, 32)
        assert ck.dtype("model.embed_tokens.weight") == torch.float32
        info = ck.info("model.layers.0.mlp.up_proj.weight")
        assert info.shape == (64, 32) and info.file == tiny_folders["llama"] / "model.safetensors"
        assert ck.total_size == sum(ck.info(n).nbytes for n in ck)
        assert list(iter(ck)) == ck.names()
        with pytest.raises(AssertionError, match="tensor data opened"):
            ck["model.embed_tokens.weight"]


@pytest.mark.parametrize(
    "arch, model_type, hidden, layers, vocab, tied, pattern, sample, index",
    [
        ("llama", "llama", 32, 2, 128, False, r"^model\.layers\.(\d+)(?:\.|$)", "model.layers.1.mlp.up_proj.weight", 1),
        ("qwen2", "qwen2", 32, 2, 128, True, r"^model\.layers\.(\d+)(?:\.|$)", "model.layers.0.self_attn.q_proj.bias", 0),
        ("gpt2", "gpt2", 32, 2, 128, True, r"^transformer\.h\.(\d+)(?:\.|$)", "transformer.h.1.attn.c_attn.weight", 1),
        ("bert", "bert", 32, 2, 128, True, r"^encoder\.layer\.(\d+)(?:\.|$)", "encoder.layer.1.output.dense.weight", 1),
        ("gemma", "gemma", 32, 2, 128, True, r"^model\.layers\.(\d+)(?:\.|$)", "model.norm.weight", None),
        ("t5", "t5", 32, 2, 128, True, r"^(?:decoder\.block\.|encoder\.block\.)(\d+)(?:\.|$)",
         "decoder.block.1.layer.2.DenseReluDense.wo.weight", 1),
    ],
)
def test_architecture(tiny_folders: dict[str, Path], arch: str, model_type: str, hidden: int, layers: int,
                      vocab: int, tied: bool, pattern: str, sample: str, index: int | None) -> None:
    with Checkpoint.open(tiny_folders[arch]) as ck:
        a = ck.architecture
        assert isinstance(a, ArchitectureInfo)
        assert (a.model_type, a.hidden_size, a.num_layers, a.vocab_size) == (model_type, hidden, layers, vocab)
        assert a.architectures and a.tied_embeddings is tied
        assert a.layer_pattern == pattern
        assert ck.layer_of(sample) == index
        in_stack = [n for n in ck if ck.layer_of(n) is not None]
        assert {ck.layer_of(n) for n in in_stack} == set(range(layers))


def test_tied_default_when_config_is_silent(tmp_path: Path) -> None:
    """Without tie_word_embeddings in config.json, transformers' default for the model type applies."""
    names = {"model.embed_tokens.weight": torch.zeros(4, 2), "model.layers.0.w": torch.zeros(2)}
    for model_type, expected in (("gemma", True), ("llama", False)):
        folder = tmp_path / model_type
        folder.mkdir()
        save_file(names, folder / "model.safetensors")
        (folder / "config.json").write_text(json.dumps({"model_type": model_type, "hidden_size": 2}))
        with Checkpoint.open(folder) as ck:
            assert ck.architecture.tied_embeddings is expected


def test_layer_pattern_inference_is_generic() -> None:
    names = [f"backbone.stages.{i}.conv.weight" for i in range(3)] + ["backbone.stem.weight", "head.0.weight",
                                                                       "head.2.weight", "blocks.x.1.y"]
    prefixes, n = infer_layer_prefixes(names)
    assert prefixes == ("backbone.stages",) and n == 3  # head has 0 and 2: not a 0..N-1 stack
    assert layer_pattern(prefixes) == r"^backbone\.stages\.(\d+)(?:\.|$)"
    # the config's layer count picks the stack when several qualify
    names2 = [f"model.layers.{i}.w" for i in range(4)] + [f"model.vision.layers.{i}.w" for i in range(6)] * 2
    assert infer_layer_prefixes(names2, expected=4) == (("model.layers",), 4)
    assert infer_layer_prefixes(names2) == (("model.vision.layers",), 6)
    assert infer_layer_prefixes(["0.weight", "1.weight", "1.bias"]) == (("",), 2)
    assert layer_pattern(("",)) == r"^(\d+)(?:\.|$)"
    assert ArchitectureInfo(layer_pattern=layer_pattern(("",))).layer_of("1.bias") == 1


def test_single_files(tmp_path: Path) -> None:
    tensors = {"a.0.w": torch.arange(6, dtype=torch.int64).reshape(2, 3), "a.1.w": torch.ones(3, dtype=torch.bfloat16),
               "flag": torch.tensor([True, False])}
    save_file(tensors, tmp_path / "x.safetensors")
    torch.save(tensors, tmp_path / "x.bin")
    torch.save({"epoch": 3, "state_dict": tensors}, tmp_path / "x.pt")  # a training script's nesting
    torch.save(tensors, tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)  # cannot be mmapped
    for name in ("x.safetensors", "x.bin", "x.pt", "legacy.pth"):
        with Checkpoint.open(tmp_path / name) as ck:
            assert ck.folder is None and ck.config is None
            assert set(ck.names()) == set(tensors)
            for key, value in tensors.items():
                assert ck.dtype(key) == value.dtype and torch.equal(ck[key], value)
            assert ck.layer_of("a.1.w") == 1 and ck.architecture.num_layers == 2


def test_unindexed_shards_and_duplicates(tmp_path: Path) -> None:
    save_file({"a": torch.zeros(2)}, tmp_path / "part-1.safetensors")
    save_file({"b": torch.ones(2)}, tmp_path / "part-2.safetensors")
    with Checkpoint.open(tmp_path) as ck:
        assert ck.names() == ["a", "b"] and len(ck.files) == 2
    save_file({"b": torch.ones(2)}, tmp_path / "part-3.safetensors")
    with pytest.raises(GraftError, match="tensor 'b' appears in both"):
        Checkpoint.open(tmp_path)


def test_missing_tensor_names_closest(tiny_folders: dict[str, Path]) -> None:
    with Checkpoint.open(tiny_folders["llama"]) as ck:
        with pytest.raises(TensorNotFoundError, match=r"model\.layers\.0\.mlp\.up_proj\.weight") as e:
            ck["model.layers.0.mlp.up_proj.weights"]
        assert "closest names" in str(e.value) and isinstance(e.value, KeyError)
        assert ck.get("nope") is None
    with pytest.raises(GraftError, match="closed"):
        ck["model.embed_tokens.weight"]
