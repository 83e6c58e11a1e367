"""Merge quality: three MiniLM-L6 experts (SST-2, AG News, TREC) merged into one encoder.

Each expert is all-MiniLM-L6-v2 fine-tuned as a *ForSequenceClassification model
(encoder + its own head; a short AdamW run written here, since ``graft finetune``
had not landed when this was written). The encoders are merged in memory through
``graftkit.merge.methods`` (linear, task_arithmetic, ties, dare_ties, breadcrumbs,
della, model_stock, fisher, regmean); each task is then evaluated with its own
head on its test split. Hyper-parameters (lambda, density, alpha) are chosen on
the validation splits only (mean validation accuracy over the three tasks).
Fisher and RegMean statistics come from ``--calibration`` training examples of
each expert's own task.

Reported per task and as the mean: accuracy and normalized accuracy (merged /
expert), for each expert seed and as the mean over seeds. Anchors (issue 3, one
seed, a plain implementation, max_len 64, ~350 steps per expert): pretrained
encoder with the experts' heads 0.793 mean normalized, simple average 0.914,
task arithmetic 0.927, TIES 0.926, RegMean 0.977.

The defaults are scaled down (60 steps of batch 16 at max_len 32, 100 validation
and 200 test examples per task) so one seed finishes in well under an hour on two
shared CPU cores; the anchors' setup is

    nice -n 10 timeout 7200 .venv/bin/python benchmarks/merge_quality.py \
        --steps 350 --batch-size 32 --max-length 64 --test-cap 0 --val-cap 400 --calibration 256 --seeds 0,1,2

``--device cuda`` fine-tunes and evaluates on a GPU (merges stay on the CPU); the
anchor-scale results in benchmarks/results/merge_quality*.json were measured that way
on a lent H100 (about 5 minutes for three seeds). ``--head mean`` replaces HF's
first-token pooler head with a linear head on the mean-pooled hidden states (how
sentence-transformers uses this model); ``--name`` picks the results file. ``--pooler head`` keeps HF's pooler (dense + tanh on
the first token, trained only through the classifier) with each task's head instead of
merging it: only embeddings and transformer blocks are merged.

Experts, statistics and each finished seed's rows are cached under
~/.cache/graftkit/bench/merge_quality/, so a long CPU run can go on in a later invocation.
Writes benchmarks/results/NAME.json (default merge_quality) and its line in benchmarks/RESULTS.md
(``--report`` rewrites the line from the JSON without running anything).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("GRAFTKIT_BENCH_CACHE", Path.home() / ".cache" / "graftkit" / "bench")) / "merge_quality"
TASKS = ["sst2", "agnews", "trec"]
RESULTS_LINE_KEY = "merge_quality"

# Grids searched on validation; weights are 1 for every expert.
GRIDS: dict[str, list[dict]] = {
    "linear": [{}],
    "task_arithmetic": [{"lambda": x} for x in (0.3, 0.4, 0.5, 0.6, 0.7, 0.85, 1.0)],
    "ties": [{"density": d, "lambda": x} for d in (0.1, 0.2, 0.3, 0.5) for x in (0.8, 1.0, 1.2, 1.5)],
    "dare_ties": [{"density": d, "lambda": x} for d in (0.3, 0.5) for x in (0.5, 0.8, 1.0)],
    "breadcrumbs": [{"density": 0.9, "lambda": x} for x in (0.5, 0.8)],
    "della": [{"density": 0.5, "epsilon": 0.1, "lambda": x} for x in (1.0, 1.5)],
    "model_stock": [{}],
    "fisher": [{}],
    "regmean": [{"alpha": a} for a in (0.5, 0.7, 0.9, 0.95, 1.0)],
    "regmean_plus": [{"alpha": a} for a in (0.5, 0.7, 0.9, 0.95, 1.0)],
}
PER_MODEL_KEYS = ("density", "epsilon", "gamma")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# ---- experts --------------------------------------------------------------------
class MeanPoolClassifier(torch.nn.Module):
    """Encoder + linear head on the attention-masked mean of the last hidden states.

    This is how all-MiniLM-L6-v2 is meant to be used (sentence-transformers pools by
    mean), so the pretrained encoder already gives the head meaningful features.
    Parameter names match ``BertForSequenceClassification`` (``bert.*``, ``classifier.*``).
    """

    def __init__(self, bert: torch.nn.Module, num_labels: int):
        super().__init__()
        self.bert = bert
        self.classifier = torch.nn.Linear(bert.config.hidden_size, num_labels)

    def forward(self, input_ids, attention_mask, token_type_ids=None, labels=None):
        from transformers.modeling_outputs import SequenceClassifierOutput

        from graftkit.data.evaluate import pool

        out = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        logits = self.classifier(pool(out, attention_mask, "mean"))
        loss = None if labels is None else torch.nn.functional.cross_entropy(logits, labels)
        return SequenceClassifierOutput(loss=loss, logits=logits)


def build_model(base: Path, num_labels: int, head: str) -> torch.nn.Module:
    """A fresh classifier on ``base``: HF's (pooler on the first token) or the mean-pooling one."""
    from transformers import AutoModel, AutoModelForSequenceClassification

    if head == "pooler":
        return AutoModelForSequenceClassification.from_pretrained(base, num_labels=num_labels)
    return MeanPoolClassifier(AutoModel.from_pretrained(base, add_pooling_layer=False), num_labels)


def load_expert(path: Path) -> torch.nn.Module:
    """An expert folder written by ``finetune_expert`` (either head)."""
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoModelForSequenceClassification

    if not (path / "head.safetensors").is_file():
        return AutoModelForSequenceClassification.from_pretrained(path)
    head = load_file(path / "head.safetensors")
    model = MeanPoolClassifier(AutoModel.from_pretrained(path, add_pooling_layer=False), head["weight"].shape[0])
    model.classifier.load_state_dict(head)
    return model


def save_expert(model: torch.nn.Module, tokenizer, folder: Path) -> None:
    from safetensors.torch import save_file

    if isinstance(model, MeanPoolClassifier):
        model.bert.save_pretrained(folder)
        save_file({k: v.contiguous() for k, v in model.classifier.state_dict().items()}, folder / "head.safetensors")
    else:
        model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def finetune_expert(base: Path, task: str, seed: int, out: Path, steps: int, batch_size: int, max_length: int, lr: float,
                    device: str = "cpu", head: str = "pooler") -> Path:
    """Fine-tune encoder + a new head on ``task`` (AdamW, linear decay, 10% warmup)."""
    from transformers import AutoTokenizer

    from graftkit.data import load_dataset

    if (out / "config.json").is_file():
        return out
    data = load_dataset(task)
    tokenizer = AutoTokenizer.from_pretrained(base)
    torch.manual_seed(seed)
    model = build_model(base, len(data.label_names), head).to(device)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    warmup = max(1, steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / max(1, steps - warmup)))
    )
    texts, labels = data.train.texts, data.train.labels
    order: list[int] = []
    rng = random.Random(seed)
    start = time.time()
    for step in range(steps):
        if len(order) < batch_size:
            fresh = list(range(len(texts)))
            rng.shuffle(fresh)
            order += fresh
        idx, order = order[:batch_size], order[batch_size:]
        enc = tokenizer([texts[i] for i in idx], padding=True, truncation=True, max_length=max_length, return_tensors="pt").to(device)
        loss = model(**enc, labels=torch.tensor([labels[i] for i in idx], device=device)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        if step % 10 == 0 or step == steps - 1:
            log(f"  {task} seed {seed} step {step + 1}/{steps} loss {loss.item():.3f} ({time.time() - start:.0f}s)")
    model.eval().cpu()
    tmp = out.with_name(out.name + ".tmp")
    save_expert(model, tokenizer, tmp)
    tmp.rename(out)
    return out


# ---- evaluation -----------------------------------------------------------------
class Evaluator:
    """One classification model per task; encoders are swapped in, heads stay each expert's."""

    def __init__(self, experts: dict[str, Path], max_length: int, device: str = "cpu"):
        from transformers import AutoTokenizer

        from graftkit.data import load_dataset

        self.max_length = max_length
        self.models = {t: load_expert(p).eval().to(device) for t, p in experts.items()}
        self.tokenizer = AutoTokenizer.from_pretrained(next(iter(experts.values())))
        self.data = {t: load_dataset(t) for t in experts}

    def split(self, task: str, name: str, cap: int | None = None):
        part = getattr(self.data[task], name)
        if cap is not None and len(part) > cap:
            order = list(range(len(part)))
            random.Random(0).shuffle(order)
            part = part.subset(sorted(order[:cap]))
        return part

    def accuracy(self, encoder: dict[str, torch.Tensor], task: str, split: str, cap: int | None = None) -> float:
        from graftkit.data.evaluate import classification_accuracy

        model = self.models[task]
        model.load_state_dict(encoder, strict=False)
        result = classification_accuracy(model, self.split(task, split, cap), self.tokenizer, batch_size=128,
                                         max_length=self.max_length, description=f"{task} {split}")
        return float(result.value)


# ---- merging --------------------------------------------------------------------
def merge_encoders(method_name: str, setting: dict, base: dict[str, torch.Tensor], experts: list[dict[str, torch.Tensor]],
                   stats: list | None, seed: int) -> dict[str, torch.Tensor]:
    from graftkit.merge.methods import get_method

    method = get_method(method_name)
    params = {k: v for k, v in setting.items() if k not in PER_MODEL_KEYS}
    shared = {k: v for k, v in setting.items() if k in PER_MODEL_KEYS}
    merged = {}
    with torch.no_grad():
        for name, base_tensor in base.items():
            # methods without a base (linear) average the experts only
            offset = 1 if method.uses_base else 0
            tensors = [base_tensor] * offset + [e[name] for e in experts]
            known = {k: v for k, v in {"weight": 1.0, **shared}.items() if k in method.model_params}
            model_params = [{}] * offset + [dict(known) for _ in experts]
            if stats is not None:
                for i, s in enumerate(stats):
                    model_params[offset + i].update(s.lookup(name))
            merged[name] = method.merge(tensors, base_index=0 if offset else None, model_params=model_params,
                                        params=params, tensor_name=name, seed=seed)
    return merged


def progressive_statistics(setting: dict, pretrained: dict[str, torch.Tensor], experts: list[dict[str, torch.Tensor]],
                           evaluator: "Evaluator", calibrations: list, args, seed: int) -> list:
    """RegMean++ Grams: block by block, each expert fed by the merged embeddings and earlier blocks."""
    import re

    from graftkit.merge.layers import is_pre_layer
    from graftkit.merge.statistics.progressive import block_order, progressive_grams

    pattern = re.compile(r"^bert\.encoder\.layer\.(\d+)\.")

    def layer_of(name: str) -> int | None:
        match = pattern.match(name)
        return int(match.group(1)) if match else None

    models = [evaluator.models[t] for t in TASKS]  # their encoders are reloaded before every evaluation
    for model, encoder in zip(models, experts):
        model.load_state_dict(encoder, strict=False)

    def merge_group(names: list[str], statistics: list) -> dict[str, torch.Tensor]:
        return merge_encoders("regmean", setting, {n: pretrained[n] for n in names},
                              [{n: e[n] for n in names} for e in experts], statistics, seed)

    return progressive_grams(models, calibrations, [evaluator.tokenizer] * len(TASKS),
                             block_order(list(pretrained), layer_of, is_pre_layer), merge_group,
                             batch_size=16, max_length=args.max_length)


def encoder_of(state: dict[str, torch.Tensor], pooler: str = "merged") -> dict[str, torch.Tensor]:
    """The tensors that are merged: the BertModel's float tensors, without the pooler when it is part of
    each task's head (``pooler="head"``)."""
    return {k: v.detach().clone() for k, v in state.items()
            if k.startswith("bert.") and v.is_floating_point() and not (pooler == "head" and k.startswith("bert.pooler."))}


def run_seed(seed: int, args, base_path: Path) -> dict:
    from graftkit.merge.statistics import ModelStatistics, calibration_set, compute_statistics, statistics_for

    experts = {}
    for task in TASKS:
        out = CACHE / f"{task}-seed{seed}-steps{args.steps}-len{args.max_length}{'' if args.lr == 1.5e-4 else f'-lr{args.lr:g}'}{'' if args.head == 'pooler' else '-' + args.head}"
        log(f"expert {task} seed {seed}: {'cached' if (out / 'config.json').is_file() else 'fine-tuning'}")
        experts[task] = finetune_expert(base_path, task, seed, out, args.steps, args.batch_size, args.max_length, args.lr,
                                        args.device, args.head)
    evaluator = Evaluator(experts, args.max_length, args.device)
    pretrained = encoder_of(build_model(base_path, 2, args.head).state_dict(), args.pooler)
    expert_encoders = [{k: v.cpu() for k, v in encoder_of(evaluator.models[t].state_dict(), args.pooler).items()}
                       for t in TASKS]
    for e in expert_encoders:  # keep position_ids and other buffers out of the merge
        assert set(e) == set(pretrained), "expert and base encoders differ in tensor names"

    calibrations = [calibration_set(task, split="train", examples=args.calibration, seed=seed) for task in TASKS]
    stats = {}
    for kind in ("fisher", "gram"):
        stats[kind] = []
        for task in TASKS:
            calib = calibration_set(task, split="train", examples=args.calibration, seed=seed)
            log(f"statistics {kind} {task}")
            if args.head == "pooler":
                stats[kind].append(statistics_for(kind, experts[task], calib, batch_size=16, max_length=args.max_length,
                                                  cache_dir=CACHE / "statistics"))
                continue
            # the mean-pooling model is no HF class: statistics of the in-memory expert, cached here
            cached = CACHE / "statistics" / f"{kind}-{experts[task].name}-cal{args.calibration}-seed{seed}.safetensors"
            if not cached.is_file():
                computed = compute_statistics(kind, evaluator.models[task], evaluator.tokenizer, calib, batch_size=16,
                                              max_length=args.max_length)
                ModelStatistics(computed.kind, {k: v.cpu() for k, v in computed.tensors.items()}, computed.metadata).save(cached)
            stats[kind].append(ModelStatistics.load(cached))

    def evaluate(encoder, split, cap=None):
        if split == "test":
            cap = args.test_cap or None
        return {t: evaluator.accuracy(encoder, t, split, cap) for t in TASKS}

    # experts' own accuracy (the models hold their own encoders until overwritten, so measure first)
    expert_test = {t: evaluator.accuracy(expert_encoders[i], t, "test", args.test_cap or None) for i, t in enumerate(TASKS)}
    log(f"experts test {expert_test}")
    rows = {"pretrained": {"setting": {}, "test": evaluate(pretrained, "test")}}
    log(f"pretrained encoder test {rows['pretrained']['test']}")
    for method in args.methods:
        best = None
        for setting in GRIDS[method]:
            method_stats = stats["fisher"] if method == "fisher" else stats["gram"] if method == "regmean" else None
            if method == "regmean_plus":
                method_stats = progressive_statistics(setting, pretrained, expert_encoders, evaluator, calibrations, args, seed)
            start = time.time()
            merged = merge_encoders(method, setting, pretrained, expert_encoders, method_stats, seed)
            merge_s = time.time() - start
            val = evaluate(merged, "validation", args.val_cap) if len(GRIDS[method]) > 1 else None
            score = None if val is None else sum(val.values()) / len(val)
            log(f"{method} {setting} merge {merge_s:.1f}s val {score if score is None else round(score, 4)}")
            if best is None or (score is not None and score > best[0]):
                best = (score, setting, merged, merge_s)
        score, setting, merged, merge_s = best
        test = evaluate(merged, "test")
        rows[method] = {"setting": setting, "validation_mean": score, "test": test, "merge_s": round(merge_s, 2)}
        log(f"{method} best {setting} test {test}")
    for row in rows.values():
        row["normalized"] = {t: row["test"][t] / expert_test[t] for t in TASKS}
        row["mean_accuracy"] = sum(row["test"].values()) / len(TASKS)
        row["mean_normalized"] = sum(row["normalized"].values()) / len(TASKS)
    return {"seed": seed, "experts": {str(experts[t]): expert_test[t] for t in TASKS}, "expert_test": expert_test, "methods": rows}


def seed_result(seed: int, args, base_path: Path) -> dict:
    """One seed's rows, reused from an earlier run with the same setup and grids.

    A CPU run at the anchors' scale takes about an hour per seed, so each finished seed is
    kept under the cache and a later invocation (another session) goes on from there.
    """
    setup = {k: v for k, v in vars(args).items() if k not in ("seeds", "threads", "name", "report")}
    key = {"setup": setup, "grids": GRIDS, "seed": seed}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    path = CACHE / "seed_results" / f"seed{seed}-{digest}.json"
    if path.is_file():
        stored = json.loads(path.read_text())
        if stored.get("key") == key:
            log(f"seed {seed}: reusing {path}")
            return stored["result"]
    result = run_seed(seed, args, base_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"key": key, "result": result}, indent=1))
    tmp.replace(path)
    return result


def summarize(per_seed: list[dict]) -> dict:
    names = list(per_seed[0]["methods"])
    summary = {}
    for name in names:
        values = [s["methods"][name]["mean_normalized"] for s in per_seed]
        accs = [s["methods"][name]["mean_accuracy"] for s in per_seed]
        summary[name] = {
            "mean_normalized": sum(values) / len(values),
            "mean_accuracy": sum(accs) / len(accs),
            "per_task_accuracy": {t: sum(s["methods"][name]["test"][t] for s in per_seed) / len(per_seed) for t in TASKS},
            "per_task_normalized": {t: sum(s["methods"][name]["normalized"][t] for s in per_seed) / len(per_seed) for t in TASKS},
        }
    summary["experts"] = {"per_task_accuracy": {t: sum(s["expert_test"][t] for s in per_seed) / len(per_seed) for t in TASKS}}
    return summary


def write_results_line(result: dict) -> None:
    summary, config = result["summary"], result["config"]
    key = config.get("name", RESULTS_LINE_KEY)
    path = ROOT / "benchmarks" / "RESULTS.md"
    if not path.is_file():
        path.write_text("# Benchmark results\n\nOne line per benchmark; each benchmark replaces its own line on rerun.\n\n")
    methods = [m for m in summary if m not in ("experts", "pretrained")]
    best = max(methods, key=lambda m: summary[m]["mean_normalized"])
    parts = ", ".join(f"{m} {summary[m]['mean_normalized']:.3f}" for m in ["pretrained", *methods])
    experts = " / ".join(f"{summary['experts']['per_task_accuracy'][t]:.3f}" for t in TASKS)
    seeds = [s["seed"] for s in result["per_seed"]]
    test = f"{config['test_cap']} test examples per task" if config.get("test_cap") else "full test splits"
    head = {"pooler": "HF pooler head", "mean": "mean-pooling head"}[config.get("head", "pooler")]
    if config.get("pooler", "merged") == "head":
        head += " (each task keeps its own pooler; embeddings and blocks merged)"
    device = result.get("machine", {}).get("device", "cpu")
    line = (f"- **{key}** (MiniLM-L6 experts SST-2/AG News/TREC {experts}; {head}; seeds {seeds}; "
            f"{config['steps']} steps x {config['batch_size']} at max_len {config['max_length']}, lr {config['lr']:g}, on {device}; {test}; "
            f"{result['elapsed_s'] / 60:.0f} min): mean normalized accuracy {parts}; best {best} "
            f"{summary[best]['mean_normalized']:.3f} (goal >= 0.98 over 3 seeds; anchors pretrained 0.793, "
            f"average 0.914, TA 0.927, TIES 0.926, RegMean 0.977)\n")
    lines = [l for l in path.read_text().splitlines(keepends=True) if f"**{key}**" not in l]
    path.write_text("".join(lines) + line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0", help="comma-separated expert seeds")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1.5e-4)
    parser.add_argument("--calibration", type=int, default=64, help="examples per task for Fisher/Gram statistics")
    parser.add_argument("--val-cap", type=int, default=100, help="validation examples per task for the grid search")
    parser.add_argument("--test-cap", type=int, default=200, help="test examples per task (a fixed random subset; 0 = all)")
    parser.add_argument("--methods", default=",".join(GRIDS))
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared, oversubscribed machine)")
    parser.add_argument("--name", default=RESULTS_LINE_KEY,
                        help="results file benchmarks/results/NAME.json and its RESULTS.md line")
    parser.add_argument("--head", choices=("pooler", "mean"), default="pooler",
                        help="pooler: HF's *ForSequenceClassification (first token through the pooler); "
                             "mean: a linear head on the masked mean of the last hidden states (sentence-transformers' pooling)")
    parser.add_argument("--pooler", choices=("merged", "head"), default="merged",
                        help="with --head pooler: merged: the pooler (dense + tanh on the first token) is merged with "
                             "the encoder; head: it is part of each task's head, so every task keeps its own fine-tuned "
                             "pooler and only embeddings and blocks are merged")
    parser.add_argument("--device", default="cpu", help="where experts are fine-tuned and evaluated (merges run on the CPU)")
    parser.add_argument("--report", action="store_true", help="only rewrite the RESULTS.md line from the JSON")
    args = parser.parse_args()
    if args.report:
        write_results_line(json.loads((ROOT / "benchmarks" / "results" / f"{args.name}.json").read_text()))
        return
    if args.head == "mean" and args.pooler == "head":
        parser.error("--pooler head needs --head pooler: the mean-pooling head has no pooler")
    args.methods = [m for m in args.methods.split(",") if m]
    torch.set_num_threads(args.threads)
    os.environ.setdefault("GRAFTKIT_QUIET", "1")
    from graftkit import zoo
    from graftkit.progress import set_quiet

    set_quiet(True)
    CACHE.mkdir(parents=True, exist_ok=True)
    base_path = zoo.get("all-MiniLM-L6-v2")
    seeds = [int(s) for s in args.seeds.split(",")]
    start = time.time()
    per_seed: list[dict] = []
    for seed in seeds:
        per_seed.append(seed_result(seed, args, base_path))
        # written after every seed, so a run cut short still leaves its finished seeds
        summary = summarize(per_seed)
        result = {
            "benchmark": "merge_quality",
            "config": {k: v for k, v in vars(args).items() if k != "report"},
            "grids": GRIDS,
            "machine": {"python": platform.python_version(), "torch": torch.__version__, "threads": args.threads,
                        "device": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu"},
            "elapsed_s": round(time.time() - start, 1),
            "seeds_done": [s["seed"] for s in per_seed],
            "anchors": {"pretrained": 0.793, "linear": 0.914, "task_arithmetic": 0.927, "ties": 0.926, "regmean": 0.977,
                        "goal_best": 0.98},
            "summary": summary,
            "per_seed": per_seed,
        }
        (ROOT / "benchmarks" / "results").mkdir(parents=True, exist_ok=True)
        (ROOT / "benchmarks" / "results" / f"{args.name}.json").write_text(json.dumps(result, indent=2))
        write_results_line(result)
    elapsed = time.time() - start
    for name, row in summary.items():
        if name != "experts":
            log(f"{name:16s} mean acc {row['mean_accuracy']:.4f} normalized {row['mean_normalized']:.4f}")
    log(f"done in {elapsed / 60:.1f} min")


if __name__ == "__main__":
    main()
