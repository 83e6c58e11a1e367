"""Every bad input gives a GraftError that names the file or tensor and says the fix, and writes nothing."""

from __future__ import annotations

import collections
import json
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from graftkit.errors import (
    CheckpointError,
    CorruptFileError,
    GraftError,
    MissingPathError,
    NoWeightsError,
    UnsafeFileError,
)
from graftkit.io import Checkpoint, CheckpointWriter


def _open_into_writer(path: Path, target: Path) -> None:
    """What an engine does: open the input inside the writer block. A failure must leave no output."""
    with CheckpointWriter(target) as w:
        with Checkpoint.open(path) as ck:
            for name in ck:
                w.write(name, ck[name])
    raise AssertionError("opening should have failed")


def _expect(error: type[GraftError], path: Path, tmp_path: Path, *fragments: str) -> GraftError:
    target = tmp_path / "written"
    with pytest.raises(error) as e:
        _open_into_writer(path, target)
    assert isinstance(e.value, GraftError)
    for fragment in fragments:
        assert fragment in str(e.value), (fragment, str(e.value))
    assert not target.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".written")]
    return e.value


def _good_file(path: Path) -> Path:
    save_file({"a": torch.arange(100, dtype=torch.float32), "b": torch.ones(3)}, path)
    return path


def test_missing_path(tmp_path: Path) -> None:
    _expect(MissingPathError, tmp_path / "nope", tmp_path, "nope", "does not exist")


def test_folder_without_weights(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "tokenizer.json").write_text("{}")
    _expect(NoWeightsError, folder, tmp_path, str(folder), "config.json", "tokenizer.json", "sub/", "model.safetensors")


def test_truncated_safetensors(tmp_path: Path) -> None:
    good = _good_file(tmp_path / "good.safetensors")
    data = good.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[:-50])
    _expect(CorruptFileError, cut, tmp_path, str(cut), "truncated", "'a'")
    short = tmp_path / "short.safetensors"
    short.write_bytes(data[:5])
    _expect(CorruptFileError, short, tmp_path, str(short), "truncated")
    header_cut = tmp_path / "header_cut.safetensors"
    header_cut.write_bytes(data[:20])
    _expect(CorruptFileError, header_cut, tmp_path, "truncated", "header says")


def test_malformed_safetensors(tmp_path: Path) -> None:
    bad_json = tmp_path / "json.safetensors"
    bad_json.write_bytes(struct.pack("<Q", 6) + b"{nope}")
    _expect(CorruptFileError, bad_json, tmp_path, str(bad_json), "malformed")
    header = {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}}  # 8 bytes for 16
    raw = json.dumps(header).encode()
    wrong = tmp_path / "wrong.safetensors"
    wrong.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(8))
    _expect(CorruptFileError, wrong, tmp_path, "'a'", "16 expected")
    not_st = tmp_path / "text.safetensors"
    not_st.write_text("this is not a safetensors file at all, just text")
    _expect(CorruptFileError, not_st, tmp_path, str(not_st))


class Pickled(collections.OrderedDict):
    """A class weights_only refuses, as found in checkpoints saved with whole objects."""


def test_bin_that_needs_more_than_weights_only(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    torch.save(Pickled(w=torch.zeros(2)), folder / "pytorch_model.bin")
    error = _expect(UnsafeFileError, folder, tmp_path, "pytorch_model.bin", "arbitrary Python objects", "safetensors",
                    "trusted")
    assert error.hint and "trusted environment" in error.hint


def test_corrupt_bin(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    torch.save({"w": torch.zeros(1000)}, path)
    path.write_bytes(path.read_bytes()[:300])
    _expect(CorruptFileError, path, tmp_path, str(path), "truncated")
    nothing = tmp_path / "list.bin"
    torch.save([1, 2], nothing)
    _expect(GraftError, nothing, tmp_path, "no dictionary of named tensors")


def test_unreadable_config(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    _good_file(folder / "model.safetensors")
    (folder / "config.json").write_text('{"model_type": "llama",\n "hidden_size": 32,,}')
    _expect(CheckpointError, folder, tmp_path, str(folder / "config.json"), "not valid JSON", "line 2 column 20")
    (folder / "config.json").write_bytes(b"\xff\xfe\x00garbage")
    _expect(CheckpointError, folder, tmp_path, "config.json")
    (folder / "config.json").write_text("[1, 2]")
    _expect(CheckpointError, folder, tmp_path, "config.json", "JSON object")


def test_bad_index(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    _good_file(folder / "model-00001-of-00002.safetensors")
    index = {"metadata": {}, "weight_map": {"a": "model-00001-of-00002.safetensors",
                                            "c": "model-00002-of-00002.safetensors"}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    _expect(MissingPathError, folder, tmp_path, "model-00002-of-00002.safetensors", "'c'")
    index["weight_map"] = {"a": "model-00001-of-00002.safetensors", "zz": "model-00001-of-00002.safetensors"}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    _expect(CorruptFileError, folder, tmp_path, "lacks tensor 'zz'")
    (folder / "model.safetensors.index.json").write_text("{")
    _expect(CorruptFileError, folder, tmp_path, "model.safetensors.index.json", "not valid JSON")


def test_unknown_file_type(tmp_path: Path) -> None:
    path = tmp_path / "weights.onnx"
    path.write_bytes(b"x")
    _expect(GraftError, path, tmp_path, "unknown weight file type .onnx")
