"""Genome benchmark: trace + signature of SmolLM2-135M-Instruct and gemma-3-270m from their
checkpoints, cold (empty cache) and cached, each in a fresh process, without reading a
single weight (peak RSS reported). Reference on the same meta model: torch.export with
run_decompositions (the other standard way to reach a canonical ATen graph).

Goal: <= 10 s cold and <= 0.5 s cached per model.
Writes benchmarks/results/genome.json and its line in benchmarks/RESULTS.md.

Usage: .venv/bin/python benchmarks/genome.py [--no-export]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODELS = ["SmolLM2-135M-Instruct", "gemma-3-270m"]
GOAL_COLD, GOAL_CACHED = 10.0, 0.5

WORKER = r"""
import json, resource, sys, time
t0 = time.perf_counter()
mode, path = sys.argv[1], sys.argv[2]
if mode == "export":
    import torch
    from graftkit.genome.checkpoint import _hf_config
    from graftkit.genome.hf import meta_model
    from graftkit.io import Checkpoint
    with Checkpoint.open(path) as ck:
        model = meta_model(_hf_config(ck.config), (ck.config.get("architectures") or ["AutoModel"])[0])
    t1 = time.perf_counter()
    ids = torch.zeros(2, 5, dtype=torch.long, device="meta")
    batch, seq = torch.export.Dim("batch", min=1, max=64), torch.export.Dim("seq", min=2, max=512)
    try:
        ep = torch.export.export(model, (), {"input_ids": ids, "use_cache": False},
                                 dynamic_shapes={"input_ids": {0: batch, 1: seq}, "use_cache": None}, strict=False)
        ep = ep.run_decompositions()
        nodes, error = len(ep.graph.nodes), None
    except Exception as exc:
        nodes, error = None, f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    call = time.perf_counter() - t1
    out = {"nodes": nodes, "error": error}
else:
    import graftkit.genome.checkpoint as gc
    t1 = time.perf_counter()
    result = gc.checkpoint_genome(path)
    call = time.perf_counter() - t1
    out = {"signature": result.signature, "cached": result.cached, "nodes": len(result.genome.nodes)}
out.update(call_s=call, process_s=time.perf_counter() - t0,
           peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
print("RESULT " + json.dumps(out))
"""


def run(mode: str, path: Path, cache: Path, timeout: int = 600) -> dict:
    env = dict(os.environ, GRAFTKIT_CACHE=str(cache), GRAFTKIT_QUIET="1", HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-c", WORKER, mode, str(path)], env=env, capture_output=True,
                          text=True, timeout=timeout)
    line = next((l for l in proc.stdout.splitlines() if l.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"{mode} {path} failed:\n{proc.stderr[-2000:]}")
    return json.loads(line[len("RESULT "):])


def write_results(name: str, data: dict, line: str) -> None:
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")
    md = HERE / "RESULTS.md"
    header = "# Benchmark results\n\nOne line per benchmark; each benchmark replaces its own line on rerun.\n\n"
    lines = md.read_text().splitlines() if md.exists() else header.rstrip("\n").splitlines() + [""]
    lines = [l for l in lines if not l.startswith(f"- **{name}**")]
    lines.append(f"- **{name}**: {line}")
    md.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-export", action="store_true", help="skip the torch.export reference")
    args = parser.parse_args()
    from graftkit import zoo

    old_file = HERE / "results" / "genome.json"
    previous = json.loads(old_file.read_text()) if old_file.is_file() else {}
    results = {"goal": {"cold_s": GOAL_COLD, "cached_s": GOAL_CACHED}, "cpus": os.cpu_count(),
               "load_average": os.getloadavg(), "models": {}}
    parts = []
    for name in MODELS:
        path = zoo.get(name, install=False)
        with tempfile.TemporaryDirectory() as cache:
            cold = run("genome", path, Path(cache))
            cached = run("genome", path, Path(cache))
        assert not cold["cached"] and cached["cached"] and cold["signature"] == cached["signature"]
        entry = {"cold": cold, "cached": cached}
        if not args.no_export:
            try:
                entry["torch_export_run_decompositions"] = run("export", path, Path(tempfile.gettempdir()), timeout=300)
            except subprocess.TimeoutExpired:
                entry["torch_export_run_decompositions"] = {"error": "did not finish within 300 s"}
            except RuntimeError as exc:
                entry["torch_export_run_decompositions"] = {"error": str(exc)[-300:]}
        elif name in previous.get("models", {}) and "torch_export_run_decompositions" in previous["models"][name]:
            # --no-export keeps the reference measured by an earlier run, marked as such
            entry["torch_export_run_decompositions"] = {**previous["models"][name]["torch_export_run_decompositions"],
                                                        "from_earlier_run": True}
        results["models"][name] = entry
        met = cold["call_s"] <= GOAL_COLD and cached["call_s"] <= GOAL_CACHED
        ref = entry.get("torch_export_run_decompositions", {})
        earlier = " (earlier run)" if ref.get("from_earlier_run") else ""
        ref_text = (f", torch.export+decomp {ref['call_s']:.1f}s{earlier}" if ref.get("nodes") else
                    f", torch.export+decomp: {ref['error'][:40]}{earlier}" if ref else "")
        parts.append(f"{name} cold {cold['call_s']:.1f}s ({cold['process_s']:.1f}s with imports, "
                     f"{cold['peak_rss_mb']:.0f} MB peak) / cached {cached['call_s']:.2f}s "
                     f"({cached['peak_rss_mb']:.0f} MB){ref_text}: {'met' if met else 'NOT met'}")
        print(parts[-1], flush=True)
    load = results["load_average"][0]
    line = (f"trace + signature from checkpoint, no weights read (goal <= {GOAL_COLD:.0f}s cold, "
            f"<= {GOAL_CACHED}s cached; load average {load:.1f} on {results['cpus']} cores): " + "; ".join(parts))
    write_results("genome", results, line)


if __name__ == "__main__":
    main()
