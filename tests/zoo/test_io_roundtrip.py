"""Issue 2 item 3 on a real model: MiniLM-L6 read through graftkit.io.Checkpoint and written
with CheckpointWriter comes back bit-equal and computes the same outputs."""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("max_shard_size", ["5GB", "30MB"])
def test_minilm_l6_round_trip_through_checkpoint_io(minilm_l6, tmp_path, max_shard_size):
    from transformers import AutoModel, AutoTokenizer

    from graftkit.io import Checkpoint, CheckpointWriter

    source = Checkpoint.open(minilm_l6)
    assert source.architecture.model_type == "bert" and source.architecture.num_layers == 6
    target = tmp_path / "copy"
    with CheckpointWriter(target, max_shard_size=max_shard_size) as writer:
        for name in source.names():
            writer.write(name, source[name])
        writer.copy_auxiliary(source)

    copy = Checkpoint.open(target)
    assert copy.names() == source.names()
    for name in source.names():
        a, b = source[name], copy[name]
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b), name
    if max_shard_size == "30MB":
        assert (target / "model.safetensors.index.json").is_file()

    tokenizer = AutoTokenizer.from_pretrained(target)
    batch = tokenizer(["graft two networks together", "a second sentence"], padding=True, return_tensors="pt")
    with torch.no_grad():
        before = AutoModel.from_pretrained(minilm_l6).eval()(**batch).last_hidden_state
        after = AutoModel.from_pretrained(target).eval()(**batch).last_hidden_state
    assert torch.equal(before, after)
