"""Evolved merge vs the best hand-tuned merge: three MiniLM-L6 experts (SST-2, AG News, TREC).

The experts are those of benchmarks/merge_quality.py (all-MiniLM-L6-v2 fine-tuned as
*ForSequenceClassification models, each task with its own head; read from its cache,
never retrained). Their encoders are exported once as BertModel folders (the layout of
the base, all-MiniLM-L6-v2) so that `graft merge` can merge them with the base.

The search is graftkit.evolve's own machinery: CMA-ES, one Ray actor on a loopback-only
local Ray, candidates merged in memory into a resident encoder. Spaces (``--space``):

* ``regmean_plus`` (default) and ``regmean``: that method as merge_quality runs it (each
  expert's Gram matrices on ``--calibration`` train examples of its own task, per-model
  ``statistics`` in the recipe; RegMean++ takes each block's Grams over the merged earlier
  blocks, so every candidate recomputes them), with per-layer-group genes for each
  expert's weight (range 0..2) and for ``alpha`` (range 0.5..1), plus the genes of
  ``--filters`` (default: the pooler's own alpha); the search starts at that method's
  hand-tuned recipe (weights 1, merge_quality's alpha for that seed), which CMA-ES scores
  first. So the space holds the hand-tuned method.
* ``task_arithmetic``: per-layer-group, per-expert task-arithmetic weights (the
  layer-wise merging of AdaMerging and Sakana's parameter space), started at the centre.

The fitness is the mean accuracy over the three tasks on ``--search-val`` validation
examples each, every task scored with its own expert's head (the objective's ``head``);
the search never sees a test example.

The selected recipe (``OUT/merged``, written by `graft merge` from the best recipe) is
then scored on the test splits with merge_quality's own evaluator (same test subsets,
same max length), next to every hand-tuned method of merge_quality, whose settings were
chosen on validation there. The hand-tuned numbers are read from
benchmarks/results/merge_quality.json, now or in an earlier commit, when its settings equal
this run's; methods missing there (added to merge_quality's grid since) are computed with
merge_quality.run_seed and cached (see ``hand_tuned``). The best method's test accuracy is
recomputed here with merge_quality's code as a check.

Goal (issue 9): evolved >= best hand-tuned + 1 point mean test accuracy.

    nice -n 10 timeout 5400 .venv/bin/python benchmarks/evolve_merge.py --seeds 0,1,2 --search-val 300

Each seed's row is also kept in its run folder; ``--reuse`` takes finished rows from there
(so seeds can run in separate processes and be combined afterwards).

Writes benchmarks/results/evolve_merge.json, evolve_merge_fitness_seed*.png,
evolve_merge_recipe_seed*.yaml and its line in benchmarks/RESULTS.md (``--report``
rewrites the line from the JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import merge_quality as mq  # noqa: E402  (the three-expert setup, evaluator and hand-tuned baselines)

KEY = "evolve_merge"
CACHE = mq.CACHE.parent / "evolve_merge"
RESULTS = ROOT / "benchmarks" / "results"
# settings of merge_quality that its hand-tuned numbers depend on
BASELINE_KEYS = ("steps", "batch_size", "max_length", "lr", "calibration", "val_cap", "test_cap")
for k, v in {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}.items():
    os.environ.setdefault(k, v)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def expert_dir(task: str, seed: int, args) -> Path:
    path = mq.CACHE / f"{task}-seed{seed}-steps{args.steps}-len{args.max_length}"
    if not (path / "config.json").is_file():
        raise SystemExit(f"expert {path} is not cached: run benchmarks/merge_quality.py --seeds {seed} first")
    return path


def export_encoder(expert: Path, base: Path, out: Path) -> Path:
    """The expert's encoder as a folder shaped like ``base`` (BertModel names, base's config and tokenizer).

    Tensors the classifier model does not keep (the ``position_ids`` buffer) are the base's.
    """
    from safetensors.torch import load_file, save_file

    if (out / "model.safetensors").is_file():
        return out
    expert_state = load_file(str(expert / "model.safetensors"))
    base_state = load_file(str(base / "model.safetensors"))
    state = {name: expert_state.get(f"bert.{name}", value).contiguous() for name, value in base_state.items()}
    missing = [n for n in base_state if f"bert.{n}" not in expert_state and n != "embeddings.position_ids"]
    if missing:
        raise SystemExit(f"{expert} lacks encoder tensors {missing[:3]}")
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        if (base / name).is_file():
            shutil.copy(base / name, tmp / name)
    save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    tmp.rename(out)
    return out


def statistics_setting(task: str, seed: int, args) -> dict:
    """merge_quality's Gram setting for the expert of ``task``: its own train examples, same seed and length."""
    return {"dataset": task, "split": "train", "examples": args.calibration, "seed": seed,
            "max_length": args.max_length, "batch_size": 16}


def evolve_config(encoders: list[Path], heads: list[Path], base: Path, args, seed: int, start: dict) -> dict:
    common = {
        "base_model": str(base), "space": "parameters", "layer_groups": args.layer_groups, "dtype": "float32",
        "objective": {"kind": "accuracy", "tasks": [
            {"dataset": t, "split": "validation", "examples": args.search_val or None, "seed": 0,
             "max_length": args.max_length, "batch_size": 128, "head": str(h)} for t, h in zip(mq.TASKS, heads)]},
        "search": {"optimizer": "cma", "budget": args.budget, "popsize": args.popsize, "sigma": args.sigma,
                   "seed": seed, "workers": args.workers, "retries": 2},
    }
    if args.space == "task_arithmetic":
        return {**common, "models": [str(e) for e in encoders], "method": "task_arithmetic",
                "ranges": {"weight": list(args.weight_range)}}
    return {**common, "method": args.space, "global_params": ["alpha"],
            "models": [{"model": str(e), "statistics": statistics_setting(t, seed, args)}
                       for e, t in zip(encoders, mq.TASKS)],
            "ranges": {"weight": list(args.regmean_weight_range), "alpha": list(args.alpha_range)},
            "start": start, **({"filters": parse_filters(args.filters)} if args.filters else {})}


def parse_filters(text: str) -> dict[str, list[str]]:
    """``pooler:alpha,classifier:weight+alpha`` -> {"pooler": ["alpha"], "classifier": ["weight", "alpha"]}."""
    return {name: params.split("+") for name, _, params in (item.partition(":") for item in text.split(",") if item)}


def merged_encoder(folder: Path) -> dict[str, torch.Tensor]:
    """The merged BertModel folder as merge_quality's encoder dict (``bert.`` names, float tensors)."""
    from safetensors.torch import load_file

    return {f"bert.{k}": v for k, v in load_file(str(folder / "model.safetensors")).items() if v.is_floating_point()}


def _stored_row(seed: int, args, text: str) -> dict | None:
    """The seed's row of a merge_quality JSON run at this benchmark's settings, holding only the methods whose
    grid equals today's merge_quality.GRIDS (others are recomputed), else None."""
    stored = json.loads(text)
    config = stored.get("config", {})
    if not all(config.get(k) == getattr(args, k) for k in BASELINE_KEYS) or config.get("head", "pooler") != "pooler" \
            or config.get("pooler", "merged") != "merged":
        return None
    grids = stored.get("grids") or {}
    row = next((r for r in stored["per_seed"] if r["seed"] == seed), None)
    if row is None:
        return None
    keep = {m: r for m, r in row["methods"].items() if m == "pretrained" or grids.get(m) == mq.GRIDS.get(m)}
    return {**row, "methods": keep}


def hand_tuned(seed: int, args, base: Path) -> tuple[dict, dict[str, str]]:
    """merge_quality's per-seed result for this run's settings, every method of today's merge_quality.GRIDS.

    Rows come from benchmarks/results/merge_quality.json, now or in an earlier commit (the file is rewritten
    when merge_quality runs at other settings), or from this benchmark's cache of rows it completed; methods
    no stored row has (a method added to merge_quality since, or a changed grid) are computed with
    merge_quality.run_seed itself (which fine-tunes the seed's experts if they are not cached) and the
    completed row is cached. Returns the row and, per method, where its numbers come from.
    """
    import subprocess

    key = "-".join(f"{k}{getattr(args, k)}" for k in BASELINE_KEYS)
    cached = CACHE / "baselines" / f"seed{seed}-{key}.json"
    candidates: list[tuple[str, str]] = []
    if cached.is_file():
        candidates.append(("recomputed with merge_quality.run_seed (this benchmark's cache)", cached.read_text()))
    path = RESULTS / "merge_quality.json"
    if path.is_file():
        candidates.append(("benchmarks/results/merge_quality.json", path.read_text()))
    rel = path.relative_to(ROOT).as_posix()
    commits = subprocess.run(["git", "log", "--format=%h", "--", rel], cwd=ROOT, capture_output=True, text=True).stdout.split()
    for commit in commits:
        shown = subprocess.run(["git", "show", f"{commit}:{rel}"], cwd=ROOT, capture_output=True, text=True)
        if shown.returncode == 0:
            candidates.append((f"benchmarks/results/merge_quality.json at commit {commit}", shown.stdout))
    row, sources = None, {}
    for source, text in candidates:
        found = _stored_row(seed, args, text)
        if found is None:
            continue
        if row is None:
            row = found
        elif found["expert_test"] != row["expert_test"]:
            continue  # other experts (re-fine-tuned): not comparable
        for method, r in found["methods"].items():
            if method not in row["methods"] or method not in sources:
                row["methods"][method] = r
                sources.setdefault(method, source)
    missing = [m for m in mq.GRIDS if row is None or m not in row["methods"]]
    if missing:
        log(f"hand-tuned baselines for seed {seed}: computing {missing} with merge_quality.run_seed")
        mq_args = SimpleNamespace(**{k: getattr(args, k) for k in BASELINE_KEYS}, methods=missing,
                                  head="pooler", pooler="merged", device="cpu")
        fresh = mq.run_seed(seed, mq_args, base)
        if row is not None and any(abs(fresh["expert_test"][t] - row["expert_test"][t]) > 1e-6 for t in mq.TASKS):
            raise SystemExit(f"seed {seed}: the experts' test accuracy {fresh['expert_test']} differs from the stored "
                             f"row's {row['expert_test']}: the cached experts changed; delete {cached} and rerun")
        if row is None:
            row = fresh
        else:
            row["methods"].update({m: fresh["methods"][m] for m in missing})
        sources.update({m: "recomputed with merge_quality.run_seed" for m in missing})
        row["methods"]["pretrained"] = row["methods"].get("pretrained", fresh["methods"]["pretrained"])
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.write_text(json.dumps({"config": {**{k: getattr(args, k) for k in BASELINE_KEYS}, "head": "pooler",
                                                 "methods": list(mq.GRIDS)},
                                      "grids": mq.GRIDS, "per_seed": [row]}, indent=2))
    row["methods"] = {m: row["methods"][m] for m in ["pretrained", *mq.GRIDS]}
    return row, {m: sources.get(m, "recomputed with merge_quality.run_seed") for m in mq.GRIDS}


def recheck_best(row: dict, method: str, evaluator, experts: dict[str, Path], base: Path, seed: int, args) -> dict:
    """The best hand-tuned method's test accuracy recomputed with merge_quality's code (same setting)."""
    from transformers import AutoModelForSequenceClassification

    from graftkit.merge.statistics import calibration_set, statistics_for

    stats = None
    kind = {"fisher": "fisher", "regmean": "gram"}.get(method)
    if kind:
        stats = [statistics_for(kind, experts[t], calibration_set(t, split="train", examples=args.calibration, seed=seed),
                                batch_size=16, max_length=args.max_length, cache_dir=mq.CACHE / "statistics")
                 for t in mq.TASKS]
    pretrained = mq.encoder_of(AutoModelForSequenceClassification.from_pretrained(base, num_labels=2).state_dict())
    expert_encoders = [mq.encoder_of(AutoModelForSequenceClassification.from_pretrained(experts[t]).state_dict())
                       for t in mq.TASKS]
    setting = row["methods"][method]["setting"]
    if method == "regmean_plus":  # Grams over the merged earlier blocks, as merge_quality computes them
        calibrations = [calibration_set(t, split="train", examples=args.calibration, seed=seed) for t in mq.TASKS]
        stats = mq.progressive_statistics(setting, pretrained, expert_encoders, evaluator, calibrations, args, seed)
    merged = mq.merge_encoders(method, setting, pretrained, expert_encoders, stats, seed)
    return {t: evaluator.accuracy(merged, t, "test", args.test_cap or None) for t in mq.TASKS}


def run_seed(seed: int, args, base: Path) -> dict:
    from graftkit.evolve.run import evolve
    from graftkit.merge.config import load_config

    baseline, source = hand_tuned(seed, args, base)  # first: fine-tunes the seed's experts if they are not cached
    experts = {t: expert_dir(t, seed, args) for t in mq.TASKS}
    encoders = [export_encoder(experts[t], base, CACHE / "encoders" / f"{experts[t].name}") for t in mq.TASKS]
    evaluator = mq.Evaluator(experts, args.max_length)
    out = CACHE / "runs" / f"seed{seed}-{args.tag}"
    if args.reuse and (out / "row.json").is_file():
        log(f"seed {seed}: reusing the search of {out / 'row.json'}, compared with today's hand-tuned grids")
        row = json.loads((out / "row.json").read_text())
        start = row["start"] if isinstance(row.get("start"), (dict, str)) else \
            {"weight": 1.0, "alpha": row["hand_tuned"][args.space]["setting"]["alpha"]}  # rows whose "start" held a timer
        if row["expert_test"] != baseline["expert_test"]:
            raise SystemExit(f"seed {seed}: {out / 'row.json'} was searched over other experts; rerun without --reuse")
        return compare(seed, args, base, baseline, source, evaluator, experts,
                       {k: row[k] for k in ("search", "evolved", "start_validation_fitness")}, start)
    shutil.rmtree(out, ignore_errors=True)
    start = {"weight": 1.0, "alpha": baseline["methods"][args.space]["setting"].get("alpha", 0.9)} \
        if args.space != "task_arithmetic" else {}
    cfg = evolve_config(encoders, [experts[t] for t in mq.TASKS], base, args, seed, start)
    log(f"seed {seed}: evolving {args.budget} evaluations ({args.space}, {args.layer_groups} layer groups, "
        f"start {start or 'centre'})")
    began = time.time()
    result = evolve(cfg, out, workers=args.workers)
    search_s = time.time() - began
    history = sorted(result.history, key=lambda e: e.index)
    log(f"seed {seed}: best validation fitness {result.best.fitness:.4f} (evaluation {result.best.index}) in {search_s:.0f}s")

    recipe_text = (out / "best_recipe.yaml").read_text()
    load_config(recipe_text)  # a valid `graft merge` config (raises otherwise)
    (RESULTS / f"{KEY}_recipe_seed{seed}.yaml").write_text(recipe_text)
    shutil.copy(out / "fitness.png", RESULTS / f"{KEY}_fitness_seed{seed}.png")

    encoder = merged_encoder(result.merged)
    evolved_test = {t: evaluator.accuracy(encoder, t, "test", args.test_cap or None) for t in mq.TASKS}
    evolved_val = {t: evaluator.accuracy(encoder, t, "validation", args.val_cap) for t in mq.TASKS}
    log(f"seed {seed}: evolved test {evolved_test}")
    searched = {
        "search": {"evaluations": len(history), "wall_s": round(search_s, 1),
                   "fitness": [round(e.fitness, 6) for e in history],
                   "genes_best": [round(g, 4) for g in result.best.genes]},
        "evolved": {**row_of(evolved_test, baseline["expert_test"]), "validation_fitness": result.best.fitness,
                    "validation_merge_quality_subset": evolved_val,
                    "validation_merge_quality_subset_mean": sum(evolved_val.values()) / 3,
                    "recipe": result.best_config, "best_evaluation": result.best.index},
        "start_validation_fitness": next(e.fitness for e in history if e.index == 0),
    }
    row_out = compare(seed, args, base, baseline, source, evaluator, experts, searched, start)
    (out / "row.json").write_text(json.dumps(row_out, indent=2))
    return row_out


def row_of(test: dict, expert_test: dict) -> dict:
    normalized = {t: test[t] / expert_test[t] for t in mq.TASKS}
    return {"test": test, "normalized": normalized, "mean_accuracy": sum(test.values()) / 3,
            "mean_normalized": sum(normalized.values()) / 3}


def compare(seed: int, args, base: Path, baseline: dict, source: dict, evaluator, experts: dict[str, Path],
            searched: dict, start: dict) -> dict:
    """The seed's row: the evolved recipe's test accuracy against every hand-tuned method of today's grids."""
    methods = {m: r for m, r in baseline["methods"].items() if m != "pretrained"}
    best = max(methods, key=lambda m: methods[m]["mean_accuracy"])
    recheck = recheck_best(baseline, best, evaluator, experts, base, seed, args)
    log(f"seed {seed}: best hand-tuned {best} {methods[best]['test']} (recomputed {recheck})")
    margin = searched["evolved"]["mean_accuracy"] - methods[best]["mean_accuracy"]
    return {
        "seed": seed, "expert_test": baseline["expert_test"], "baseline_source": source, **searched,
        "start": start or "centre",
        "hand_tuned": {m: {k: r[k] for k in ("setting", "validation_mean", "test", "normalized", "mean_accuracy",
                                             "mean_normalized") if k in r} for m, r in methods.items()},
        "best_hand_tuned": best, "best_hand_tuned_recomputed_test": recheck,
        "best_hand_tuned_recomputed_equal": all(abs(recheck[t] - methods[best]["test"][t]) < 1e-9 for t in mq.TASKS),
        "margin_points": round(100 * margin, 2), "goal_met": goal_met(margin),
    }


def goal_met(margin: float) -> bool:
    """evolved >= best hand-tuned + 1 point. Accuracies are float32 counts over 200 examples (steps of 1/600 in
    the mean), so the margin is compared at 0.01-point resolution, as reported, not with float32 rounding."""
    return round(100 * margin, 2) >= 1.0


def summarize(per_seed: list[dict]) -> dict:
    n = len(per_seed)
    names = list(per_seed[0]["hand_tuned"])

    def mean(values):
        return sum(values) / n

    summary = {"evolved": {"mean_accuracy": mean([s["evolved"]["mean_accuracy"] for s in per_seed]),
                           "mean_normalized": mean([s["evolved"]["mean_normalized"] for s in per_seed]),
                           "per_task_accuracy": {t: mean([s["evolved"]["test"][t] for s in per_seed]) for t in mq.TASKS},
                           "per_task_normalized": {t: mean([s["evolved"]["normalized"][t] for s in per_seed])
                                                   for t in mq.TASKS}}}
    for m in names:
        summary[m] = {"mean_accuracy": mean([s["hand_tuned"][m]["mean_accuracy"] for s in per_seed]),
                      "mean_normalized": mean([s["hand_tuned"][m]["mean_normalized"] for s in per_seed]),
                      "per_task_accuracy": {t: mean([s["hand_tuned"][m]["test"][t] for s in per_seed]) for t in mq.TASKS},
                      "per_task_normalized": {t: mean([s["hand_tuned"][m]["normalized"][t] for s in per_seed])
                                              for t in mq.TASKS}}
    best = max(names, key=lambda m: summary[m]["mean_accuracy"])
    margin = summary["evolved"]["mean_accuracy"] - summary[best]["mean_accuracy"]
    summary["best_hand_tuned"] = best
    summary["margin_points"] = round(100 * margin, 2)
    summary["goal_met"] = goal_met(margin)
    return summary


def fitness_examples(config: dict) -> str:
    """How much validation data the fitness saw, in words for the results line."""
    n = config.get("search_val", config["val_cap"])
    return "the whole validation splits" if n == 0 else f"{n} validation examples per task"


def write_results_line(result: dict) -> None:
    s, c = result["summary"], result["config"]
    best = s["best_hand_tuned"]
    seeds = [r["seed"] for r in result["per_seed"]]
    per_seed = "; ".join(f"seed {r['seed']}: evolved {r['evolved']['mean_accuracy']:.4f} vs {r['best_hand_tuned']} "
                         f"{r['hand_tuned'][r['best_hand_tuned']]['mean_accuracy']:.4f}" for r in result["per_seed"])
    if c.get("space", "task_arithmetic") in ("regmean", "regmean_plus"):
        own = "".join(f" + {n}'s own {' and '.join(ps)}" for n, ps in parse_filters(c.get("filters", "")).items())
        name = "RegMean" if c["space"] == "regmean" else "RegMean++ (Grams over the merged earlier blocks)"
        space = (f"CMA-ES over {name}, each expert's calibration data its own task, with per-layer-group expert "
                 f"weights and alpha, {c['layer_groups']} groups x (3 experts + alpha){own}, started at the "
                 f"hand-tuned {c['space']}")
    else:
        space = f"CMA-ES over per-layer-group task arithmetic weights, {c['layer_groups']} groups x 3 experts"
    line = (f"- **{KEY}** (MiniLM-L6 experts SST-2/AG News/TREC of merge_quality; {space}, {c['budget']} evaluations "
            f"on {c['workers']} Ray worker(s); fitness on {fitness_examples(c)}, test on {c['test_cap']} per task; seeds {seeds}): "
            f"mean test accuracy evolved {s['evolved']['mean_accuracy']:.4f} (normalized "
            f"{s['evolved']['mean_normalized']:.3f}) vs best hand-tuned {best} {s[best]['mean_accuracy']:.4f} "
            f"({s[best]['mean_normalized']:.3f}); margin {s['margin_points']:+.2f} points ({per_seed}); goal +1 point "
            f"{'met' if s['goal_met'] else 'NOT met'}\n")
    path = ROOT / "benchmarks" / "RESULTS.md"
    lines = [l for l in path.read_text().splitlines(keepends=True) if f"**{KEY}**" not in l]
    path.write_text("".join(lines) + line)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="0", help="comma-separated expert seeds (merge_quality's cache)")
    ap.add_argument("--budget", type=int, default=48)
    ap.add_argument("--popsize", type=int, default=8)
    ap.add_argument("--sigma", type=float, default=0.15)
    ap.add_argument("--layer-groups", type=int, default=3)
    ap.add_argument("--weight-range", type=lambda s: tuple(float(x) for x in s.split(",")), default=(0.0, 1.5),
                    help="task-arithmetic weight range per expert and layer group (centre = uniform weights)")
    ap.add_argument("--space", choices=("regmean_plus", "regmean", "task_arithmetic"), default="regmean_plus",
                    help="regmean_plus / regmean: per-model statistics, weights and alpha per layer group, started "
                         "at that method's hand-tuned recipe (RegMean++ recomputes its Grams for every candidate); "
                         "task_arithmetic: weights per layer group, started at the centre")
    ap.add_argument("--regmean-weight-range", type=lambda s: tuple(float(x) for x in s.split(",")), default=(0.0, 2.0),
                    help="regmean: expert weight range per layer group (1 = the hand-tuned recipe)")
    ap.add_argument("--alpha-range", type=lambda s: tuple(float(x) for x in s.split(",")), default=(0.5, 1.0),
                    help="regmean: alpha range per layer group")
    ap.add_argument("--filters", default="pooler:alpha",
                    help="regmean: tensors with their own genes, 'substring:param+param,...' (default: the pooler's "
                         "alpha: its Gram has one row per example, 64 per expert for 384 inputs, so alpha near 1 makes "
                         "its regression ill-posed while the layers' Grams, one row per token, are not); '' for none")
    ap.add_argument("--row-only", action="store_true",
                    help="only the seed rows in their run folders (combine them later with --reuse)")
    ap.add_argument("--search-val", type=int, default=400,
                    help="validation examples per task for the search's fitness (seeded subset of graftkit.data; 0 = the "
                         "whole validation splits)")
    ap.add_argument("--reuse", action="store_true", help="take finished seeds' rows from their run folders")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--steps", type=int, default=60, help="merge_quality expert setting (selects the cache)")
    ap.add_argument("--batch-size", type=int, default=16, help="merge_quality expert setting")
    ap.add_argument("--lr", type=float, default=1.5e-4, help="merge_quality expert setting")
    ap.add_argument("--calibration", type=int, default=64, help="merge_quality Fisher/Gram examples per task")
    ap.add_argument("--max-length", type=int, default=32)
    ap.add_argument("--val-cap", type=int, default=100,
                    help="validation examples per task of merge_quality's hand-tuned grids (selects its JSON)")
    ap.add_argument("--test-cap", type=int, default=200, help="test examples per task (merge_quality's subsets)")
    ap.add_argument("--tag", default="main", help="run folder name under the cache")
    ap.add_argument("--report", action="store_true", help="only rewrite the RESULTS.md line from the JSON")
    args = ap.parse_args()
    if args.report:
        write_results_line(json.loads((RESULTS / f"{KEY}.json").read_text()))
        return
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("GRAFTKIT_QUIET", "1")
    from graftkit import zoo
    from graftkit.progress import set_quiet

    set_quiet(True)
    base = Path(zoo.get("all-MiniLM-L6-v2"))
    start = time.time()
    per_seed = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        per_seed.append(run_seed(seed, args, base))
        if args.row_only:
            continue
        result = {
            "benchmark": KEY,
            "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items() if k != "report"},
            "space": ({"method": "task_arithmetic", "kind": "parameters", "genes": 3 * args.layer_groups,
                       "weight_range": list(args.weight_range), "optimizer": "cma", "start": "centre"}
                      if args.space == "task_arithmetic" else
                      {"method": args.space, "kind": "parameters",
                       "genes": 4 * args.layer_groups + sum(len(mq.TASKS) if p == "weight" else 1
                                                             for v in parse_filters(args.filters).values() for p in v),
                       "filters": parse_filters(args.filters),
                       "statistics": "each expert's own task (merge_quality's setting)",
                       "weight_range": list(args.regmean_weight_range), "alpha_range": list(args.alpha_range),
                       "optimizer": "cma", "start": f"hand-tuned {args.space} (weights 1, merge_quality's alpha)"}),
            "machine": {"python": platform.python_version(), "torch": torch.__version__,
                        "load_average": list(os.getloadavg())},
            "elapsed_s": round(time.time() - start, 1),
            "elapsed_note": ("seeds' rows taken from their run folders (--reuse): per-seed search times are under "
                             "per_seed[].search.wall_s") if args.reuse else "all seeds run in this process",
            "summary": summarize(per_seed),
            "per_seed": per_seed,
        }
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"{KEY}.json").write_text(json.dumps(result, indent=2))
        write_results_line(result)
        s = result["summary"]
        log(f"after seed {seed}: evolved {s['evolved']['mean_accuracy']:.4f} vs {s['best_hand_tuned']} "
            f"{s[s['best_hand_tuned']]['mean_accuracy']:.4f}: margin {s['margin_points']:+.2f} points, "
            f"goal {'met' if s['goal_met'] else 'not met'}")


if __name__ == "__main__":
    main()
