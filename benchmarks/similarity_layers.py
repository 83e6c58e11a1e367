"""Layer-by-layer similarity of real sentence encoders on SST-2: MiniLM-L6 vs MiniLM-L3 and MiniLM-L6 vs mpnet.

    nice -n 10 timeout 2400 .venv/bin/python benchmarks/similarity_layers.py --n 500

Each model reads the same SST-2 test sentences once (mean pooling over real tokens, embeddings
and every block); matrices of linear CKA, debiased CKA and RSA are computed from those
activations and checked against the CKA paper's numpy reference (Gram form) on the same
numbers. Writes benchmarks/results/similarity_layers.json, one heatmap PNG per pair and
metric-family, and the benchmark's line in RESULTS.md.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from similarity_common import RESULTS, np_cka, np_gram_linear  # noqa: E402
from results_file import write_result  # noqa: E402

from graftkit.data import load_dataset  # noqa: E402
from graftkit.progress import set_quiet  # noqa: E402
from graftkit.similarity import capture  # noqa: E402
from graftkit.similarity.matrix import LayerSimilarity, similarity_matrix  # noqa: E402
from graftkit.similarity.models import load_text_model  # noqa: E402
from graftkit.similarity.texts import TextBatches  # noqa: E402

MODELS = {"minilm6": "all-MiniLM-L6-v2", "minilm3": "paraphrase-MiniLM-L3-v2", "mpnet": "all-mpnet-base-v2"}
PAIRS = [("minilm6", "minilm3"), ("minilm6", "mpnet")]
METRICS = ["linear_cka", "debiased_cka", "rsa"]


def depth_agreement(matrix: torch.Tensor) -> float:
    """Spearman correlation between each row's relative depth and its best match's relative depth
    (1 = deeper layers of A always match deeper layers of B)."""
    rows, cols = matrix.shape
    best = matrix.argmax(1).numpy()
    if len(set(best.tolist())) == 1:
        return 0.0
    return float(spearmanr(np.arange(rows) / max(rows - 1, 1), best / max(cols - 1, 1)).statistic)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    set_quiet(True)
    texts = random.Random(args.seed).sample(list(load_dataset("sst2").test.texts), args.n)

    acts, widths, capture_s = {}, {}, {}
    for key, name in MODELS.items():
        tm = load_text_model(name)
        start = time.perf_counter()
        acts[key] = capture(tm.model, TextBatches(tm.tokenizer, texts, args.batch_size, 128, order="length"),
                            layers="all", pooling="mean", description=f"capturing {name}")
        capture_s[key] = round(time.perf_counter() - start, 2)
        widths[key] = int(tm.model.config.hidden_size)
        print(f"captured {name}: {len(acts[key])} layers x {acts[key].n} sentences in {capture_s[key]} s", flush=True)
        del tm

    payload: dict = {"sentences": args.n, "dataset": "sst2 test", "pooling": "mean", "seed": args.seed,
                     "models": MODELS, "widths": widths, "capture_s": capture_s, "pairs": {}}
    line_parts = []
    for a, b in PAIRS:
        entry: dict = {}
        exact: dict[str, torch.Tensor] = {}
        for metric in METRICS:
            start = time.perf_counter()
            matrix = similarity_matrix(acts[a], acts[b], metric)
            seconds = time.perf_counter() - start
            exact[metric] = matrix
            result = LayerSimilarity(metric, MODELS[a], MODELS[b], acts[a].layers, acts[b].layers, matrix,
                                     acts[a].n, "mean", {"metric": seconds})
            png = RESULTS / f"similarity_layers_{a}_vs_{b}_{metric}.png"
            RESULTS.mkdir(parents=True, exist_ok=True)
            result.save_heatmap(png)
            entry[metric] = {"matrix": result.to_dict()["matrix"], "best_match_a_to_b": result.best_matches(),
                             "depth_agreement_spearman": round(depth_agreement(matrix), 3),
                             "seconds": round(seconds, 3), "heatmap": str(png.relative_to(RESULTS.parent))}
        # the anchor: the CKA notebook's numpy Gram-form linear CKA on the same activations
        start = time.perf_counter()
        ref = np.array([[np_cka(np_gram_linear(acts[a][la].double().numpy()),
                                np_gram_linear(acts[b][lb].double().numpy()))
                         for lb in acts[b].layers] for la in acts[a].layers])
        entry["numpy_reference"] = {
            "seconds": round(time.perf_counter() - start, 3),
            "max_abs_diff_linear_cka": float(np.abs(ref - exact["linear_cka"].numpy()).max()),
        }
        entry["layers_a"], entry["layers_b"] = acts[a].layers, acts[b].layers
        payload["pairs"][f"{a}_vs_{b}"] = entry
        lin = np.array(entry["linear_cka"]["matrix"])
        last = lin[-1, -1]
        line_parts.append(
            f"{MODELS[a]} vs {MODELS[b]}: linear CKA max {lin.max():.2f}, last-vs-last {last:.2f}, "
            f"depth agreement {entry['linear_cka']['depth_agreement_spearman']:.2f} "
            f"(numpy reference diff {entry['numpy_reference']['max_abs_diff_linear_cka']:.1e}, "
            f"{entry['linear_cka']['seconds']:.2f} s vs numpy {entry['numpy_reference']['seconds']:.2f} s)"
        )
        print(line_parts[-1], flush=True)
    write_result("similarity_layers", payload,
                 f"{args.n} SST-2 sentences, mean pooling, embeddings + blocks; " + "; ".join(line_parts))


if __name__ == "__main__":
    main()
