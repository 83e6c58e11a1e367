"""Fixtures of the merge engine tests: one tiny llama family per session."""

from __future__ import annotations

import pytest

from .helpers import perturbed_family


@pytest.fixture(scope="session")
def llama_family(tmp_path_factory):
    """[base, ft1, ft2, ft3]: a tiny llama and three perturbed copies (float32)."""
    return perturbed_family(tmp_path_factory.mktemp("llama"), "llama", n=3)
