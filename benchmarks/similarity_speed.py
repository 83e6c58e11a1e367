"""Speed of graftkit.similarity: a full 12 x 12 CKA matrix of mpnet with forward passes, and
the metric kernels on 10,000 x 768 activations against plain numpy versions of the same formulas.

Run both parts (a few minutes on a quiet 2-core machine; the numpy RSA reference alone,
scipy's pdist + spearmanr on 50 million RDM entries per side, takes a few minutes):

    GRAFTKIT_DATA=/work/shared/datasets timeout 1800 .venv/bin/python benchmarks/similarity_speed.py

or one part only: ``--skip-kernels`` (the matrix, ~3-4 minutes), ``--skip-matrix`` (the kernels),
``--skip-matrix --only rbf_cka,procrustes`` (some kernels; the others keep their last result).

Part 1 (goal <= 60 s): the steps of `layer_similarity("all-mpnet-base-v2", itself, 2,000 SST-2
sentences)` timed end to end: load, sentences sorted by their token count and tokenized per
batch (each batch padded only to its own longest sentence: 2% padded positions with batches of
32, where sorting by characters left 28%), ONE forward pass per batch under
torch.inference_mode with all 12 block outputs taken from the same pass, mean pooling over
real tokens per batch, the model run once (A against itself), then the 12 x 12 linear CKA.
`--char-order-too` also times the capture with the batches sorted by characters (the order
used before), in the same run. The forward-pass ceiling is measured too: a bare forward of the same batches (no hidden
states kept, no pooling), i.e. the least any pipeline computing the exact model must spend.
The plain pipeline it is compared with (dataset order, batches of 32 padded to their
longest sentence, numpy Gram-form CKA per pair as in the CKA paper's notebook) is timed on
a subset and scaled up, as marked.

Part 2 (goal >= 3x per kernel): each kernel on two 10,000 x 768 activation matrices against a
plain numpy implementation of the same formula (benchmarks/similarity_common.py): the
formulas as the reference code writes them (Kornblith et al.'s CKA notebook in Gram form,
Google's svcca `cca_core` covariance route, scipy's pdist + spearmanr for RSA), in float64,
with numpy's own BLAS (OpenBLAS, 2 threads). Nothing in them is made slow on purpose; the
notebook's own feature-space linear CKA is timed as an extra row, because graftkit's
linear CKA uses that identity. graftkit's speed comes from the algorithms (feature-space
forms, symmetric half-products, a median and ranks without full sorts, batched products)
and, for large inputs, float32 products with float64 reductions
(graftkit.similarity.precision); every value is checked against numpy's float64 value
(|difference| <= 1e-5 on the float32 route, 1e-6 for the CCA family, whose reference
whitens with pinv and inverse square roots, 1e-9 otherwise) and a disagreement fails the run.
By default the matrices are synthetic (a shared 64-dimensional signal, anisotropic scales,
noise: timing does not depend on where the numbers come from); `--real-kernel-activations`
uses 10,000 mpnet token rows of block.5 and block.6 instead.

Each part can run alone (`--skip-matrix`, `--skip-kernels`); the other part's last result is
kept in the JSON.

Wall time, process CPU time and the load average are all recorded, so contention on a
shared machine is visible in the numbers.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from similarity_common import (  # noqa: E402
    np_cca_r2, np_cka, np_feature_space_linear_cka, np_gram_linear, np_gram_rbf, np_minibatch_cka,
    RESULTS, np_procrustes, np_pwcca, np_rsa, np_svcca,
)
from results_file import write_result  # noqa: E402

from graftkit.data import load_dataset  # noqa: E402
from graftkit.progress import set_quiet  # noqa: E402
from graftkit.similarity import capture  # noqa: E402
from graftkit.similarity.cca import cca_r2, pwcca, svcca  # noqa: E402
from graftkit.similarity.cka import debiased_cka, linear_cka, rbf_cka  # noqa: E402
from graftkit.similarity.matrix import similarity_matrix  # noqa: E402
from graftkit.similarity.metrics import minibatch_cka  # noqa: E402
from graftkit.similarity.symmetric import chunk_grams  # noqa: E402
from graftkit.similarity.models import load_text_model  # noqa: E402
from graftkit.similarity.precision import FLOAT32_TOLERANCE  # noqa: E402
from graftkit.similarity.procrustes import procrustes_similarity  # noqa: E402
from graftkit.similarity.rsa import rsa  # noqa: E402
from graftkit.similarity.texts import TextBatches, length_order  # noqa: E402

MODEL = "all-mpnet-base-v2"
# kernels whose products run in float32 at 10,000 x 768 (precision="auto"); the rest stay float64
FLOAT32_ROUTE = {"rbf_cka", "minibatch_cka", "procrustes"}
# the cca_core reference whitens with pinv and matrix inverse square roots, graftkit with the
# eigenbasis of each covariance: on ill-conditioned activations the two agree to ~1e-7
CCA_FAMILY = {"cca", "svcca", "pwcca"}
CCA_TOLERANCE = 1e-6


class Clock:
    """Wall and process-CPU seconds of a block, plus the 1-minute load average at its end."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu
        self.load = os.getloadavg()[0]


def sentences(n: int, seed: int) -> list[str]:
    data = load_dataset("sst2")
    pool = list(data.test.texts) + list(data.validation.texts)  # 1,821 + 872
    return random.Random(seed).sample(pool, n)


def plain_forward(model, tokenizer, texts: list[str], batch_size: int = 32) -> list[np.ndarray]:
    """The plain capture: dataset order, padding to each batch's longest, mean over real tokens."""
    per_layer: list[list[np.ndarray]] = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            enc = tokenizer(texts[start : start + batch_size], padding=True, truncation=True,
                            max_length=128, return_tensors="pt")
            states = model(**enc, output_hidden_states=True).hidden_states[1:]
            mask = enc["attention_mask"][..., None].float()
            for i, h in enumerate(states):
                if len(per_layer) <= i:
                    per_layer.append([])
                per_layer[i].append(((h * mask).sum(1) / mask.sum(1)).numpy())
    return [np.concatenate(p).astype(np.float64) for p in per_layer]


def gemm_probe(rows: int = 2048, d_in: int = 768, d_out: int = 3072, repeats: int = 20) -> float:
    """Best-of float32 GFLOP/s of one Linear of the forward's shape on this machine (torch's BLAS, its threads)."""
    x, layer = torch.randn(rows, d_in), torch.nn.Linear(d_in, d_out)
    best = float("inf")
    with torch.inference_mode():
        layer(x)
        for _ in range(repeats):
            start = time.perf_counter()
            layer(x)
            best = min(best, time.perf_counter() - start)
    return 2 * rows * d_in * d_out / best / 1e9


def avx2_fma_peak_gflops() -> float | None:
    """Theoretical float32 peak of this machine's cores: clock x 32 flops per cycle (two 256-bit FMA
    pipes, as on Haswell and later and on Zen 2 and later); None where /proc/cpuinfo says no AVX2+FMA."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    flags = next((line for line in info.splitlines() if line.startswith("flags")), "").split()
    mhz = [float(line.split(":")[1]) for line in info.splitlines() if line.startswith("cpu MHz")]
    if "avx2" not in flags or "fma" not in flags or not mhz:
        return None
    return round(len(os.sched_getaffinity(0)) * max(mhz) / 1000 * 32, 1)


def forward_compute_floor(model: torch.nn.Module, batches, bare_wall: float) -> dict:
    """The float32 work of one pass over ``batches`` and the GEMM rate the 60 s goal would need.

    Multiply-adds: every Linear of the encoder on every padded position, the pooler once per
    text, and attention's two L x L x d products per sequence and layer.
    """
    positions = sum(int(b["input_ids"].numel()) for b in batches)
    sequences = sum(int(b["input_ids"].shape[0]) for b in batches)
    square = sum(int(b["input_ids"].shape[0]) * int(b["input_ids"].shape[1]) ** 2 for b in batches)
    linear = pooled = 0
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            if "pooler" in name:
                pooled += module.in_features * module.out_features
            else:
                linear += module.in_features * module.out_features
    cfg = model.config
    macs = positions * linear + sequences * pooled + 2 * square * cfg.hidden_size * cfg.num_hidden_layers
    probe = gemm_probe(d_in=cfg.hidden_size, d_out=cfg.intermediate_size)
    peak = avx2_fma_peak_gflops()
    return {"avx2_fma_peak_gflops_per_s": peak,"forward_gflop": round(2 * macs / 1e9, 1),
            "bare_forward_gflops_per_s": round(2 * macs / bare_wall / 1e9, 1),
            "gflops_per_s_for_60_s_forward_alone": round(2 * macs / 60 / 1e9, 1),
            "gemm_probe_gflops_per_s": round(probe, 1),
            "note": "float32 multiply-adds of one pass (Linear layers on every padded position, pooler per "
                    "text, attention products); gemm_probe: best-of-20 rate of one 2048-row Linear "
                    f"{cfg.hidden_size}->{cfg.intermediate_size} on this machine with {torch.get_num_threads()} "
                    "threads; avx2_fma_peak_gflops_per_s: cores x clock x 32 (two 256-bit FMA pipes). A forward "
                    "pass faster than 60 s needs the rate in gflops_per_s_for_60_s_forward_alone."}


def part_matrix(n: int, batch_size: int, anchor_texts: int, anchor_pairs: int, char_order_too: bool) -> dict:
    """What ``layer_similarity(MODEL, MODEL, texts)`` does, step by step, so the activations stay
    available for the numpy check: load, length-sorted batches, capture, 12 x 12 linear CKA."""
    texts = sentences(n, seed=0)
    seconds = {}
    with Clock() as total:
        with Clock() as c:
            tm = load_text_model(MODEL)
        seconds["load"] = c.wall
        with Clock() as c:
            batches = TextBatches(tm.tokenizer, texts, batch_size, 128, order="length")
            acts = capture(tm.model, batches, pooling="mean")
        seconds["capture"] = c.wall
        with Clock() as c:
            matrix = similarity_matrix(acts, None, "linear_cka")
        seconds["metric"] = c.wall
    layers = acts.layers
    # the forward-pass ceiling: the same batches through the bare model, nothing kept
    with Clock() as bare:
        with torch.inference_mode():
            for batch in batches:
                tm.model(**batch)
    floor = forward_compute_floor(tm.model, batches, bare.wall)
    by_chars = TextBatches(tm.tokenizer, texts, batch_size, 128, order=length_order(texts))
    padded = {"token_order": sum(int(b["input_ids"].numel()) for b in batches),
              "character_order": sum(int(b["input_ids"].numel()) for b in by_chars)}
    char_capture = None
    if char_order_too:  # the order used before (sorted by characters), timed in the same run
        with Clock() as char_capture:
            old = capture(tm.model, by_chars, pooling="mean")
        char_diff = max(float((old[k] - acts[k]).abs().max()) for k in layers)
        char_matrix_diff = float((similarity_matrix(old, None, "linear_cka") - matrix).abs().max())
    out = {
        "sentences": n,
        "graftkit": {"wall_s": round(total.wall, 2), "cpu_s": round(total.cpu, 2), "load_avg_end": total.load,
                     "breakdown_s": {k: round(v, 2) for k, v in seconds.items()},
                     "batch_size": batch_size, "layers": len(layers)},
        "goal_s": 60,
        "bare_forward": {"wall_s": round(bare.wall, 2), "cpu_s": round(bare.cpu, 2), "load_avg_end": bare.load,
                         "note": "same length-sorted batches through the bare model (no hidden states, no "
                                 "pooling, no metric): the floor for any exact pipeline"},
        "compute_floor": floor,
        "tokens": int(sum(len(t) for t in tm.tokenizer(texts, truncation=True, max_length=128)["input_ids"])),
        "padded_positions": padded,
        "order": "each batch of texts sorted by token count (TextBatches(order='length')); rows put back "
                 "in text order by capture",
        "torch_threads": torch.get_num_threads(),
    }
    if char_capture is not None:
        out["character_order_capture"] = {
            "wall_s": round(char_capture.wall, 2), "cpu_s": round(char_capture.cpu, 2),
            "load_avg_end": char_capture.load, "max_abs_diff_vs_token_order": char_diff,
            "cka_matrix_max_abs_diff_vs_token_order": char_matrix_diff,
            "note": "capture alone with the batches sorted by character length (the order used before), same run"}
    # the plain pipeline: forward passes on a subset (dataset order), numpy CKA on some pairs; scaled up
    with Clock() as fwd:
        plain = plain_forward(tm.model, tm.tokenizer, texts[:anchor_texts])
    del plain
    pairs = [(0, j) for j in range(min(anchor_pairs, len(layers)))]
    diffs = []
    with Clock() as npm:
        for i, j in pairs:
            x = acts[layers[i]].double().numpy()
            y = acts[layers[j]].double().numpy()
            value = np_cka(np_gram_linear(x), np_gram_linear(y))
            diffs.append(abs(value - float(matrix[i, j])))
    scale_fwd = n / anchor_texts
    scale_pairs = len(layers) ** 2 / len(pairs)
    out["plain"] = {
        "forward_wall_s_measured": round(fwd.wall, 2), "forward_cpu_s_measured": round(fwd.cpu, 2),
        "forward_sentences_measured": anchor_texts,
        "numpy_cka_wall_s_measured": round(npm.wall, 2), "numpy_pairs_measured": len(pairs),
        "estimated_total_wall_s": round(fwd.wall * scale_fwd + npm.wall * scale_pairs, 1),
        "note": f"scaled: forward x{scale_fwd:.1f}, numpy pairs x{scale_pairs:.1f}",
        "max_abs_diff_vs_graftkit": float(max(diffs)),
    }
    out["matrix_diagonal_min"] = float(torch.diagonal(matrix).min())
    out["adjacent_layer_cka"] = [round(float(matrix[i, i + 1]), 4) for i in range(len(layers) - 1)]
    return out


def timed(fn, *args, repeat: int = 1, **kwargs):
    best, value, cpu = float("inf"), None, 0.0
    for _ in range(repeat):
        with Clock() as c:
            value = fn(*args, **kwargs)
        best = min(best, c.wall)
        cpu = c.cpu
    return value, best, cpu


def part_kernels(rows: int, real: bool, only: set[str] | None = None) -> dict:
    if real:
        tm = load_text_model(MODEL)
        texts = sentences(min(2600, rows // 18 + 20), seed=1)  # ~25 tokens per sentence: enough rows
        acts = capture(tm.model, TextBatches(tm.tokenizer, texts, 64, 128), layers=["block.5", "block.6"],
                       pooling="all", max_tokens=rows, description="token activations")
        if acts.n < rows:
            raise SystemExit(f"only {acts.n} tokens captured, need {rows}")
        xt, yt = acts["block.5"].double(), acts["block.6"].double()
        source = "mpnet block.5 / block.6 token activations"
    else:  # structured synthetic activations: shared 64-dim signal, anisotropic, plus noise
        g = torch.Generator().manual_seed(0)
        z = torch.randn(rows, 64, generator=g, dtype=torch.float64)
        scales = torch.logspace(0, -2, 768, dtype=torch.float64)
        xt = (z @ torch.randn(64, 768, generator=g, dtype=torch.float64)) * scales + 0.1 * torch.randn(rows, 768, generator=g, dtype=torch.float64)
        yt = xt @ torch.randn(768, 768, generator=g, dtype=torch.float64) / 30 + torch.randn(rows, 768, generator=g, dtype=torch.float64)
        source = "synthetic (64-dim shared signal, anisotropic, noise)"
    xn, yn = xt.numpy(), yt.numpy()
    kernels = {
        "linear_cka": (lambda: linear_cka(xt, yt), lambda: np_cka(np_gram_linear(xn), np_gram_linear(yn))),
        "linear_cka (numpy feature-space form)": (lambda: linear_cka(xt, yt), lambda: np_feature_space_linear_cka(xn, yn)),
        "debiased_cka": (lambda: debiased_cka(xt, yt),
                         lambda: np_cka(np_gram_linear(xn), np_gram_linear(yn), debiased=True)),
        "rbf_cka": (lambda: rbf_cka(xt, yt, threshold=0.5),
                    lambda: np_cka(np_gram_rbf(xn, 0.5), np_gram_rbf(yn, 0.5))),
        "minibatch_cka": (lambda: minibatch_cka(xt, yt, batch_size=256), lambda: np_minibatch_cka(xn, yn, 256)),
        "cca": (lambda: cca_r2(xt, yt), lambda: np_cca_r2(xn, yn)),
        "svcca": (lambda: svcca(xt, yt), lambda: np_svcca(xn, yn)),
        "pwcca": (lambda: pwcca(xt, yt), lambda: np_pwcca(xn, yn)),
        "rsa": (lambda: rsa(xt, yt), lambda: np_rsa(xn, yn)),
        "procrustes": (lambda: procrustes_similarity(xt, yt), lambda: np_procrustes(xn, yn)),
    }
    # the products any implementation of the same formula must run, in the cheapest float type the
    # tolerance allows: where the plain version is little more than these products in float64,
    # float32 can at most halve them, and the ratio numpy_s / floor_s bounds any speedup
    x32, y32 = xt.float(), yt.float()
    full = rows - rows % 256
    floors = {
        "minibatch_cka": ("float32 symmetric (syrk) Gram products of every 256-row chunk, both sides",
                          lambda: (chunk_grams(x32[:full].reshape(-1, 256, x32.shape[1])),
                                   chunk_grams(y32[:full].reshape(-1, 256, y32.shape[1])))),
        "procrustes": ("float32 X'Y plus the float64 eigenvalues of the 768 x 768 (X'Y)'(X'Y)",
                       lambda: torch.linalg.eigvalsh((lambda c: c.T @ c)((x32.T @ y32).double()))),
    }
    if only:
        unknown = only - set(kernels)
        if unknown:
            raise SystemExit(f"unknown kernels {sorted(unknown)}; choose from {sorted(kernels)}")
        kernels = {k: v for k, v in kernels.items() if k in only}
    results = {}
    for name, (ours, plain) in kernels.items():
        repeat = 1 if name == "rsa" else 2  # best of 2 on both sides (RSA: one run each, minutes)
        value, wall, cpu = timed(ours, repeat=repeat)
        ref, ref_wall, ref_cpu = timed(plain, repeat=repeat)
        diff = float(abs(value - ref))
        tolerance = FLOAT32_TOLERANCE if name in FLOAT32_ROUTE else CCA_TOLERANCE if name in CCA_FAMILY else 1e-9
        results[name] = {"graftkit_s": round(wall, 3), "numpy_s": round(ref_wall, 3),
                         "speedup": round(ref_wall / wall, 2), "graftkit_cpu_s": round(cpu, 3),
                         "numpy_cpu_s": round(ref_cpu, 3), "value": round(value, 9),
                         "numpy_value": round(float(ref), 9), "abs_diff": diff, "tolerance": tolerance,
                         "agrees": diff <= tolerance, "load_avg": os.getloadavg()[0]}
        if name in floors:
            what, floor_fn = floors[name]
            _, floor_wall, _ = timed(floor_fn, repeat=3)
            results[name]["floor"] = {"what": what, "s": round(floor_wall, 3),
                                      "max_speedup_vs_numpy": round(ref_wall / floor_wall, 2)}
        print(f"{name:40s} graftkit {wall:8.3f}s numpy {ref_wall:8.3f}s x{ref_wall / wall:6.2f} "
              f"value {value:.9f} vs {float(ref):.9f} (diff {diff:.1e})", flush=True)
    disagree = [n for n, r in results.items() if not r["agrees"]]
    if disagree:
        raise SystemExit(f"graftkit and numpy disagree beyond tolerance on: {', '.join(disagree)}: {results}")
    return {"rows": rows, "features": int(xt.shape[1]), "activations": source, "kernels": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--char-order-too", action="store_true",
                        help="also time the capture with batches sorted by characters (the order used before)")
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--anchor-texts", type=int, default=256)
    parser.add_argument("--anchor-pairs", type=int, default=6)
    parser.add_argument("--skip-matrix", action="store_true")
    parser.add_argument("--real-kernel-activations", action="store_true",
                        help="time the kernels on captured mpnet tokens instead of synthetic activations")
    parser.add_argument("--skip-kernels", action="store_true")
    parser.add_argument("--only", default="",
                        help="comma-separated kernel names to time (the others keep their last result in the JSON)")
    parser.add_argument("--no-write", action="store_true", help="print only (smoke runs)")
    args = parser.parse_args()
    set_quiet(True)
    payload: dict = {"load_avg_start": os.getloadavg()[0]}
    if not args.skip_matrix:
        payload["matrix"] = part_matrix(args.n, args.batch_size, args.anchor_texts, args.anchor_pairs,
                                        args.char_order_too)
        print("matrix:", payload["matrix"]["graftkit"], flush=True)
    if not args.skip_kernels:
        only = {k.strip() for k in args.only.split(",") if k.strip()} or None
        payload["kernels"] = part_kernels(args.rows, args.real_kernel_activations, only)
    previous = RESULTS / "similarity_speed.json"
    if previous.exists() and (args.skip_matrix or args.skip_kernels or args.only):  # keep what was not rerun
        import json

        old = json.loads(previous.read_text())
        for part in ("matrix", "kernels"):
            if part in old and part not in payload:
                payload[part] = old[part]
        if args.only and "kernels" in old and "kernels" in payload:
            if old["kernels"].get("rows") != payload["kernels"]["rows"]:
                raise SystemExit(f"--only merges into the last result, which has {old['kernels'].get('rows')} "
                                 f"rows: rerun with --rows {old['kernels'].get('rows')} or without --only")
            merged = dict(old["kernels"]["kernels"])
            merged.update(payload["kernels"]["kernels"])
            payload["kernels"]["kernels"] = merged
    parts = []
    if "matrix" in payload:
        m = payload["matrix"]
        bare = m.get("bare_forward", {})
        parts.append(f"mpnet 12x12 linear-CKA matrix on {m['sentences']} SST-2 sentences incl. forward passes"
                     f"{' (goal is 2,000: NOT measured at that size)' if m['sentences'] < 2000 else ''}: "
                     f"{m['graftkit']['wall_s']} s wall ({m['graftkit']['cpu_s']} s CPU, load avg "
                     f"{m['graftkit']['load_avg_end']:.1f}; goal <= 60 s: "
                     f"{'not assessed' if m['sentences'] < 2000 else 'met' if m['graftkit']['wall_s'] <= 60 else 'NOT met'}); bare forward of the same "
                     f"batches {bare.get('wall_s', 'not measured')} s ({m.get('padded_positions', {}).get('token_order', '?')} "
                     f"padded positions for {m['tokens']} tokens)"
                     + (f"; the forward's {m['compute_floor']['forward_gflop']} GFLOP in 60 s would need "
                        f"{m['compute_floor']['gflops_per_s_for_60_s_forward_alone']} GFLOP/s, the bare forward runs "
                        f"at {m['compute_floor']['bare_forward_gflops_per_s']}, a lone Linear of its shape at "
                        f"{m['compute_floor']['gemm_probe_gflops_per_s']} (theoretical peak "
                        f"{m['compute_floor']['avx2_fma_peak_gflops_per_s']})" if "compute_floor" in m else "")
                     + (f"; capture with character-sorted batches {m['character_order_capture']['wall_s']} s"
                        if "character_order_capture" in m else "")
                     + f"; plain pipeline est. "
                     f"{m['plain']['estimated_total_wall_s']} s")
    if "kernels" in payload:
        k = payload["kernels"]["kernels"]
        main_names = [n for n in k if "feature-space" not in n]
        ratios = [k[n]["speedup"] for n in main_names]
        geo = float(np.exp(np.mean(np.log(ratios))))
        payload["kernels"]["geomean_speedup"] = round(geo, 2)
        met = [n for n in main_names if k[n]["speedup"] >= 3]
        parts.append(f"kernels on {payload['kernels']['rows']}x768 vs plain numpy (load avg "
                     f"{max(k[n]['load_avg'] for n in k):.1f}): "
                     + ", ".join(f"{n} x{k[n]['speedup']}" for n in main_names)
                     + f"; linear_cka vs numpy's feature-space form x{k['linear_cka (numpy feature-space form)']['speedup']}"
                     + "".join(f"; {n}: its products alone (floor) {k[n]['floor']['s']} s, at most "
                               f"x{k[n]['floor']['max_speedup_vs_numpy']}" for n in main_names if "floor" in k[n])
                     + f"; all values agree with numpy; goal >= 3x per kernel: met by {len(met)} of {len(main_names)}")
    if not args.no_write:
        write_result("similarity_speed", payload, "; ".join(parts))
    print("; ".join(parts))


if __name__ == "__main__":
    main()
