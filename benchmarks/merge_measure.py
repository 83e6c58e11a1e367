"""Shared by the merge benchmarks: whole-process wall time and peak RSS of a command, and the results files."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
ROOT = HERE.parent
VENV_BIN = ROOT / ".venv" / "bin"


def run_measured(cmd: list[str], timeout: float = 1800, env: dict | None = None) -> dict:
    """Run ``cmd`` (niced) and return wall seconds, peak RSS in GB and the exit code.

    The peak comes from ``/usr/bin/time -f %M``, which forks the command itself: a child
    forked straight from this (large) Python process would start its ru_maxrss at this
    process's size, and the high-water mark survives exec.
    """
    import tempfile

    start = time.perf_counter()
    rss_file = tempfile.NamedTemporaryFile(prefix="graftkit-rss-", delete=False)
    rss_file.close()
    proc = subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", rss_file.name, "nice", "-n", "10", *cmd],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "GRAFTKIT_QUIET": "1", **(env or {})})
    deadline = start + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.02)
    seconds = time.perf_counter() - start
    output = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
    text = Path(rss_file.name).read_text().strip().splitlines()
    os.unlink(rss_file.name)
    peak_kib = int(text[-1]) if text and text[-1].isdigit() else 0
    return {
        "seconds": round(seconds, 2),
        "peak_rss_gb": round(peak_kib / 1024**2, 3),  # %M is in KiB
        "rc": os.waitstatus_to_exitcode(status),
        "tail": output[-600:],
    }


def write_result(name: str, payload: dict, line: str) -> None:
    """benchmarks/results/NAME.json and this benchmark's line in RESULTS.md (other lines kept)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": name, "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "machine": f"{platform.machine()}, {os.cpu_count()} cpus (shared)", **payload}
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    md = HERE / "RESULTS.md"
    if not md.exists():
        md.write_text("# Benchmark results\n\nOne line per benchmark; each benchmark replaces its own line on rerun.\n\n")
    tag = f"- **{name}**"
    lines = [l for l in md.read_text().splitlines() if not l.startswith(tag)]
    lines.append(f"{tag}: {line}")
    md.write_text("\n".join(lines) + "\n")
