"""Shared by the compose benchmarks: result files and the RESULTS.md line (other lines kept)."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def write_result(name: str, payload: dict, line: str) -> None:
    """benchmarks/results/NAME.json and this benchmark's line in RESULTS.md (replaced, others untouched)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    payload = {"benchmark": name, "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "machine": f"{platform.machine()}, {os.cpu_count()} cpus (shared, load {load:.1f}), torch {torch.__version__}, "
                          f"{torch.get_num_threads()} threads", **payload}
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    md = HERE / "RESULTS.md"
    if not md.exists():
        md.write_text("# Benchmark results\n\nOne line per benchmark; each benchmark replaces its own line on rerun.\n\n")
    tag = f"- **{name}**"
    lines = [l for l in md.read_text().splitlines() if not l.startswith(tag)]
    lines.append(f"{tag}: {line}")
    md.write_text("\n".join(lines) + "\n")
