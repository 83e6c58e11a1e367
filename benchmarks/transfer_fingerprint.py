"""Capability fingerprint benchmark (issue 7): does a fingerprint name the task, not the model?

Views: three base families of two widths (all-MiniLM-L6-v2 and paraphrase-MiniLM-L3-v2,
384; all-mpnet-base-v2, 768), each given a LoRA + linear head trained with labels on
SST-2, TREC and AG News (two seeds each: 18 fine-tuned models), plus the MiniLM-L6
SST-2 and TREC full fine-tunes of benchmarks/transfer.py. Every view is the mean-pooled
features of the fine-tuned model and of its base on the same texts: 30 anchor texts, 90
training inputs and 90 disjoint held-out inputs (validation / test splits, a third from
each task).

Protocol, leave one family out: the extractor is trained (SupCon) on the views of the two
other families on the training inputs, then every view is fingerprinted on the held-out
inputs. A query is a view of the held-out family; for each positive (same task, another
family) and each negative (another task added to the same base with the same seed) it
scores a hit when the query is closer to the positive. Chance is 0.5. The same triplets
are scored with two non-learned baselines: linear CKA between the views' Gram matrices
on the held-out texts (what a model-level similarity sees) and linear CKA between the
Gram *changes* relative to the base (the fine-tune's effect), and with the learned
extractor without the base delta (ablation).

    nice -n 10 timeout 3000 .venv/bin/python benchmarks/transfer_fingerprint.py
Writes benchmarks/results/transfer_fingerprint.json, transfer_fingerprint.png and its
line in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
CACHE = Path(os.environ.get("GRAFTKIT_BENCH_CACHE", Path.home() / ".cache" / "graftkit" / "bench")) / "transfer"
FEATS = CACHE / "fingerprint"
RESULT = ROOT / "benchmarks" / "results" / "transfer_fingerprint.json"
PNG = ROOT / "benchmarks" / "results" / "transfer_fingerprint.png"
KEY = "transfer_fingerprint"
FAMILIES = {"L6": "all-MiniLM-L6-v2", "L3": "paraphrase-MiniLM-L3-v2", "mpnet": "all-mpnet-base-v2"}
TASKS = ("sst2", "trec", "agnews")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def probe_texts(anchors: int, inputs: int) -> dict[str, list[str]]:
    """Anchors and training inputs from the validation splits, held-out inputs from the test splits; a third per task."""
    from graftkit.data import load_dataset

    out = {"anchors": [], "train": [], "test": []}
    for t in TASKS:
        ds = load_dataset(t)
        g = torch.Generator().manual_seed(1)
        val = [ds.validation.texts[i] for i in torch.randperm(len(ds.validation), generator=g).tolist()]
        test = [ds.test.texts[i] for i in torch.randperm(len(ds.test), generator=g).tolist()]
        a, n = anchors // len(TASKS), inputs // len(TASKS)
        out["anchors"] += val[:a]
        out["train"] += val[a:a + n]
        out["test"] += test[:n]
    return out


def build_views(args, texts: dict[str, list[str]]) -> list[dict]:
    """Fine-tune (LoRA + head, labels) every family on every task and seed; cache pooled features of all texts."""
    from transfer import adapted, train_ceiling

    from graftkit.data import load_dataset
    from graftkit.transfer.generators import Encoder

    FEATS.mkdir(parents=True, exist_ok=True)
    every = texts["anchors"] + texts["train"] + texts["test"]
    tag = f"a{args.anchors}-n{args.inputs}-len{args.max_length}"
    views = []

    def cached(name: str, make) -> torch.Tensor:
        path = FEATS / f"{name}__{tag}.pt"
        if not path.is_file():
            torch.save(make(), path)
        return torch.load(path, weights_only=True)

    for fam, zoo_name in FAMILIES.items():
        enc = Encoder.load(zoo_name, max_length=args.max_length)
        base = cached(f"{fam}__base", lambda: enc.features(every))
        for task in TASKS:
            ds = load_dataset(task)
            for seed in range(args.seeds):
                g = torch.Generator().manual_seed(100 + seed)
                idx = torch.randperm(len(ds.train), generator=g)[: args.train_texts].tolist()
                tx, ty = [ds.train.texts[i] for i in idx], [ds.train.labels[i] for i in idx]

                def make(enc=enc, tx=tx, ty=ty, seed=seed, task=task):
                    t0 = time.time()
                    lora = train_ceiling(enc, tx, ty, len(ds.label_names), args.rank, args.steps, args.batch_size, None, seed=seed)
                    feats = adapted(enc, lora).features(every)
                    log(f"  {fam} {task} seed {seed}: LoRA trained and featurized in {time.time() - t0:.0f}s")
                    return feats

                views.append({"family": fam, "task": task, "model": f"{fam}/lora{seed}", "seed": seed,
                              "feats": cached(f"{fam}__{task}__lora{seed}", make), "base": base})
        if fam == "L6":  # the full fine-tunes of benchmarks/transfer.py, where cached
            for task in ("sst2", "trec"):
                folder = CACHE / f"{task}-L6-steps150-len48"
                if (folder / "config.json").is_file():
                    feats = cached(f"L6__{task}__expert", lambda folder=folder: Encoder.load(folder, max_length=args.max_length).features(every))
                    views.append({"family": fam, "task": task, "model": "L6/expert", "seed": -1, "feats": feats, "base": base})
    return views


def split(x: torch.Tensor, args, part: str) -> torch.Tensor:
    """Rows [anchors; inputs of `part`] of a (anchors + train + test, width) feature matrix."""
    a, n = args.anchors // len(TASKS) * len(TASKS), args.inputs // len(TASKS) * len(TASKS)
    rows = slice(a, a + n) if part == "train" else slice(a + n, a + 2 * n)
    return torch.cat([x[:a], x[rows]])


def gram(x: torch.Tensor) -> torch.Tensor:
    x = torch.nn.functional.normalize(x.float(), dim=1)
    x = x - x.mean(0)
    return x @ x.T


def cka(a: torch.Tensor, b: torch.Tensor) -> float:
    """Linear CKA of two (already centered) Gram matrices, or any two same-shaped matrices' cosine."""
    return float((a * b).sum() / (a.norm() * b.norm()).clamp_min(1e-12))


def triplets(views: list[dict], held: str) -> list[tuple[int, int, int]]:
    out = []
    for i, q in enumerate(views):
        if q["family"] != held:
            continue
        pos = [j for j, v in enumerate(views) if v["task"] == q["task"] and v["family"] != held]
        neg = [k for k, v in enumerate(views) if v["task"] != q["task"] and v["model"] == q["model"]]
        out += [(i, j, k) for j in pos for k in neg]
    return out


def score(sim, trips) -> float:
    return sum(sim(i, j) > sim(i, k) for i, j, k in trips) / max(1, len(trips))


def nearest(sim, views: list[dict], held: str) -> tuple[float, float]:
    """Top-1 task identification: is the nearest candidate (every view of the other families and the
    other tasks on the query's own base) of the query's task? Returns (accuracy, chance)."""
    hits, chance, n = 0, 0.0, 0
    for i, q in enumerate(views):
        if q["family"] != held:
            continue
        cands = [j for j, v in enumerate(views) if v["family"] != held or (v["model"] == q["model"] and v["task"] != q["task"])]
        best = max(cands, key=lambda j: sim(i, j))
        hits += views[best]["task"] == q["task"]
        chance += sum(views[j]["task"] == q["task"] for j in cands) / len(cands)
        n += 1
    return hits / max(1, n), chance / max(1, n)


def earlier_views() -> dict | None:
    """Plain Gram CKA under the earlier protocol of benchmarks/transfer.py, on the views it cached (the 64-text
    pool of its experts and adapted targets): what a model-level similarity scores where the first extractor got 0.51."""
    files = sorted((CACHE / "features").glob("*.pt"))
    views = [(f.stem.split("__"), torch.load(f, weights_only=True)) for f in files]
    views = [((t, f"{m}/{label}"), x) for (t, m, label), x in views if label != "floor"]
    if len({v[0][0] for v in views}) < 2:
        return None
    grams = [gram(x) for _, x in views]
    hits = total = 0
    for i, ((task, model), _) in enumerate(views):
        for j, ((t2, m2), _) in enumerate(views):
            if t2 != task or m2 == model:
                continue
            for k, ((t3, m3), _) in enumerate(views):
                if t3 != task and m3 == model:
                    total += 1
                    hits += cka(grams[i], grams[j]) > cka(grams[i], grams[k])
    return {"gram_cka": hits / total, "queries": total, "views": len(views)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--anchors", type=int, default=30)
    p.add_argument("--inputs", type=int, default=90)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--train-texts", type=int, default=640)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--max-length", type=int, default=32)
    p.add_argument("--fp-steps", type=int, default=300)
    p.add_argument("--fp-seeds", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    os.environ.setdefault("GRAFTKIT_QUIET", "1")
    from graftkit.transfer.extractor import CapabilityExtractor, ExtractorSettings, similarity, train_extractor
    from graftkit.transfer.plot import plot_similarity

    t_start = time.time()
    texts = probe_texts(args.anchors, args.inputs)
    views = build_views(args, texts)
    log(f"{len(views)} views")
    m = args.anchors // len(TASKS) * len(TASKS)
    test = [split(v["feats"], args, "test") for v in views]
    test_base = [split(v["base"], args, "test") for v in views]
    grams = [gram(x) for x in test]
    deltas = [gram(x) - gram(b) for x, b in zip(test, test_base)]
    per_family, png_fps = {}, None
    for held in FAMILIES:
        trips = triplets(views, held)
        train_ids = [i for i, v in enumerate(views) if v["family"] != held]
        row = {"queries": len(trips), "train_views": len(train_ids),
               "gram_cka": score(lambda i, j: cka(grams[i], grams[j]), trips),
               "delta_gram_cka": score(lambda i, j: cka(deltas[i], deltas[j]), trips)}
        row["nearest_chance"] = nearest(lambda i, j: 0.0, views, held)[1]
        row["nearest_gram_cka"] = nearest(lambda i, j: cka(grams[i], grams[j]), views, held)[0]
        row["nearest_delta_gram_cka"] = nearest(lambda i, j: cka(deltas[i], deltas[j]), views, held)[0]
        for delta in (True, False):
            name = "extractor" if delta else "extractor_no_delta"
            accs = {metric: [] for metric in ("cosine", "kl", "pearson", "nearest")}
            for s in range(args.fp_seeds):
                ex = CapabilityExtractor(ExtractorSettings(anchors=m, delta=delta, hidden=128, layers=2, heads=4, ff=256, dim=128))
                data = [(split(views[i]["feats"], args, "train"), views[i]["task"])
                        + ((split(views[i]["base"], args, "train"),) if delta else ()) for i in train_ids]
                train_extractor(ex, data, steps=args.fp_steps, batch=16, lr=1e-3, seed=s)
                fps = [ex.fingerprint(x, b if delta else None) for x, b in zip(test, test_base)]
                for metric in ("cosine", "kl", "pearson"):
                    accs[metric].append(score(lambda i, j: similarity(fps[i], fps[j], metric), trips))
                accs["nearest"].append(nearest(lambda i, j: similarity(fps[i], fps[j]), views, held)[0])
                if delta and held == list(FAMILIES)[-1] and s == 0:
                    png_fps = fps
            row[name] = {k: sum(v) / len(v) for k, v in accs.items()}
            row[name + "_per_seed"] = accs["cosine"]
        per_family[held] = row
        log(f"held out {held}: {json.dumps({k: v for k, v in row.items() if not k.endswith('per_seed')})}")

    def mean(key, sub=None):
        vals = [r[key][sub] if sub else r[key] for r in per_family.values()]
        return sum(vals) / len(vals)

    summary = {"chance": 0.5, "gram_cka": mean("gram_cka"), "delta_gram_cka": mean("delta_gram_cka"),
               "extractor": mean("extractor", "cosine"), "extractor_kl": mean("extractor", "kl"),
               "extractor_pearson": mean("extractor", "pearson"), "extractor_no_delta": mean("extractor_no_delta", "cosine"),
               "nearest": {"chance": mean("nearest_chance"), "gram_cka": mean("nearest_gram_cka"),
                           "delta_gram_cka": mean("nearest_delta_gram_cka"), "extractor": mean("extractor", "nearest"),
                           "extractor_no_delta": mean("extractor_no_delta", "nearest")},
               "queries": sum(r["queries"] for r in per_family.values())}
    results = {"summary": summary, "held_out_family": per_family,
               "views": [{k: v[k] for k in ("family", "task", "model")} for v in views],
               "earlier_protocol_gram_cka": earlier_views(),
               "config": {**vars(args), "families": FAMILIES, "tasks": TASKS,
                          "fingerprint_settings": "anchors=%d, hidden 128, 2 layers, 4 heads, ff 256, dim 128" % m},
               "seconds": time.time() - t_start}
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(results, indent=2))
    plot_similarity(torch.stack(png_fps), [f"{v['model']}:{v['task']}" for v in views], PNG,
                    title="fingerprints on held-out texts (extractor trained without mpnet)")
    nn = summary["nearest"]
    line = (f"- **{KEY}** (capability fingerprints, {len(views)} fine-tuned views of MiniLM-L6/L3 (384) and mpnet (768) on "
            f"SST-2/TREC/AG News, leave one family out, held-out texts; a hit = a query nearer the same task in another "
            f"family than another task on its own base; {summary['queries']} triplets): extractor {summary['extractor']:.2f} "
            f"(kl {summary['extractor_kl']:.2f}, pearson {summary['extractor_pearson']:.2f}; without the base delta "
            f"{summary['extractor_no_delta']:.2f}) vs CKA of the Gram changes {summary['delta_gram_cka']:.2f}, CKA of the "
            f"Grams {summary['gram_cka']:.2f}, chance 0.50; per held-out family (extractor / delta CKA / Gram CKA): "
            + ", ".join(f"{f} {r['extractor']['cosine']:.2f} / {r['delta_gram_cka']:.2f} / {r['gram_cka']:.2f}"
                        for f, r in per_family.items())
            + f"; top-1 task of the nearest view: extractor {nn['extractor']:.2f}, delta CKA {nn['delta_gram_cka']:.2f}, "
            f"Gram CKA {nn['gram_cka']:.2f}, chance {nn['chance']:.2f}\n")
    path = ROOT / "benchmarks" / "RESULTS.md"
    text = path.read_text() if path.is_file() else "# Benchmark results\n\n"
    lines = [l for l in text.splitlines(keepends=True) if f"**{KEY}**" not in l]
    path.write_text("".join(lines) + line)
    log(line)


if __name__ == "__main__":
    sys.exit(main())
