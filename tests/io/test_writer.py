"""CheckpointWriter: dtypes, sharding, layout streaming and its checks, atomicity, auxiliary files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from graftkit.errors import CheckpointError, ConfigError, GraftError, ShapeMismatchError
from graftkit.io import Checkpoint, CheckpointWriter, TensorInfo, parse_size


def _tensors() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    base = torch.randn(6, 10, generator=g)
    return {
        "f32": base,
        "f32.transposed": base.t(),  # not contiguous
        "f32.strided": base[:, ::3],  # not contiguous
        "bf16": base.to(torch.bfloat16),
        "f16": base.to(torch.float16),
        "i64": torch.arange(12).reshape(3, 4),
        "bool": base > 0,
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 4),
    }


@pytest.mark.parametrize("layout", [False, True])
@pytest.mark.parametrize("shard", ["1GB", 200])
def test_dtypes_and_strides(tmp_path: Path, layout: bool, shard: int | str) -> None:
    tensors = _tensors()
    plan = [TensorInfo(n, tuple(t.shape), t.dtype) for n, t in tensors.items()] if layout else None
    with CheckpointWriter(tmp_path / "out", max_shard_size=shard, layout=plan) as w:
        for name, tensor in tensors.items():
            w.write(name, tensor)
        assert not (tmp_path / "out").exists()  # nothing in place before the block ends
    files = sorted((tmp_path / "out").glob("*.safetensors"))
    assert (len(files) == 1) == (shard == "1GB")
    loaded: dict[str, torch.Tensor] = {}
    for file in files:
        loaded.update(load_file(file))
        with safe_open(str(file), framework="pt") as f:
            assert f.metadata() == {"format": "pt"}
    for name, tensor in tensors.items():
        assert loaded[name].dtype == tensor.dtype and torch.equal(loaded[name], tensor), name
    if len(files) > 1:
        index = json.loads((tmp_path / "out" / "model.safetensors.index.json").read_text())
        assert index["metadata"]["total_size"] == sum(t.numel() * t.element_size() for t in tensors.values())
        assert set(index["weight_map"]) == set(tensors)
        assert sorted(set(index["weight_map"].values())) == [f.name for f in files]
        # every shard but a tensor alone is within the cap
        for file in files:
            sizes = [t.numel() * t.element_size() for t in load_file(file).values()]
            assert sum(sizes) <= 200 or len(sizes) == 1


def test_writer_keeps_its_own_copy(tmp_path: Path) -> None:
    t = torch.zeros(3)
    with CheckpointWriter(tmp_path / "out") as w:
        w.write("t", t)
        t.add_(1)  # the caller reuses its buffer
    assert torch.equal(load_file(tmp_path / "out" / "model.safetensors")["t"], torch.zeros(3))


def test_shard_sizes_parse() -> None:
    assert parse_size("5GB") == 5 * 10**9 and parse_size("500MB") == 500 * 10**6
    assert parse_size("512MiB") == 512 * 2**20 and parse_size("1.5kb") == 1500 and parse_size(42) == 42
    for bad in ("5 parsecs", "-1GB", 0, "", True):
        with pytest.raises(ConfigError):
            parse_size(bad)  # type: ignore[arg-type]


def test_layout_checks(tmp_path: Path) -> None:
    plan = [TensorInfo("a", (2, 3), torch.float32), TensorInfo("b", (4,), torch.bfloat16)]
    cases = [
        (lambda w: (w.write("a", torch.zeros(2, 3)), w.write("a", torch.zeros(2, 3))), CheckpointError, "written twice"),
        (lambda w: w.write("c", torch.zeros(1)), CheckpointError, "not in the planned layout"),
        (lambda w: w.write("a", torch.zeros(3, 2)), ShapeMismatchError, r"shape \[3, 2\].*planned \[2, 3\]"),
        (lambda w: w.write("b", torch.zeros(4)), CheckpointError, "dtype torch.float32.*planned torch.bfloat16"),
        (lambda w: w.write("a", torch.zeros(2, 3)), CheckpointError, r"never written.*: b"),
    ]
    for i, (action, error, message) in enumerate(cases):
        target = tmp_path / f"out{i}"
        with pytest.raises(error, match=message):
            with CheckpointWriter(target, layout=plan) as w:
                action(w)
        assert not target.exists(), message
    assert not [p for p in tmp_path.iterdir()]  # no temporary folder left behind either
    with pytest.raises(CheckpointError, match="twice"):
        CheckpointWriter(tmp_path / "x", layout=plan + plan[:1])


def test_interrupted_writer_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        with CheckpointWriter(target, max_shard_size=100) as w:
            for i in range(10):
                w.write(f"t{i}", torch.zeros(20))  # several shards flushed already
            raise KeyboardInterrupt
    assert not target.exists() and list(tmp_path.iterdir()) == []
    w = CheckpointWriter(target)
    w.write("a", torch.zeros(2))
    w.abort()
    assert not target.exists() and list(tmp_path.iterdir()) == []
    with pytest.raises(CheckpointError, match="no tensors"):
        with CheckpointWriter(target):
            pass
    assert not target.exists()


def test_overwrite_keeps_the_old_folder_until_the_new_one_is_complete(tmp_path: Path) -> None:
    target = tmp_path / "out"
    with CheckpointWriter(target) as w:
        w.write("old", torch.ones(2))
        w.write_text("README.md", "old")
    with pytest.raises(CheckpointError, match="already exists"):
        CheckpointWriter(target)
    with pytest.raises(RuntimeError):
        with CheckpointWriter(target, overwrite=True, max_shard_size=10) as w:
            w.write("new", torch.zeros(4))
            w.write("new2", torch.zeros(4))
            assert (target / "README.md").read_text() == "old"
            raise RuntimeError("crash midway")
    assert sorted(p.name for p in target.iterdir()) == ["README.md", "model.safetensors"]
    assert list(load_file(target / "model.safetensors")) == ["old"]
    with CheckpointWriter(target, overwrite=True) as w:
        w.write("new", torch.zeros(4))
    assert sorted(p.name for p in target.iterdir()) == ["model.safetensors"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_copy_auxiliary_and_text(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "1_Pooling").mkdir(parents=True)
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json",
                 "generation_config.json", "chat_template.jinja", "modules.json", "spiece.model", "merges.txt"):
        (src / name).write_text(name)
    (src / "1_Pooling" / "config.json").write_text("pooling")
    (src / "model.safetensors").write_text("weights are not auxiliary")
    (src / "training_args.bin").write_text("nor is this")
    with CheckpointWriter(tmp_path / "out") as w:
        w.write("x", torch.zeros(1))
        w.write_json("config.json", {"mine": True})  # written first: copy_auxiliary keeps it
        copied = w.copy_auxiliary(src)
        w.write_text("notes/README.md", "hello")
        with pytest.raises(CheckpointError, match="relative path"):
            w.write_text("../escape.txt", "no")
    out = tmp_path / "out"
    assert "config.json" not in copied and json.loads((out / "config.json").read_text()) == {"mine": True}
    assert (out / "1_Pooling" / "config.json").read_text() == "pooling" and "1_Pooling/config.json" in copied
    for name in ("tokenizer.json", "vocab.txt", "chat_template.jinja", "spiece.model", "merges.txt", "modules.json"):
        assert (out / name).read_text() == name
    assert not (out / "training_args.bin").exists()
    assert load_file(out / "model.safetensors")["x"].shape == (1,)
    assert (out / "notes" / "README.md").read_text() == "hello"
    with pytest.raises(GraftError, match="not a model folder"):
        with CheckpointWriter(tmp_path / "out2") as w:
            w.copy_auxiliary(tmp_path / "nowhere")
    assert not (tmp_path / "out2").exists()


def test_streaming_layout_writes_in_place(tmp_path: Path) -> None:
    """With a layout, shards exist at full size from the start and each write lands at its offset."""
    plan = [TensorInfo(f"t{i}", (64,), torch.float32) for i in range(6)]
    with CheckpointWriter(tmp_path / "out", max_shard_size=600, layout=plan) as w:
        sizes = {p.name: p.stat().st_size for p in w.folder.glob("*.safetensors")}
        assert len(sizes) == 3
        for i in reversed(range(6)):
            w.write(f"t{i}", torch.full((64,), float(i)))
            assert {p.name: p.stat().st_size for p in w.folder.glob("*.safetensors")} == sizes
        assert not w._buffer
    with Checkpoint.open(tmp_path / "out") as ck:
        assert ck.names() == [f"t{i}" for i in range(6)]
        for i in range(6):
            assert torch.equal(ck[f"t{i}"], torch.full((64,), float(i)))


def test_buffered_checks(tmp_path: Path) -> None:
    for i, (action, message) in enumerate([
        (lambda w: (w.write("a", torch.zeros(1)), w.write("a", torch.zeros(1))), "written twice"),
        (lambda w: w.write("c", torch.zeros(1, dtype=torch.complex64)), "cannot store"),
        (lambda w: w.write("d", [1.0]), "expected a torch.Tensor"),
    ]):
        with pytest.raises(GraftError, match=message):
            with CheckpointWriter(tmp_path / f"out{i}") as w:
                action(w)
        assert not (tmp_path / f"out{i}").exists()
    assert list(tmp_path.iterdir()) == []
