"""Evolve scaling on Ray: wall time of N evaluations with 1 and 2 workers, a multi-node
local cluster run (ray.cluster_utils.Cluster), and distributed merge == local merge.

Candidates: linear merges of two cached MiniLM-L6 SST-2 experts (seeds 0 and 1 of the
merge_quality benchmark; same 2-class head), scored by graftkit.data accuracy on a
seeded subset of the SST-2 validation split. Writes benchmarks/results/evolve_scaling.json
and its line in benchmarks/RESULTS.md.

    nice -n 10 timeout 1200 .venv/bin/python benchmarks/evolve_scaling.py --evals 32
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path.home() / ".cache" / "graftkit" / "bench" / "merge_quality"
KEY = "evolve_scaling"
for k, v in {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}.items():
    os.environ.setdefault(k, v)


def config(evals: int, workers: int, examples: int) -> dict:
    experts = [str(CACHE / f"sst2-seed{s}-steps60-len32") for s in (0, 1)]
    return {"models": experts, "method": "linear", "layer_groups": 2,
            "objective": {"kind": "accuracy", "tasks": [{"dataset": "sst2", "split": "validation", "examples": examples}]},
            "search": {"optimizer": "random", "budget": evals, "popsize": max(2, workers * 2), "seed": 0, "workers": workers}}


def timed_search(evals: int, workers: int, examples: int, out: Path) -> dict:
    import ray

    from graftkit.evolve.run import evolve

    start = time.perf_counter()
    result = evolve(config(evals, workers, examples), out, final_merge=False)
    wall = time.perf_counter() - start
    eval_s = sum(e.seconds for e in result.history)
    return {"workers": workers, "evaluations": len(result.history), "wall_s": round(wall, 1),
            "sum_eval_s": round(eval_s, 1), "best_fitness": result.best.fitness,
            "ray_initialized": ray.is_initialized()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--evals", type=int, default=32)
    ap.add_argument("--examples", type=int, default=64)
    ap.add_argument("--cluster-evals", type=int, default=6)
    args = ap.parse_args()
    import ray

    from graftkit.evolve.workers import init_ray

    tmp = Path(tempfile.mkdtemp(prefix="evolve_scaling_"))
    runs = []
    for workers in (1, 2):
        init_ray(num_cpus=2)  # started before the clock, as a long-lived session would be
        runs.append(timed_search(args.evals, workers, args.examples, tmp / f"w{workers}"))
        ray.shutdown()
        print(runs[-1], flush=True)

    # multi-node: a head and two worker nodes, all on loopback, joined via --address
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    for name in ("node_a", "node_b"):
        cluster.add_node(num_cpus=1, resources={name: 1})
    try:
        from graftkit.evolve.run import evolve

        ray.init(address=cluster.address, log_to_driver=False)
        nodes = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
        start = time.perf_counter()
        res = evolve(config(args.cluster_evals, 2, args.examples), tmp / "cluster", final_merge=False)
        cluster_run = {"nodes": len(nodes), "evaluations": len(res.history), "wall_s": round(time.perf_counter() - start, 1),
                       "best_fitness": res.best.fitness}
        # distributed merge on the cluster == local merge
        from graftkit.evolve.distributed import distributed_merge
        from graftkit.io import Checkpoint
        from graftkit.merge import merge

        recipe = res.best_config
        t0 = time.perf_counter()
        merge(recipe, tmp / "local", check=False)
        local_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        distributed_merge(recipe, tmp / "dist", workers=2, chunk_bytes=8 * 1024**2)
        dist_s = time.perf_counter() - t0
        a, b = Checkpoint.open(tmp / "local"), Checkpoint.open(tmp / "dist")
        identical = a.names() == b.names() and all(torch.equal(a[n], b[n]) for n in a.names())
        cluster_run.update(distributed_merge_identical=identical, tensors=len(a.names()),
                           local_merge_s=round(local_s, 1), distributed_merge_s=round(dist_s, 1))
    finally:
        ray.shutdown()
        cluster.shutdown()
    print(cluster_run, flush=True)
    ratio = runs[0]["wall_s"] / runs[1]["wall_s"]
    result = {"benchmark": KEY, "runs": runs, "speedup_2_over_1": round(ratio, 2), "cluster": cluster_run,
              "config": {"evals": args.evals, "examples": args.examples, "cpu_cores": os.cpu_count(),
                         "load_avg": os.getloadavg()}}
    (ROOT / "benchmarks" / "results" / f"{KEY}.json").write_text(json.dumps(result, indent=2))
    line = (f"- **{KEY}** (linear merges of 2 MiniLM-L6 SST-2 experts, accuracy on {args.examples} SST-2 validation "
            f"examples; 2 shared cores, load {os.getloadavg()[0]:.0f}): {args.evals} evaluations 1 worker "
            f"{runs[0]['wall_s']} s, 2 workers {runs[1]['wall_s']} s (speedup {ratio:.2f}x); local Ray cluster of "
            f"{cluster_run['nodes']} nodes: {cluster_run['evaluations']} evaluations in {cluster_run['wall_s']} s; "
            f"distributed merge == local merge: {cluster_run['distributed_merge_identical']} "
            f"({cluster_run['tensors']} tensors)\n")
    path = ROOT / "benchmarks" / "RESULTS.md"
    lines = [l for l in path.read_text().splitlines(keepends=True) if f"**{KEY}**" not in l]
    path.write_text("".join(lines) + line)


if __name__ == "__main__":
    main()
