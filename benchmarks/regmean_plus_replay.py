"""RegMean++ Grams by block replay against whole forward passes per block, on SmolLM2-135M (30 blocks).

RegMean++ takes the Grams of block l over the merged blocks before it. The reference
procedure runs every calibration batch through the model up to block l, for every l:
L(L+1)/2 block passes. graftkit keeps each batch's input of the current block and steps
it through the newly merged block (about 2L passes). Both run here in one process on the
same two models (SmolLM2-135M-Instruct and a copy with 1% relative noise on every
matrix, standing in for a fine-tune), the same calibration batches (seeded random token
ids) and the same block merges (the mean of the two models, so the merge's own cost is
equal and small); the Grams must agree, and the ratio of wall times is the result.

Run (quiet machine): nice -n 10 timeout 1800 .venv/bin/python benchmarks/regmean_plus_replay.py
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from results_file import write_result

from graftkit import zoo
from graftkit.io.architecture import architecture_from
from graftkit.merge.layers import is_pre_layer
from graftkit.merge.statistics.progressive import block_order, progressive_grams


class FixedBatches:
    """A calibration set of given token batches."""

    def __init__(self, batches: list[dict[str, torch.Tensor]]) -> None:
        self._batches = batches

    def batches(self, _tokenizer, batch_size: int, max_length: int):
        return iter(self._batches)


def models_pair(path: str) -> list[torch.nn.Module]:
    from transformers import AutoModelForCausalLM

    first = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    second = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in second.parameters():
            if p.dim() == 2:
                p.add_(0.01 * p.std() * torch.randn(p.shape, generator=gen))
    return [first, second]


def run(path: str, batches: list[dict[str, torch.Tensor]], replay: bool) -> tuple[float, list, int]:
    models = models_pair(path)
    originals = [{n: p.detach().clone() for n, p in m.named_parameters()} for m in models]
    passes = [0]
    for m in models:
        for block in m.get_submodule("model.layers"):
            block.register_forward_pre_hook(lambda *_: passes.__setitem__(0, passes[0] + 1))
    architecture = architecture_from(list(originals[0]), models[0].config.to_dict(), None)
    groups = block_order(list(originals[0]), architecture.layer_of, is_pre_layer)

    def merge_group(names, _statistics):
        return {n: (originals[0][n] + originals[1][n]) / 2 for n in names}

    calibrations = [FixedBatches(batches), FixedBatches(batches)]
    start = time.perf_counter()
    stats = progressive_grams(models, calibrations, [None, None], groups, merge_group, replay=replay)
    seconds = time.perf_counter() - start
    return seconds, stats, passes[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sequences", type=int, default=8, help="calibration sequences")
    ap.add_argument("--tokens", type=int, default=128, help="tokens per sequence")
    ap.add_argument("--batch-size", type=int, default=4)
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("GRAFTKIT_BENCH_THREADS", "1")))
    path = str(zoo.get("SmolLM2-135M-Instruct"))
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(10, 49000, (args.sequences, args.tokens), generator=gen)
    batches = [{"input_ids": ids[i:i + args.batch_size], "attention_mask": torch.ones_like(ids[i:i + args.batch_size])}
               for i in range(0, args.sequences, args.batch_size)]
    fast_s, fast, fast_passes = run(path, batches, replay=True)
    print(f"replay: {fast_s:.1f}s, {fast_passes} block passes", flush=True)
    slow_s, slow, slow_passes = run(path, batches, replay=False)
    print(f"whole passes: {slow_s:.1f}s, {slow_passes} block passes", flush=True)
    worst = 0.0
    for a, b in zip(fast, slow):
        for name, gram in b.tensors.items():
            worst = max(worst, float((a.tensors[name] - gram).abs().max() / gram.abs().max().clamp_min(1e-12)))
    from transformers import AutoConfig

    layers = AutoConfig.from_pretrained(path).num_hidden_layers
    payload = {
        "model": "SmolLM2-135M-Instruct (float32) and a copy with 1% relative noise per matrix",
        "blocks": layers,
        "calibration": {"sequences": args.sequences, "tokens": args.tokens, "batch_size": args.batch_size,
                        "text": "seeded random token ids"},
        "replay": {"seconds": round(fast_s, 2), "block_passes": fast_passes},
        "whole_passes": {"seconds": round(slow_s, 2), "block_passes": slow_passes},
        "speedup": round(slow_s / fast_s, 2),
        "max_relative_gram_difference": worst,
        "torch_threads": torch.get_num_threads(),
    }
    line = (f"RegMean++ Grams of SmolLM2-135M ({layers} blocks, 2 models, {args.sequences}x{args.tokens} tokens): "
            f"block replay {fast_s:.1f}s ({fast_passes} block passes) vs whole passes per block {slow_s:.1f}s "
            f"({slow_passes}): x{slow_s / fast_s:.1f}; largest relative Gram difference {worst:.1e}")
    write_result("regmean_plus_replay", payload, line)
    print(line)


if __name__ == "__main__":
    main()
