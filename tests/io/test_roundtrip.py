"""Round trips through Checkpoint and CheckpointWriter: tensors bit-equal, model outputs equal."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import transformers
from safetensors.torch import load_file

from graftkit.io import Checkpoint, CheckpointWriter
from graftkit.zoo import TINY_ARCHITECTURES, tiny

ARCHS = ["llama", "mistral", "qwen2", "gemma", "gpt2", "bert", "phi3", "t5", "mpnet"]
_AUTO = {"causal-lm": "AutoModelForCausalLM", "base": "AutoModel", "seq2seq-lm": "AutoModelForSeq2SeqLM"}


def _outputs(model: torch.nn.Module, arch: str) -> torch.Tensor:
    ids = torch.randint(3, 120, (2, 7), generator=torch.Generator().manual_seed(0))
    kwargs = {"decoder_input_ids": ids[:, :4]} if arch == "t5" else {}
    with torch.no_grad():
        out = model(input_ids=ids, **kwargs)
    return out.logits if hasattr(out, "logits") else out.last_hidden_state


def _copy(src: Path, dst: Path, *, layout: bool, shard: int | str) -> None:
    with Checkpoint.open(src) as ck:
        plan = [ck.info(n) for n in ck] if layout else None
        with CheckpointWriter(dst, max_shard_size=shard, layout=plan) as w:
            # reversed: with a layout, the write order must not matter
            for name in reversed(ck.names()) if layout else ck.names():
                w.write(name, ck[name])
            w.copy_auxiliary(ck)


def _flat(folder: Path) -> dict[str, torch.Tensor]:
    """Every tensor of an output folder through the safetensors library itself."""
    tensors: dict[str, torch.Tensor] = {}
    for file in sorted(folder.glob("*.safetensors")):
        tensors.update(load_file(file))
    return tensors


@pytest.mark.parametrize("arch", ARCHS)
def test_roundtrip(tmp_path: Path, arch: str) -> None:
    model = tiny(arch)
    src = tmp_path / "src"
    model.save_pretrained(src)
    reference = _outputs(model, arch)
    original = _flat(src)

    outputs = {
        "single": (tmp_path / "single", dict(layout=False, shard="5GB")),
        "sharded": (tmp_path / "sharded", dict(layout=False, shard=6000)),
        "layout": (tmp_path / "layout", dict(layout=True, shard="6KB")),
    }
    for mode, (dst, options) in outputs.items():
        _copy(src, dst, **options)
        weights = sorted(p.name for p in dst.glob("*.safetensors"))
        if mode == "single":
            assert weights == ["model.safetensors"] and not (dst / "model.safetensors.index.json").exists()
        else:
            assert len(weights) > 1 and weights[0] == f"model-00001-of-{len(weights):05d}.safetensors"
            assert (dst / "model.safetensors.index.json").is_file()
        assert (dst / "config.json").read_bytes() == (src / "config.json").read_bytes()
        copied = _flat(dst)
        assert copied.keys() == original.keys()
        for name, tensor in original.items():
            assert copied[name].dtype == tensor.dtype and torch.equal(copied[name], tensor), (mode, name)

    # the sharded layout output through transformers (a single-file output loads in test_bin_folder_roundtrip)
    auto = getattr(transformers, _AUTO[TINY_ARCHITECTURES[arch][1]])
    loaded = auto.from_pretrained(outputs["layout"][0]).eval()
    assert torch.equal(_outputs(loaded, arch), reference)


def test_bin_folder_roundtrip(tmp_path: Path) -> None:
    """A pytorch_model.bin folder (and a sharded .bin index) reads bit-equal and writes loadable safetensors."""
    model = tiny("llama")
    state = model.state_dict()
    single = tmp_path / "bin"
    single.mkdir()
    torch.save(state, single / "pytorch_model.bin")
    model.config.save_pretrained(single)

    sharded = tmp_path / "bin-sharded"
    sharded.mkdir()
    names = list(state)
    halves = {"pytorch_model-00001-of-00002.bin": names[: len(names) // 2],
              "pytorch_model-00002-of-00002.bin": names[len(names) // 2:]}
    weight_map = {}
    for file, part in halves.items():
        torch.save({n: state[n] for n in part}, sharded / file)
        weight_map.update({n: file for n in part})
    import json

    (sharded / "pytorch_model.bin.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    model.config.save_pretrained(sharded)

    for folder in (single, sharded):
        with Checkpoint.open(folder) as ck:
            assert ck.format == "bin" and set(ck.names()) == set(state)
            assert ck.architecture.model_type == "llama" and ck.architecture.num_layers == 2
            for name, tensor in state.items():
                assert torch.equal(ck[name], tensor)
    _copy(sharded, tmp_path / "out", layout=False, shard="5GB")
    loaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "out").eval()
    assert torch.equal(_outputs(loaded, "llama"), _outputs(model, "llama"))
