"""Quality (a) with SmolLM2-135M frozen: hybrid (SSD branches in layers 10 and 20, anchored
blend with gate bias 0) vs LoRA (peft, q_proj and v_proj, rank chosen for the same trainable
count) vs the base, held-out tiny-shakespeare perplexity after equal training (same windows,
steps, lr). The hybrid's gate means per input category (monitor.PROBE_TEXTS plus held-out
Shakespeare) are recorded. Part (b), associative recall, is benchmarks/hybrid_recall.py.
Goal: hybrid within 2% of LoRA.

Run: nice -n 10 timeout 3600 .venv/bin/python benchmarks/hybrid_quality.py [STEPS]
(GRAFTKIT_BENCH_THREADS sets torch threads; default 2)
"""

from __future__ import annotations

import os
import sys
import time

import torch

from hybrid_common import write

from graftkit.data import load_dataset
from graftkit.data.evaluate import perplexity
from graftkit.hybrid import HybridConfig, HybridModel, SSMConfig, load_base
from graftkit.hybrid.monitor import PROBE_TEXTS, gate_statistics
from graftkit.hybrid.trainer import TrainSettings, train_loop


def main() -> None:
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    torch.set_num_threads(int(os.environ.get("GRAFTKIT_BENCH_THREADS", "2")))
    torch.manual_seed(0)
    settings = TrainSettings(steps=steps, seq_len=128, batch_size=2, lr=1e-3, seed=0)
    ds = load_dataset("tiny_shakespeare")
    eval_tokens = 2048
    start = time.perf_counter()

    base, tok = load_base("SmolLM2-135M-Instruct")
    ids = torch.tensor(tok(ds.train.text[:400_000]).input_ids)
    base_ppl = perplexity(base, ds.validation.text, tok, window=256, max_tokens=eval_tokens).perplexity

    config = HybridConfig(layers=[10, 20], ssm=SSMConfig(kind="ssd", d_state=16, expand=1, head_dim=64), gate_bias=0.0)
    hybrid = HybridModel(base, config)
    counts = hybrid.parameter_counts()
    hybrid_losses = train_loop(hybrid, hybrid.trainable_parameters(), ids, settings, "hybrid")
    hybrid_ppl = perplexity(hybrid, ds.validation.text, tok, window=256, max_tokens=eval_tokens).perplexity
    probes = {**PROBE_TEXTS, "shakespeare": [ds.validation.text[i:i + 400] for i in (0, 4000, 8000)]}
    gates = gate_statistics(hybrid, tok, probes, max_length=128)
    del hybrid, base

    from peft import LoraConfig, get_peft_model

    base, _ = load_base("SmolLM2-135M-Instruct")
    per_rank = sum((m.in_features + m.out_features) for n, m in base.named_modules() if n.endswith(("q_proj", "v_proj")))
    rank = max(1, round(counts["hybrid"] / per_rank))
    lora = get_peft_model(base, LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=["q_proj", "v_proj"], lora_dropout=0.0))
    lora_params = [p for p in lora.parameters() if p.requires_grad]
    lora_losses = train_loop(lora, lora_params, ids, settings, "lora")
    lora_ppl = perplexity(lora, ds.validation.text, tok, window=256, max_tokens=eval_tokens).perplexity

    rel = hybrid_ppl / lora_ppl - 1
    write("hybrid_quality", {"settings": {**settings.__dict__, "eval_tokens": eval_tokens, "window": 256},
                             "trainable": {"hybrid": counts["hybrid"], "lora": sum(p.numel() for p in lora_params), "lora_rank": rank},
                             "perplexity": {"base": base_ppl, "hybrid": hybrid_ppl, "lora": lora_ppl},
                             "hybrid_vs_lora": rel, "seconds": time.perf_counter() - start,
                             "hybrid": config.to_dict(), "trainable_fraction": counts["trainable_fraction"],
                             "gate_means_per_category": gates["categories"], "gate_layers": gates["layers"],
                             "loss_first_last10": {"hybrid": [sum(hybrid_losses[:10]) / 10, sum(hybrid_losses[-10:]) / 10],
                                                   "lora": [sum(lora_losses[:10]) / 10, sum(lora_losses[-10:]) / 10]}},
          f"SmolLM2-135M-Instruct frozen, tiny-shakespeare held-out perplexity ({eval_tokens} tokens) after {steps} steps x 2 x 128 "
          f"tokens, lr {settings.lr}: base {base_ppl:.2f}, hybrid SSD layers 10, 20, gate bias 0 ({counts['hybrid']:,} trainable, "
          f"{100 * counts['trainable_fraction']:.2f}%) {hybrid_ppl:.2f}, LoRA r={rank} "
          f"({sum(p.numel() for p in lora_params):,}) {lora_ppl:.2f}; hybrid vs LoRA {100 * rel:+.1f}%, goal within 2%: "
          f"{'met' if rel <= 0.02 else 'NOT met'}; gate means per category: "
          + ", ".join(f"{c} " + "/".join(f"{v:.2f}" for v in d.values()) for c, d in gates["categories"].items())
          + " (layers 10/20); associative recall: see hybrid_recall")


if __name__ == "__main__":
    main()
