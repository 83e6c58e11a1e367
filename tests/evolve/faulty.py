"""Objectives for the Ray tests; importable by Ray workers (the fixture puts this folder on PYTHONPATH)."""

from __future__ import annotations

import os
from pathlib import Path


def crash_on_first_call(model) -> float:
    """Kills its worker process the first time it runs anywhere (a marker file remembers), then scores."""
    marker = Path(os.environ["GRAFTKIT_EVOLVE_CRASH_MARKER"])
    if not marker.exists():
        marker.write_text("crashed once\n")
        os._exit(1)
    with open(os.environ["GRAFTKIT_EVOLVE_CALL_LOG"], "a") as fh:
        fh.write(f"{os.getpid()}\n")
    return -float(sum(p.detach().float().pow(2).mean() for p in model.parameters()))
