"""GGUF files written by gguf's own GGUFWriter, read back and compared with gguf's own dequantization."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType as Q
from gguf import GGUFReader, GGUFWriter
from gguf.quants import dequantize, quant_shape_to_byte_shape, quantize

from graftkit.errors import CorruptFileError, GraftError, UnsupportedFormatError
from graftkit.io import Checkpoint

ROWS, COLS = 4, 256  # 256: one K-quant super-block per row


def _write(path: Path, tensors: dict[str, tuple[np.ndarray, Q | None]], block_count: int = 2) -> Path:
    writer = GGUFWriter(path, "llama")
    writer.add_block_count(block_count)
    writer.add_embedding_length(COLS)
    writer.add_vocab_size(ROWS)
    for name, (data, qtype) in tensors.items():
        writer.add_tensor(name, data, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="module")
def gguf_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(0)
    values = rng.standard_normal((ROWS, COLS)).astype(np.float32)
    tensors: dict[str, tuple[np.ndarray, Q | None]] = {
        "token_embd.weight": (values, None),  # F32
        "blk.0.attn_q.weight": (values.astype(np.float16), None),  # F16
        "blk.0.ffn_up.weight": (quantize(values, Q.BF16), Q.BF16),
        "blk.1.attn_q.weight": (quantize(values, Q.Q8_0), Q.Q8_0),
        "blk.1.ffn_up.weight": (quantize(values, Q.Q4_0), Q.Q4_0),
        "blk.1.ffn_down.weight": (quantize(values, Q.Q4_1), Q.Q4_1),
        "blk.1.attn_k.weight": (quantize(values, Q.Q5_0), Q.Q5_0),  # Q4_K_M files mix these in
        "blk.1.attn_v.weight": (quantize(values, Q.Q5_1), Q.Q5_1),
        "output_norm.weight": (values[0], None),
    }
    # gguf cannot quantize to K types: random blocks with sane fp16 scales exercise decoding just as well
    for name, qtype in (("blk.0.q4k.weight", Q.Q4_K), ("blk.0.q5k.weight", Q.Q5_K), ("blk.0.q6k.weight", Q.Q6_K)):
        raw = rng.integers(0, 256, quant_shape_to_byte_shape((ROWS, COLS), qtype), dtype=np.uint8)
        scales = {Q.Q4_K: [0, 2], Q.Q5_K: [0, 2], Q.Q6_K: [208]}[qtype]  # byte offsets of fp16 scales per block
        for offset in scales:
            raw[:, offset:offset + 2] = np.array([0.01], dtype=np.float16).view(np.uint8)
        tensors[name] = (raw, qtype)
    return _write(tmp_path_factory.mktemp("gguf") / "tiny.gguf", tensors)


def test_gguf_matches_gguf_dequantization(gguf_file: Path) -> None:
    reader = GGUFReader(gguf_file)
    with Checkpoint.open(gguf_file) as ck:
        assert ck.format == "gguf" and len(ck) == len(reader.tensors)
        for t in reader.tensors:
            expected = torch.from_numpy(np.array(dequantize(t.data, t.tensor_type))).reshape(
                tuple(reversed(t.shape.tolist())))
            got = ck[t.name]
            assert got.shape == ck.shape(t.name) == expected.shape, t.name
            assert torch.isfinite(got).all(), t.name
            torch.testing.assert_close(got.float(), expected.float(), rtol=0, atol=0)
        assert ck.shape("token_embd.weight") == (ROWS, COLS)  # torch order, not GGUF's reversed one
        assert ck.dtype("blk.0.attn_q.weight") == torch.float16
        assert ck.dtype("blk.0.ffn_up.weight") == torch.bfloat16
        assert ck.dtype("blk.1.attn_q.weight") == torch.float32
        # quantization error stays small for the formats quantized from real values
        values = ck["token_embd.weight"]
        assert (ck["blk.1.attn_q.weight"] - values).abs().max() < 0.05
        assert (ck["blk.1.ffn_up.weight"] - values).abs().max() < 0.6


def test_gguf_architecture_from_metadata(gguf_file: Path) -> None:
    with Checkpoint.open(gguf_file) as ck:
        a = ck.architecture
        assert (a.model_type, a.hidden_size, a.num_layers, a.vocab_size) == ("llama", COLS, 2, ROWS)
        assert a.layer_pattern == r"^blk\.(\d+)(?:\.|$)" and ck.layer_of("blk.1.ffn_up.weight") == 1
        assert ck.layer_of("token_embd.weight") is None
        assert a.tied_embeddings is True  # no output.weight: the head reuses token_embd


def test_unsupported_gguf_quantization(tmp_path: Path) -> None:
    """Q8_K is ggml's internal dot-product type: gguf has no dequantization for it."""
    raw = np.zeros(quant_shape_to_byte_shape((ROWS, COLS), Q.Q8_K), dtype=np.uint8)
    path = _write(tmp_path / "q8k.gguf", {"token_embd.weight": (np.zeros((2, 2), np.float32), None),
                                          "blk.0.attn_k.weight": (raw, Q.Q8_K)})
    with pytest.raises(UnsupportedFormatError, match=r"blk\.0\.attn_k\.weight.*Q8_K") as e:
        Checkpoint.open(path)
    assert "Q4_K" in str(e.value) and "re-quantize" in str(e.value)  # what is supported, and the fix


def test_truncated_gguf(tmp_path: Path, gguf_file: Path) -> None:
    data = gguf_file.read_bytes()
    for cut, fragment in ((len(data) - 100, "blk.0.q6k.weight"), (200, "header ends early"), (10, "too short")):
        path = tmp_path / f"cut{cut}.gguf"
        path.write_bytes(data[:cut])
        with pytest.raises(CorruptFileError, match="truncated") as e:
            Checkpoint.open(path)
        assert str(path) in str(e.value) and fragment in str(e.value)
    (tmp_path / "not.gguf").write_bytes(b"GGML" + bytes(100))
    with pytest.raises(CorruptFileError, match="not a GGUF file"):
        Checkpoint.open(tmp_path / "not.gguf")


def test_gguf_in_folder_and_ambiguity(tmp_path: Path, gguf_file: Path) -> None:
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "a.gguf").write_bytes(gguf_file.read_bytes())
    with Checkpoint.open(folder) as ck:
        assert ck.format == "gguf" and "token_embd.weight" in ck
    (folder / "b.gguf").write_bytes(gguf_file.read_bytes())
    with pytest.raises(GraftError, match="several GGUF files"):
        Checkpoint.open(folder)
