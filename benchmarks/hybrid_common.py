"""Shared helpers of the hybrid benchmarks: timing, writing results and the RESULTS.md line."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(__file__).parent / "results"
TABLE = Path(__file__).parent / "RESULTS.md"


def timed(fn: Any, repeat: int = 1) -> float:
    """Best wall time of ``repeat`` runs (the machine is shared; the best run is the least disturbed)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def write(name: str, data: dict[str, Any], line: str) -> None:
    """benchmarks/results/NAME.json and NAME's line in RESULTS.md (only that line is replaced)."""
    RESULTS.mkdir(exist_ok=True)
    data = {"machine": f"{platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}", **data}
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=2))
    lines = TABLE.read_text().splitlines() if TABLE.exists() else []
    entry = f"- **{name}**: {line}"
    lines = [l for l in lines if not l.startswith(f"- **{name}**")] + [entry]
    TABLE.write_text("\n".join(lines) + "\n")
    print(entry)
