import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from handwritten import HandLlama  # noqa: E402

from graftkit.genome import trace  # noqa: E402
from graftkit.zoo import tiny  # noqa: E402

IDS = torch.zeros(2, 5, dtype=torch.long)
USER_CACHE = os.environ.get("GRAFTKIT_CACHE")  # the real models' genomes may use the user's cache


@pytest.fixture(autouse=True)
def genome_cache(tmp_path_factory, monkeypatch):
    """One genome cache for the whole session: the tiny checkpoints recur across tests
    (same config and header, same cache entry), as they would for a user."""
    monkeypatch.setenv("GRAFTKIT_CACHE", str(tmp_path_factory.getbasetemp() / "genome-cache"))


@pytest.fixture(scope="session")
def genomes():
    """Traced genomes by name, each traced once per session (tracing costs seconds)."""
    cache: dict = {}
    makers = {
        "hf_llama": lambda: trace(tiny("llama")),
        "hand": lambda: trace(HandLlama(), IDS),
        "hand_dropout": lambda: trace(HandLlama(dropout=0.1), IDS),
        "hand_gelu": lambda: trace(HandLlama(act=torch.nn.functional.gelu), IDS),
        "hand_parallel": lambda: trace(HandLlama(parallel=True), IDS),
        "hand_depth3": lambda: trace(HandLlama(depth=3), IDS),
        "hand_heads8": lambda: trace(HandLlama(heads=8, kv_heads=2), IDS),
        "hf_w64": lambda: trace(tiny("llama", hidden_size=64)),
        "hf_w128": lambda: trace(tiny("llama", hidden_size=128)),
    }

    def get(name):
        if name not in cache:
            cache[name] = makers[name]()
        return cache[name]

    return get
