"""Where every benchmark records itself: results/NAME.json and its own line in RESULTS.md."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
HEADER = "# Benchmark results\n\nOne line per benchmark; each benchmark replaces its own line on rerun.\n\n"


def machine() -> str:
    """The machine as a results file states it: cores, load at the end, torch build if loaded."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    text = f"{platform.machine()}, {os.cpu_count()} cpus (shared, load {load:.1f})"
    torch = sys.modules.get("torch")  # never imported here: some benchmarks stay torch-free
    if torch is not None:
        text += f", torch {torch.__version__}, {torch.get_num_threads()} threads"
    return text


def write_result(name: str, payload: dict, line: str) -> None:
    """benchmarks/results/NAME.json and this benchmark's line in RESULTS.md (others' lines kept)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": name, "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "machine": machine(), **payload}
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    md = HERE / "RESULTS.md"
    if not md.exists():
        md.write_text(HEADER)
    tag = f"- **{name}**"
    lines = [l for l in md.read_text().splitlines() if not l.startswith(tag + ":") and not l.startswith(tag + " ")]
    lines.append(f"{tag}: {line}")
    md.write_text("\n".join(lines) + "\n")
