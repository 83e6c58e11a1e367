"""graft merge vs mergekit-yaml on SmolLM2-135M: whole-process wall time and peak RSS, same configs.

Inputs: SmolLM2-135M-Instruct from the zoo as the base, and two cheap "fine-tunes" made
by adding small deterministic perturbations (0.5% of each tensor's std, seeded) to it.
For each method (linear, slerp, ties, dare_ties, task_arithmetic, della) both tools run
the same YAML in a fresh process, alternating, ``--repeats`` times; the best wall time
and the peak RSS (ru_maxrss of the child) are kept. graftkit runs with ``--no-check``
so both do the same work; the cost of graftkit's post-merge check is measured once
separately. Goal: graftkit <= 0.5x mergekit's time and <= 0.5x its peak RSS.

    nice -n 10 timeout 3000 .venv/bin/python benchmarks/merge_vs_mergekit.py
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

from merge_measure import VENV_BIN, run_measured
from results_file import write_result

METHODS = {
    "linear": "models:\n  - model: {b}\n    parameters: {{weight: 0.4}}\n  - model: {f1}\n    parameters: {{weight: 0.3}}\n"
              "  - model: {f2}\n    parameters: {{weight: 0.3}}\n",
    "slerp": "base_model: {b}\nmodels:\n  - model: {b}\n  - model: {f1}\nparameters: {{t: 0.5}}\n",
    "ties": "base_model: {b}\nmodels:\n  - model: {f1}\n    parameters: {{weight: 0.5, density: 0.5}}\n"
            "  - model: {f2}\n    parameters: {{weight: 0.5, density: 0.5}}\n",
    "dare_ties": "base_model: {b}\nmodels:\n  - model: {f1}\n    parameters: {{weight: 0.5, density: 0.5}}\n"
                 "  - model: {f2}\n    parameters: {{weight: 0.5, density: 0.5}}\n",
    "task_arithmetic": "base_model: {b}\nmodels:\n  - model: {f1}\n    parameters: {{weight: 0.5}}\n"
                       "  - model: {f2}\n    parameters: {{weight: 0.5}}\n",
    "della": "base_model: {b}\nmodels:\n  - model: {f1}\n    parameters: {{weight: 0.5, density: 0.5, epsilon: 0.1}}\n"
             "  - model: {f2}\n    parameters: {{weight: 0.5, density: 0.5, epsilon: 0.1}}\n",
}


def make_finetunes(base: Path, work: Path) -> list[Path]:
    """Two perturbed copies of ``base`` (tokenizer and config copied)."""
    import torch
    from safetensors.torch import save_file

    from graftkit.io import Checkpoint

    out = []
    for i in (1, 2):
        folder = work / f"ft{i}"
        shutil.copytree(base, folder, ignore=shutil.ignore_patterns("*.safetensors", "*.index.json"))
        gen = torch.Generator().manual_seed(i)
        with Checkpoint.open(base) as ck:
            tensors = {}
            for name in ck.names():
                t = ck[name]
                if t.is_floating_point() and t.numel() > 1:
                    t = t + 0.005 * t.float().std() * torch.randn(t.shape, generator=gen, dtype=t.dtype)
                tensors[name] = t.contiguous()
        save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
        out.append(folder)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--methods", default=",".join(METHODS))
    args = parser.parse_args()

    from graftkit import zoo

    base = Path(zoo.get("SmolLM2-135M-Instruct"))
    work = Path(tempfile.mkdtemp(prefix="graftkit-bench-merge-"))
    try:
        f1, f2 = make_finetunes(base, work)
        results = {}
        for method in args.methods.split(","):
            cfg = work / f"{method}.yaml"
            cfg.write_text(f"merge_method: {method}\n" + METHODS[method].format(b=base, f1=f1, f2=f2))
            runs = {"graftkit": [], "mergekit": []}
            for _ in range(args.repeats):
                for tool in ("mergekit", "graftkit"):
                    out = work / f"out-{tool}"
                    shutil.rmtree(out, ignore_errors=True)
                    if tool == "graftkit":
                        cmd = [str(VENV_BIN / "graft"), "--quiet", "merge", str(cfg), str(out), "--no-check"]
                    else:
                        cmd = [str(VENV_BIN / "mergekit-yaml"), str(cfg), str(out), "--quiet"]
                    run = run_measured(cmd)
                    if run["rc"] != 0:
                        raise SystemExit(f"{tool} {method} failed:\n{run['tail']}")
                    runs[tool].append(run)
            best = {tool: {"seconds": min(r["seconds"] for r in rs), "peak_rss_gb": max(r["peak_rss_gb"] for r in rs)}
                    for tool, rs in runs.items()}
            best["time_ratio"] = round(best["graftkit"]["seconds"] / best["mergekit"]["seconds"], 3)
            best["rss_ratio"] = round(best["graftkit"]["peak_rss_gb"] / best["mergekit"]["peak_rss_gb"], 3)
            results[method] = best
            print(method, best, flush=True)
            record(results, args.repeats, None)  # after every method, so a cut-off run still reports
        out = work / "out-check"
        check = run_measured([str(VENV_BIN / "graft"), "merge", str(work / "linear.yaml"), str(out)])
        checked = {"seconds": check["seconds"], "peak_rss_gb": check["peak_rss_gb"], "report": check["tail"][-400:]}
        record(results, args.repeats, checked)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def record(results: dict, repeats: int, checked: dict | None) -> None:
    met = all(r["time_ratio"] <= 0.5 and r["rss_ratio"] <= 0.5 for r in results.values())
    missing = [m for m in METHODS if m not in results]
    write_result("merge_vs_mergekit", {
        "model": "SmolLM2-135M-Instruct (float32) + 2 perturbed copies",
        "repeats": repeats, "methods": results, "graftkit_linear_with_check": checked,
        "not_measured": missing,
        "goal": "graftkit <= 0.5x mergekit time and peak RSS for every method", "goal_met": met and not missing,
    }, "SmolLM2-135M, graft merge --no-check vs mergekit-yaml, wall time and peak RSS (ratio): " + ", ".join(
        f"{m} {r['graftkit']['seconds']:.1f}s vs {r['mergekit']['seconds']:.1f}s ({r['time_ratio']:.2f}x), "
        f"{r['graftkit']['peak_rss_gb']:.2f} vs {r['mergekit']['peak_rss_gb']:.2f} GB ({r['rss_ratio']:.2f}x)"
        for m, r in results.items())
        + (f"; not measured: {', '.join(missing)}" if missing else "")
        + f"; goal <= 0.5x both for every method: {'met' if met and not missing else 'NOT met'}"
        + (f"; with the post-merge check, linear takes {checked['seconds']:.1f}s in all" if checked else "")
        + f" (2 cores, load average {os.getloadavg()[0]:.1f} at the end of the run)")


if __name__ == "__main__":
    main()
