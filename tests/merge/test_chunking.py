"""The row-block executor on bf16 task vectors: few distinct delta values, so the TIES
threshold is tied by a large share of entries, admitted in index order across blocks."""

from __future__ import annotations

import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from graftkit.merge import merge

from .helpers import load_tensors


@pytest.fixture(scope="module")
def bf16_family(tmp_path_factory):
    from graftkit.zoo import save_tiny

    root = tmp_path_factory.mktemp("bf16")
    base = save_tiny("llama", root / "base", seed=0)
    weights = {k: v.to(torch.bfloat16) if v.is_floating_point() else v
               for k, v in load_file(str(base / "model.safetensors")).items()}
    save_file(weights, str(base / "model.safetensors"), metadata={"format": "pt"})
    paths = [base]
    for i in (1, 2):
        out = root / f"ft{i}"
        shutil.copytree(base, out)
        gen = torch.Generator().manual_seed(i)
        # deltas of a few ulps: heavy ties among the magnitudes
        tuned = {k: (v.float() * (1 + 0.01 * torch.randint(-2, 3, v.shape, generator=gen))).to(torch.bfloat16)
                 if v.is_floating_point() else v for k, v in weights.items()}
        save_file(tuned, str(out / "model.safetensors"), metadata={"format": "pt"})
        paths.append(out)
    return paths


@pytest.mark.parametrize("miss", [False, True])
def test_ties_in_blocks_equals_whole_tensor_with_heavy_ties(bf16_family, tmp_path, monkeypatch, miss):
    """Bit-identical to the whole-tensor TIES, whether the sampled bracket holds the
    threshold or misses it (then the exact whole-tensor selection runs)."""
    from graftkit.merge import chunking

    b, f1, f2 = bf16_family
    text = (f"merge_method: ties\nbase_model: {b}\nmodels:\n  - model: {f1}\n    parameters: {{weight: 0.3, density: 0.5}}\n"
            f"  - model: {f2}\n    parameters: {{weight: 0.6, density: 0.35}}\n")
    merge(text, tmp_path / "whole", check=False)
    monkeypatch.setattr(chunking, "MIN_BYTES", 0)
    monkeypatch.setattr(chunking, "BLOCK_BYTES", 3000)
    calls = {"exact": 0, "blocks": 0}
    exact, blocks = chunking._exact_trim, chunking.merge_in_blocks
    monkeypatch.setattr(chunking, "_exact_trim", lambda *a: calls.__setitem__("exact", calls["exact"] + 1) or exact(*a))
    monkeypatch.setattr("graftkit.merge.execute.merge_in_blocks",
                        lambda *a, **k: calls.__setitem__("blocks", calls["blocks"] + 1) or blocks(*a, **k))
    if miss:
        def narrow(self, sample):
            self.low = self.high = sample.max()  # almost surely excludes the k-th largest
        monkeypatch.setattr(chunking._BandSelect, "bracket", narrow)
    merge(text, tmp_path / "blocks", check=False)
    assert calls["blocks"] > 10
    assert (calls["exact"] > 0) == miss
    whole, parts = load_tensors(tmp_path / "whole"), load_tensors(tmp_path / "blocks")
    for k in whole:
        assert torch.equal(whole[k], parts[k]), k


def test_each_block_keeps_order_and_thread_count():
    from graftkit.merge.chunking import each_block

    threads = torch.get_num_threads()
    seen = each_block(lambda a, b: (a, b, torch.get_num_threads()), [(i, i + 1) for i in range(20)])
    assert [s[:2] for s in seen] == [(i, i + 1) for i in range(20)]
    assert all(s[2] == 1 for s in seen) or threads == 1
    assert torch.get_num_threads() == threads


def test_small_tasks_merged_side_by_side_under_a_tiny_prefetch_budget(llama_family, tmp_path):
    """Tasks merged on parallel threads come out in plan order and equal a one-thread merge,
    even when the reader's budget holds a single task (no wait on budget the merging holds)."""
    from graftkit.merge.api import validate
    from graftkit.merge.execute import MergeOptions, execute

    b, f1, f2, _ = llama_family
    text = (f"merge_method: ties\nbase_model: {b}\nmodels:\n  - model: {f1}\n    parameters: {{weight: 0.3, density: 0.5}}\n"
            f"  - model: {f2}\n    parameters: {{weight: 0.6, density: 0.4}}\n")
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        execute(validate(text), tmp_path / "parallel", MergeOptions(prefetch_bytes=1))
        torch.set_num_threads(1)
        execute(validate(text), tmp_path / "serial", MergeOptions())
    finally:
        torch.set_num_threads(threads)
    parallel, serial = load_tensors(tmp_path / "parallel"), load_tensors(tmp_path / "serial")
    assert list(parallel) == list(serial)
    for k in serial:
        assert torch.equal(parallel[k], serial[k]), k


@pytest.mark.parametrize("tied", [True, False])
def test_band_select_equals_a_full_sort(tied):
    """The streamed k-th largest (threshold, ties to admit, copies of it per block) equals a
    sort of all values, whether the sample's bracket is one tied value (counted per block)
    or a range (gathered)."""
    import numpy as np

    from graftkit.merge.chunking import _BandSelect

    gen = np.random.default_rng(0)
    n, k, width = 40_000, 15_000, 1000
    values = (gen.integers(0, 4, n) if tied else gen.random(n)).astype(np.float32)
    select = _BandSelect(n, k)
    select.bracket(values[::7].copy())
    assert select.point == tied
    for start in range(0, n, width):
        select.add(values[start:start + width].copy(), start)
    threshold, equal, ties = select.result()
    expected = np.sort(values)[::-1][k - 1]
    assert threshold == expected
    assert ties == k - int(np.count_nonzero(values > expected))
    assert equal == [int(np.count_nonzero(values[s:s + width] == expected)) for s in range(0, n, width)]


@pytest.mark.parametrize("method", ["ties", "dare_ties"])
def test_block_size_does_not_change_the_output(llama_family, tmp_path, monkeypatch, method):
    """Bit for bit the same merge at two block sizes (DARE's L1 factor is summed over its
    own fixed partition, NORM_BLOCK_BYTES)."""
    from graftkit.merge import chunking

    b, f1, f2, _ = llama_family
    text = (f"merge_method: {method}\nbase_model: {b}\nmodels:\n  - model: {f1}\n    parameters: {{weight: 0.3, density: 0.5}}\n"
            f"  - model: {f2}\n    parameters: {{weight: 0.6, density: 0.4}}\n")
    monkeypatch.setattr(chunking, "MIN_BYTES", 0)
    monkeypatch.setattr(chunking, "NORM_BLOCK_BYTES", 20_000)
    outputs = []
    for size in (2000, 7000):
        monkeypatch.setattr(chunking, "BLOCK_BYTES", size)
        merge(text, tmp_path / str(size), check=False)
        outputs.append(load_tensors(tmp_path / str(size)))
    for k in outputs[0]:
        assert torch.equal(outputs[0][k], outputs[1][k]), k


@pytest.mark.parametrize("method", ["ties", "linear"])
@pytest.mark.parametrize("nan", ["warn", "fail"])
def test_nan_in_a_block_merged_input_is_caught_once(bf16_family, tmp_path, monkeypatch, nan, method):
    """Inputs held whole for TIES's two passes are checked once, not block by block, and a
    linear merge checks its output blocks, its inputs only where those fail: a NaN still
    warns (naming the tensor once) or fails."""
    from graftkit.errors import MergeError
    from graftkit.merge import chunking

    b, f1, f2 = bf16_family
    bad = tmp_path / "bad"
    shutil.copytree(f1, bad)
    weights = load_file(str(bad / "model.safetensors"))
    name = next(k for k in weights if k.endswith("mlp.up_proj.weight"))
    weights[name][3, 5] = float("nan")
    save_file(weights, str(bad / "model.safetensors"), metadata={"format": "pt"})
    text = (f"merge_method: ties\nbase_model: {b}\nmodels:\n  - model: {bad}\n    parameters: {{weight: 0.5, density: 0.5}}\n"
            f"  - model: {f2}\n    parameters: {{weight: 0.5, density: 0.5}}\n")
    if method == "linear":
        text = text.replace("ties", "linear").replace(", density: 0.5", "").replace(f"base_model: {b}\n", "")
    monkeypatch.setattr(chunking, "MIN_BYTES", 0)
    monkeypatch.setattr(chunking, "BLOCK_BYTES", 2000)
    held = []
    original = chunking._hold
    monkeypatch.setattr(chunking, "_hold", lambda *a: held.append(1) or original(*a))
    if nan == "fail":
        with pytest.raises(MergeError, match=name):
            merge(text, tmp_path / "out", check=False, nan="fail")
        return
    with pytest.warns(UserWarning, match="NaN"):
        result = merge(text, tmp_path / "out", check=False)
    assert bool(held) == (method == "ties")
    assert len([w for w in result.nan_tensors if name in w]) == 1


@pytest.mark.parametrize("method", ["linear", "task_arithmetic"])
def test_whole_tensor_elementwise_merge_in_rows_is_bit_identical(llama_family, tmp_path, monkeypatch, method):
    """Tensors merged whole by an element-wise method run a block of rows at a time
    (``chunking.elementwise_in_rows``): the same bits as one pass over the whole tensor."""
    from graftkit.merge import chunking, execute

    b, f1, f2, _ = llama_family
    text = (f"merge_method: {method}\nbase_model: {b}\nmodels:\n  - model: {f1}\n    parameters: {{weight: 0.3}}\n"
            f"  - model: {f2}\n    parameters: {{weight: 0.6}}\n")
    if method == "linear":
        text += f"  - model: {b}\n    parameters: {{weight: 0.1}}\n"
    merge(text, tmp_path / "whole", check=False)
    monkeypatch.setattr(chunking, "BLOCK_BYTES", 1000)
    calls = []
    original = execute.elementwise_in_rows
    monkeypatch.setattr(execute, "elementwise_in_rows", lambda *a: calls.append(1) or original(*a))
    merge(text, tmp_path / "rows", check=False)
    assert calls
    whole, rows = load_tensors(tmp_path / "whole"), load_tensors(tmp_path / "rows")
    for k in whole:
        assert torch.equal(whole[k], rows[k]), k
