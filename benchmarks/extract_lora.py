"""LoRA extraction: `graft extract-lora` vs `mergekit-extract-lora` (mergekit 0.1.5) on the same inputs.

Inputs: the MiniLM-L6 SST-2 expert of benchmarks/transfer.py (its encoder saved as a
plain BertModel folder, so both tools see the same tensor names as the base) and
all-MiniLM-L6-v2. For each rank: wall time and peak RSS of each command (a child
process each), and the reconstruction error ||delta - BA||_F / ||delta||_F of every
module both tools extracted, read back from the PEFT folders with the same reader
(scaling alpha / r applied). Goal: graftkit's error equal or lower at the same rank.
The raw *ForSequenceClassification expert is also given to mergekit, as a user would.

    nice -n 10 timeout 1800 .venv/bin/python benchmarks/extract_lora.py
Writes benchmarks/results/extract_lora.json and its line in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("GRAFTKIT_BENCH_CACHE", Path.home() / ".cache" / "graftkit" / "bench")) / "transfer"
RESULT = ROOT / "benchmarks" / "results" / "extract_lora.json"
KEY = "extract_lora"
BIN = ROOT / ".venv" / "bin"
MEASURE = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
           "r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
           "print(json.dumps({'rc': r.returncode, 'seconds': time.perf_counter() - t, "
           "'peak_rss_mb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 'tail': (r.stdout + r.stderr)[-600:]}))")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def measured(cmd: list[str]) -> dict:
    out = subprocess.run([sys.executable, "-c", "import json; " + MEASURE, *cmd], capture_output=True, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def errors(adapter_dir: Path, finetuned: Path, base: Path) -> dict[str, float]:
    from graftkit.io import Checkpoint
    from graftkit.transfer.peft_export import read_peft_adapter

    ad = read_peft_adapter(adapter_dir)
    f, b = Checkpoint.open(finetuned), Checkpoint.open(base)
    out = {}
    for name, lora in ad.loras.items():
        key = name + ".weight"
        if key not in b:
            continue
        delta = f[key].float() - b[key].float()
        if float(delta.norm()) > 0:
            out[name] = float((delta - lora.delta()).norm() / delta.norm())
    return out


def plain_encoder(expert: Path) -> Path:
    """The expert's encoder as a plain BertModel folder (same tensor names as the base)."""
    out = CACHE / (expert.name + "-encoder")
    if not (out / "config.json").is_file():
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        full = AutoModelForSequenceClassification.from_pretrained(expert)
        body = getattr(full, full.base_model_prefix)
        body.config.architectures = [type(body).__name__]
        body.save_pretrained(out)
        AutoTokenizer.from_pretrained(expert).save_pretrained(out)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ranks", default="8,32")
    args = p.parse_args()
    from graftkit.zoo import get

    expert = CACHE / "sst2-L6-steps150-len48"
    if not (expert / "config.json").is_file():
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from transfer import expert as make_expert

        expert = make_expert("sst2")
    base = Path(get("all-MiniLM-L6-v2"))
    ft = plain_encoder(expert)
    work = Path(tempfile.mkdtemp(prefix="extract_lora_"))
    result: dict = {"finetuned": str(ft), "base": str(base), "ranks": {}}
    try:
        for rank in [int(r) for r in args.ranks.split(",")]:
            g_out, m_out = work / f"graft-{rank}", work / f"mergekit-{rank}"
            log(f"rank {rank}: graft")
            g = measured([str(BIN / "graft"), "--quiet", "extract-lora", str(ft), str(base), str(g_out), "--rank", str(rank)])
            log(f"rank {rank}: mergekit")
            m = measured([str(BIN / "mergekit-extract-lora"), "--model", str(ft), "--base-model", str(base),
                          "--out-path", str(m_out), "--max-rank", str(rank), "--no-copy-tokenizer"])
            row = {"graftkit": g, "mergekit": m}
            eg = errors(g_out, ft, base) if g["rc"] == 0 else {}
            em = errors(m_out, ft, base) if m["rc"] == 0 and (m_out / "adapter_config.json").is_file() else {}
            common = sorted(set(eg) & set(em))
            row.update(modules_graftkit=len(eg), modules_mergekit=len(em), modules_common=len(common),
                       mean_error_graftkit=sum(eg[n] for n in common) / max(1, len(common)) if common else
                       (sum(eg.values()) / max(1, len(eg)) if eg else None),
                       mean_error_mergekit=sum(em[n] for n in common) / max(1, len(common)) if common else None,
                       graftkit_not_worse_modules=sum(eg[n] <= em[n] + 1e-6 for n in common))
            result["ranks"][str(rank)] = row
            log(f"rank {rank}: {json.dumps({k: v for k, v in row.items() if k not in ('graftkit', 'mergekit')})}")
        log("mergekit on the raw *ForSequenceClassification expert")
        raw = measured([str(BIN / "mergekit-extract-lora"), "--model", str(expert), "--base-model", str(base),
                        "--out-path", str(work / "mergekit-raw"), "--max-rank", "8", "--no-copy-tokenizer"])
        raw_g = measured([str(BIN / "graft"), "--quiet", "extract-lora", str(expert), str(base), str(work / "graft-raw"), "--rank", "8"])
        result["raw_expert"] = {"mergekit": raw, "graftkit": raw_g,
                                "mergekit_modules": len(errors(work / "mergekit-raw", expert, base)) if raw["rc"] == 0 and (work / "mergekit-raw" / "adapter_config.json").is_file() else 0}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(result, indent=2))
    parts = []
    met = True
    for rank, r in result["ranks"].items():
        eg, em = r["mean_error_graftkit"], r["mean_error_mergekit"]
        ok = em is not None and eg is not None and r["graftkit_not_worse_modules"] == r["modules_common"]
        met &= ok
        fmt = lambda v: "failed" if v is None else f"{v:.4f}"
        parts.append(f"rank {rank}: error {fmt(eg)} vs {fmt(em)} over {r['modules_common']} common modules "
                     f"(graftkit {r['modules_graftkit']}, mergekit {r['modules_mergekit']}), "
                     f"{r['graftkit']['seconds']:.1f}s / {r['graftkit']['peak_rss_mb']:.0f} MB vs "
                     f"{r['mergekit']['seconds']:.1f}s / {r['mergekit']['peak_rss_mb']:.0f} MB")
    raw = result.get("raw_expert", {})
    raw_txt = (f"; raw classifier expert: mergekit rc {raw['mergekit']['rc']} with {raw['mergekit_modules']} modules, "
               f"graftkit rc {raw['graftkit']['rc']}" if raw else "")
    line = (f"- **{KEY}** (MiniLM-L6 SST-2 expert vs all-MiniLM-L6-v2, graftkit vs mergekit-extract-lora 0.1.5, "
            f"one child process each, loaded 2-core machine): " + "; ".join(parts)
            + f"; goal equal or lower error at the same rank: {'met' if met else 'NOT met'}" + raw_txt + "\n")
    path = ROOT / "benchmarks" / "RESULTS.md"
    text = path.read_text() if path.is_file() else "# Benchmark results\n\n"
    path.write_text("".join(l for l in text.splitlines(keepends=True) if f"**{KEY}**" not in l) + line)
    log(line)


if __name__ == "__main__":
    sys.exit(main())
