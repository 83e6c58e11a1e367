"""Shared test fixtures: where the real datasets live, and a skip when they are absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATASETS = Path(os.environ.get("GRAFTKIT_DATA", ROOT.parent / "shared" / "datasets"))

os.environ.setdefault("GRAFTKIT_QUIET", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    """The shared real datasets; tests that need them skip with a reason where absent."""
    if not SHARED_DATASETS.is_dir():
        pytest.skip(f"real datasets not found at {SHARED_DATASETS} (set GRAFTKIT_DATA)")
    return SHARED_DATASETS
