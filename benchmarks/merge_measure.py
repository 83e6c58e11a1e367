"""Shared by the merge benchmarks: whole-process wall time and peak RSS of a command."""

from __future__ import annotations

import os
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


