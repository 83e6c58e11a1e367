"""Fused forward latency vs the sum of the experts' own forward latencies (goal: ratio <= 1.1).

Two SmolLM2-135M experts (the zoo model twice, under two names: same cost as two
fine-tunes), every one of the 30 layers fused with both experts active (dense router), so
the fused model runs exactly the layers the two experts run, plus adapters, routers and
the per-expert context pass. Timings interleave the three models, median of REPS runs,
one thread each.
"""

from __future__ import annotations

import statistics
import sys
import time

import torch

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
from results_file import write_result  # noqa: E402

from graftkit import zoo  # noqa: E402
from graftkit.compose import MoLRuntime  # noqa: E402

REPS = 3
TOKENS = 64


def timed(fn) -> float:
    start = time.perf_counter()
    with torch.inference_mode():
        fn()
    return time.perf_counter() - start


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)  # on a shared, loaded machine thread hand-offs dominate; the same for every model timed
    folder = str(zoo.get("SmolLM2-135M-Instruct"))
    results = {}
    for adapter, options in (("bottleneck", {"rank": 16}), ("linear", {})):
        config = {"models": [{"name": "a", "path": folder}, {"name": "b", "path": folder}], "max_layers": 30,
                  "adapter_type": adapter, "adapter": options, "router_type": "token", "router": {"top_k": None}}
        runtime = MoLRuntime(config).eval()
        a = runtime.experts["a"].model
        b = runtime.experts["b"].model  # a second copy in memory, as two experts would be
        ids = torch.randint(0, 49152, (1, TOKENS))
        mask = torch.ones_like(ids)
        for _ in range(1):  # warm-up
            timed(lambda: runtime(ids, mask)); timed(lambda: a(input_ids=ids, attention_mask=mask))
        t_fused, t_a, t_b = [], [], []
        for _ in range(REPS):
            t_a.append(timed(lambda: a(input_ids=ids, attention_mask=mask)))
            t_fused.append(timed(lambda: runtime(ids, mask)))
            t_b.append(timed(lambda: b(input_ids=ids, attention_mask=mask)))
        fused, sa, sb = statistics.median(t_fused), statistics.median(t_a), statistics.median(t_b)
        results[adapter] = {"fused_s": round(fused, 4), "expert_a_s": round(sa, 4), "expert_b_s": round(sb, 4),
                            "ratio": round(fused / (sa + sb), 3), "runs": {"fused": t_fused, "a": t_a, "b": t_b},
                            "trainable_params": sum(p.numel() for g in runtime.trainable_parameters().values() for p in g)}
        print(adapter, results[adapter]["ratio"], fused, sa, sb, flush=True)
        del runtime
    goal = 1.1
    best = results["bottleneck"]["ratio"]
    line = (f"SmolLM2-135M x2, 30 fused layers, both experts active, {TOKENS} tokens, median of {REPS}: fused / (A + B) = "
            f"{best:.3f} with bottleneck-16 adapters ({results['bottleneck']['fused_s']:.3f}s vs "
            f"{results['bottleneck']['expert_a_s']:.3f}+{results['bottleneck']['expert_b_s']:.3f}s), "
            f"{results['linear']['ratio']:.3f} with linear adapters; goal <= {goal}: {'met' if best <= goal else 'NOT met'} "
            f"(shared 2-core machine, noisy)")
    write_result("compose_overhead", {"tokens": TOKENS, "reps": REPS, "goal": goal, "results": results}, line)
    print(line)


if __name__ == "__main__":
    main()
