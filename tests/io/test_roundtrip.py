"""Round trips through Checkpoint and CheckpointWriter: tensors bit-equal, model outputs equal."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from graftkit.io import Checkpoint, CheckpointWriter
from graftkit.zoo import TINY_ARCHITECTURES, save_tiny, tiny

ARCHS = ["llama", "mistral", "qwen2", "gemma", "gpt2", "bert", "phi3", "t5", "mpnet"]


def _inputs(arch: str) -> dict[str, torch.Tensor]:
    ids = torch.randint(3, 120, (2, 7), generator=torch.Generator().manual_seed(0))
    if arch == "t5":
        return {"input_ids": ids, "decoder_input_ids": ids[:, :4]}
    return {"input_ids": ids}


def _outputs(model: torch.nn.Module, arch: str) -> torch.Tensor:
    with torch.no_grad():
        out = model(**_inputs(arch))
    return out.logits if hasattr(out, "logits") else out.last_hidden_state


def _copy(src: Path, dst: Path, layout: bool, shard: int | str) -> None:
    with Checkpoint.open(src) as ck:
        plan = [ck.info(n) for n in ck] if layout else None
        with CheckpointWriter(dst, max_shard_size=shard, layout=plan) as w:
            for name in ck:
                w.write(name, ck[name])
            w.copy_auxiliary(ck)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("mode", ["sharded", "single", "layout"])
def test_roundtrip_bit_equal_and_same_outputs(tmp_path: Path, arch: str, mode: str) -> None:
    src = save_tiny(arch, tmp_path / "src")
    dst = tmp_path / "dst"
    shard = "5GB" if mode == "single" else 8000
    _copy(src, dst, layout=mode == "layout", shard=shard)

    weights = sorted(p.name for p in dst.glob("*.safetensors"))
    if mode == "single":
        assert weights == ["model.safetensors"]
    else:
        assert len(weights) > 1 and (dst / "model.safetensors.index.json").is_file()

    with Checkpoint.open(src) as a, Checkpoint.open(dst) as b:
        assert set(a.names()) == set(b.names())
        for name in a:
            assert a.dtype(name) == b.dtype(name)
            assert torch.equal(a[name], b[name]), name
        flat = {}
        for file in b.files:
            flat.update(load_file(file))
        assert set(flat) == set(a.names())

    import transformers

    head = TINY_ARCHITECTURES[arch][1]
    auto = {"causal-lm": "AutoModelForCausalLM", "base": "AutoModel", "seq2seq-lm": "AutoModelForSeq2SeqLM"}[head]
    reference = tiny(arch)
    loaded = getattr(transformers, auto).from_pretrained(dst).eval()
    assert torch.equal(_outputs(reference, arch), _outputs(loaded, arch))
