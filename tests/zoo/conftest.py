"""Each real zoo model is materialized once per session (in the normal cache, so a warm
cache makes these fixtures free)."""

from __future__ import annotations

from pathlib import Path

import pytest


def _get(name: str) -> Path:
    from graftkit import zoo

    return zoo.get(name)


@pytest.fixture(scope="session")
def minilm_l6() -> Path:
    return _get("all-MiniLM-L6-v2")


@pytest.fixture(scope="session")
def minilm_l3() -> Path:
    return _get("paraphrase-MiniLM-L3-v2")


@pytest.fixture(scope="session")
def mpnet() -> Path:
    return _get("all-mpnet-base-v2")


@pytest.fixture(scope="session")
def smollm2() -> Path:
    return _get("SmolLM2-135M-Instruct")


@pytest.fixture(scope="session")
def gemma3() -> Path:
    return _get("gemma-3-270m")
