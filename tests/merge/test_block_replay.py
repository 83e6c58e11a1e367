"""RegMean++'s block replay: the same Grams as whole forward passes, in about 2L block passes instead of L(L+1)/2."""

from __future__ import annotations

import re

import pytest
import torch

from graftkit import zoo
from graftkit.merge.layers import is_pre_layer
from graftkit.merge.statistics.block_replay import block_of
from graftkit.merge.statistics.progressive import block_order, progressive_grams

LAYERS = 6


class FixedBatches:
    """A calibration set whose batches are given (the models share no tokenizer)."""

    def __init__(self, batches: list[dict[str, torch.Tensor]]) -> None:
        self._batches = batches

    def batches(self, _tokenizer, batch_size: int, max_length: int):
        return iter(self._batches)


def _layer_of(name: str) -> int | None:
    hit = re.search(r"\.(\d+)\.", name)
    return int(hit.group(1)) if hit else None


def _batches(seed: int) -> list[dict[str, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(2):
        ids = torch.randint(3, 120, (3, 12), generator=gen)
        mask = torch.ones_like(ids)
        mask[0, 9:] = 0  # right padding in one row: its positions stay out of the Grams
        out.append({"input_ids": ids, "attention_mask": mask})
    return out


def _run(arch: str, replay: bool, overrides: dict, layers: int = LAYERS) -> tuple[list, dict[str, int]]:
    models = [zoo.tiny(arch, seed=s, num_hidden_layers=layers, **overrides).eval() for s in (0, 1)]
    originals = [{n: p.detach().clone() for n, p in m.named_parameters()} for m in models]
    calls: dict[str, int] = {}
    for m in models:
        for name, module in m.named_modules():
            if re.fullmatch(r".*\.\d+", name) and _layer_of(name + ".") is not None and name.count(".") <= 3:
                module.register_forward_pre_hook(lambda *_a, _n=name: calls.__setitem__(_n, calls.get(_n, 0) + 1))
    names = list(originals[0])
    groups = block_order(names, _layer_of, is_pre_layer)

    def merge_group(group, _statistics):
        return {n: (originals[0][n] + originals[1][n]) / 2 for n in group if n in originals[0]}

    calibrations = [FixedBatches(_batches(7)), FixedBatches(_batches(8))]
    stats = progressive_grams(models, calibrations, [None, None], groups, merge_group, replay=replay)
    return stats, calls


@pytest.mark.parametrize("arch, overrides", [
    ("llama", {}),
    ("qwen2", {}),
    ("gemma3_text", {"sliding_window": 4}),  # sliding and full-attention layers take different masks
    ("bert", {}),
    ("phi3", {}),
])
def test_replay_gives_the_grams_of_whole_forward_passes(arch, overrides):
    replayed, fast_calls = _run(arch, True, overrides)
    reference, slow_calls = _run(arch, False, overrides)
    for fast, slow in zip(replayed, reference):
        assert set(fast.tensors) == set(slow.tensors) and fast.tensors
        for name in slow.tensors:
            torch.testing.assert_close(fast.tensors[name], slow.tensors[name], rtol=1e-4, atol=1e-6)
    assert sum(fast_calls.values()) < sum(slow_calls.values())


def test_block_passes_grow_linearly_with_depth():
    _, calls = _run("llama", True, {}, layers=12)
    _, slow = _run("llama", False, {}, layers=12)
    # per model and batch: one whole pass that records the blocks' calls, one short check pass, two block passes
    # per later block (the merged block's output, then the next block's Grams) and one whole pass for lm_head;
    # whole passes for every block cost L(L+1)/2 + L
    assert sum(calls.values()) / 4 <= 4 * 12 + 2
    assert sum(slow.values()) / 4 >= 12 * 13 / 2 + 12


def test_block_of_names_the_layer_that_holds_the_modules():
    model = zoo.tiny("llama", seed=0)
    assert block_of(model, ["model.layers.1.self_attn.q_proj", "model.layers.1.mlp.up_proj"]) == ("model.layers", 1)
    assert block_of(model, ["model.layers.0.mlp.up_proj", "model.layers.1.mlp.up_proj"]) is None
    assert block_of(model, ["lm_head"]) is None


class _Block(torch.nn.Module):
    def __init__(self, first: bool) -> None:
        super().__init__()
        self.dense = torch.nn.Linear(4, 4)
        self.bias = torch.nn.Linear(4, 4) if first else None

    def forward(self, hidden, bias=None):
        if self.bias is not None:
            bias = self.bias(hidden)  # computed by the first block, handed to the next ones (as T5's position bias)
        return hidden + torch.tanh(self.dense(hidden) + bias), bias


class _Threaded(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = torch.nn.ModuleList([_Block(i == 0) for i in range(4)])

    def forward(self, x, attention_mask=None):
        bias = None
        for block in self.blocks:
            x, bias = block(x, bias)
        return x


def test_state_one_block_hands_the_next_is_not_replayed():
    from graftkit.merge.statistics.block_replay import BlockReplay
    from graftkit.merge.statistics.gram import GramRecorder

    torch.manual_seed(0)
    models = [_Threaded().eval(), _Threaded().eval()]
    originals = [{n: p.detach().clone() for n, p in m.named_parameters()} for m in models]
    batches = [{"x": torch.randn(2, 3, 4)}]
    replay = BlockReplay(models[0])
    with GramRecorder(models[0], {"blocks.0.dense"}) as recorder:
        replay.start(batches, "blocks", 0, recorder)
    assert not replay.supported
    groups = block_order(list(originals[0]), _layer_of, lambda _n: False)

    def merge_group(group, _statistics):
        return {n: (originals[0][n] + originals[1][n]) / 2 for n in group}

    def grams(replay: bool):
        for m, o in zip(models, originals):
            m.load_state_dict(o)
        return progressive_grams(models, [FixedBatches(batches)] * 2, [None, None], groups, merge_group, replay=replay)

    for fast, slow in zip(grams(True), grams(False)):
        for name in slow.tensors:
            torch.testing.assert_close(fast.tensors[name], slow.tensors[name])
