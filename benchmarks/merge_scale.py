"""Merging 1.1B-parameter models: graft merge vs mergekit-yaml vs the I/O floor, peak RSS and wall time.

Writes three synthetic llama checkpoints with TinyLlama's shapes (hidden 2048, MLP 5632,
22 layers, 32 heads / 4 KV heads, vocab 32000, untied head; 1.1B parameters, bf16,
2.2 GB each): a pseudo-random base and two perturbed copies. Then, with every file in the page
cache, runs in fresh processes: the I/O floor (read every tensor of the inputs once with
safetensors and write an output of the same size with safetensors alone), and
``graft merge`` / ``mergekit-yaml`` on a linear merge of the two copies and a TIES merge
of both onto the base. Goals: graftkit peak RSS <= 1.5 GB, linear within 2x the floor,
TIES within 0.1x mergekit's time. The files are deleted afterwards.

    nice -n 10 timeout 3600 .venv/bin/python benchmarks/merge_scale.py
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from merge_measure import VENV_BIN, run_measured
from results_file import write_result

TINYLLAMA = dict(
    architectures=["LlamaForCausalLM"], model_type="llama", hidden_size=2048, intermediate_size=5632,
    num_hidden_layers=22, num_attention_heads=32, num_key_value_heads=4, vocab_size=32000,
    max_position_embeddings=2048, rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
    hidden_act="silu", bos_token_id=1, eos_token_id=2, torch_dtype="bfloat16",
)

FLOOR = """
import sys, time
from safetensors import safe_open
from safetensors.torch import save_file
inputs, out = sys.argv[1:-1], sys.argv[-1]
keep = {}
for i, path in enumerate(inputs):
    with safe_open(path, framework="pt") as f:
        for name in f.keys():
            t = f.get_tensor(name)
            if i == 0:
                keep[name] = t
save_file(keep, out)
"""


def shapes() -> dict[str, tuple[int, ...]]:
    h, m, kv = 2048, 5632, 2048 // 32 * 4
    out = {"model.embed_tokens.weight": (32000, h)}
    for i in range(22):
        p = f"model.layers.{i}."
        out.update({p + "self_attn.q_proj.weight": (h, h), p + "self_attn.k_proj.weight": (kv, h),
                    p + "self_attn.v_proj.weight": (kv, h), p + "self_attn.o_proj.weight": (h, h),
                    p + "mlp.gate_proj.weight": (m, h), p + "mlp.up_proj.weight": (m, h),
                    p + "mlp.down_proj.weight": (h, m), p + "input_layernorm.weight": (h,),
                    p + "post_attention_layernorm.weight": (h,)})
    out["model.norm.weight"] = (h,)
    out["lm_head.weight"] = (32000, h)
    return out


def write_models(work: Path) -> list[Path]:
    """Base and two perturbed copies, streamed tensor by tensor.

    Values are cheap to make (generating 3.3e9 normal numbers would take longer than the
    merges): each tensor tiles a seeded 1M-entry random block with a per-tensor shift; the
    copies add 1% of the base rolled by one entry (ft1) or two (ft2), so their task
    vectors differ in sign and magnitude across entries, as real fine-tunes do.
    """
    import torch

    from graftkit.io import CheckpointWriter, TensorInfo

    spec = shapes()
    layout = [TensorInfo(n, s, torch.bfloat16) for n, s in spec.items()]
    block = torch.randn(1 << 20, generator=torch.Generator().manual_seed(0)) * 0.02
    folders = []
    for k, name in enumerate(("base", "ft1", "ft2")):
        folder = work / name
        with CheckpointWriter(folder, max_shard_size="5GB", layout=layout) as w:
            for j, (tname, shape) in enumerate(spec.items()):
                n = 1
                for d in shape:
                    n *= d
                flat = block.roll(j * 7919).repeat(n // block.numel() + 1)[:n]
                if len(shape) == 1:
                    flat = 1.0 + flat
                if k:
                    flat = flat + 0.01 * flat.roll(k)
                w.write(tname, flat.reshape(shape).to(torch.bfloat16))
            w.write_json("config.json", TINYLLAMA)
        folders.append(folder)
    return folders


def warm(paths: list[Path]) -> None:
    """Read the files once so every run starts with them in the page cache."""
    for p in paths:
        for f in sorted(p.glob("*.safetensors")):
            with open(f, "rb") as fh:
                while fh.read(64 << 20):
                    pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", default=None, help="folder for the 13 GB of temporary files (default: a temp dir)")
    parser.add_argument("--skip-mergekit", action="store_true")
    parser.add_argument("--reuse", default=None, help="a folder holding base/ft1/ft2 from an earlier run (kept)")
    args = parser.parse_args()
    print(subprocess.run(["df", "-h", "/work"], capture_output=True, text=True).stdout, flush=True)
    free = shutil.disk_usage(args.work or tempfile.gettempdir()).free
    if free < 20e9:
        raise SystemExit(f"need about 20 GB free for the benchmark files, have {free / 1e9:.1f} GB")
    reuse = Path(args.reuse) if args.reuse else None
    work = reuse or Path(tempfile.mkdtemp(prefix="graftkit-bench-scale-", dir=args.work))
    results: dict = {}
    try:
        if reuse is not None and all((reuse / n / "model.safetensors").is_file() for n in ("base", "ft1", "ft2")):
            base, ft1, ft2 = reuse / "base", reuse / "ft1", reuse / "ft2"
        else:
            base, ft1, ft2 = write_models(work)
        configs = {
            "linear": f"merge_method: linear\nmodels:\n  - model: {ft1}\n    parameters: {{weight: 0.5}}\n"
                      f"  - model: {ft2}\n    parameters: {{weight: 0.5}}\n",
            "ties": f"merge_method: ties\nbase_model: {base}\nmodels:\n"
                    f"  - model: {ft1}\n    parameters: {{weight: 0.5, density: 0.5}}\n"
                    f"  - model: {ft2}\n    parameters: {{weight: 0.5, density: 0.5}}\n",
        }
        floors = {"linear": [ft1, ft2], "ties": [base, ft1, ft2]}
        for method, text in configs.items():
            cfg = work / f"{method}.yaml"
            cfg.write_text(text)
            row = {}
            warm(floors[method])
            files = [str(p / "model.safetensors") for p in floors[method]]
            row["io_floor"] = run_measured([sys.executable, "-c", FLOOR, *files, str(work / "floor.safetensors")])
            (work / "floor.safetensors").unlink(missing_ok=True)
            tools = ["graftkit"] + ([] if args.skip_mergekit else ["mergekit"])
            for tool in tools:
                out = work / f"out-{tool}"
                shutil.rmtree(out, ignore_errors=True)
                warm(floors[method])
                cmd = ([str(VENV_BIN / "graft"), "--quiet", "merge", str(cfg), str(out), "--no-check"]
                       if tool == "graftkit" else [str(VENV_BIN / "mergekit-yaml"), str(cfg), str(out), "--quiet"])
                row[tool] = run_measured(cmd, timeout=3000)
                if row[tool]["rc"] != 0:
                    raise SystemExit(f"{tool} {method} failed:\n{row[tool]['tail']}")
                shutil.rmtree(out, ignore_errors=True)
            for r in row.values():
                r.pop("tail", None)
            results[method] = row
            print(method, json.dumps(row), flush=True)
            record(results)
    finally:
        for leftover in ("out-graftkit", "out-mergekit"):
            shutil.rmtree(work / leftover, ignore_errors=True)
        (work / "floor.safetensors").unlink(missing_ok=True)
        if reuse is None:
            shutil.rmtree(work, ignore_errors=True)


def record(results: dict) -> None:
    """Write what was measured so far (a cut-off run still reports)."""
    lin, ties = results.get("linear", {}), results.get("ties", {})
    goals = {}
    rss = [r["graftkit"]["peak_rss_gb"] for r in (lin, ties) if "graftkit" in r]
    if rss:
        goals["peak_rss_le_1.5GB"] = max(rss) <= 1.5
    if "io_floor" in lin and "graftkit" in lin:
        goals["linear_le_2x_floor"] = lin["graftkit"]["seconds"] <= 2 * lin["io_floor"]["seconds"]
    if "mergekit" in ties and "graftkit" in ties:
        goals["ties_le_0.1x_mergekit"] = ties["graftkit"]["seconds"] <= 0.1 * ties["mergekit"]["seconds"]

    def fmt(row: dict, tool: str) -> str:
        return f"{row[tool]['seconds']:.1f}s/{row[tool]['peak_rss_gb']:.2f}GB" if tool in row else "not measured"

    write_result("merge_scale", {
        "models": "3 synthetic TinyLlama-shaped llamas, 1.1B params, bf16, 2.2 GB each (files in page cache)",
        "results": results, "goals": goals,
    }, "1.1B bf16 llamas (time/peak RSS) - linear of 2: graftkit " + fmt(lin, "graftkit") + ", mergekit "
       + fmt(lin, "mergekit") + ", I/O floor " + fmt(lin, "io_floor") + "; ties of 2 onto base: graftkit "
       + fmt(ties, "graftkit") + ", mergekit " + fmt(ties, "mergekit") + ", I/O floor " + fmt(ties, "io_floor")
       + "; goals: " + ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in goals.items())
       + ("" if "mergekit" in ties else " (ties vs mergekit not measured: run cut off)")
       + f" (2 cores, load average {os.getloadavg()[0]:.1f} at the end)")


if __name__ == "__main__":
    main()
