"""The real zoo models (slow: each cold trace takes seconds)."""

import pytest
import torch

from graftkit.genome import diff, trace
from graftkit.genome.checkpoint import _hf_config, checkpoint_genome
from graftkit.genome.hf import meta_model
from graftkit.io import Checkpoint

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def user_cache(genome_cache, monkeypatch):
    """Real checkpoints use the user's genome cache, as `graft merge` would (cold on first run)."""
    from conftest import USER_CACHE

    if USER_CACHE is None:
        monkeypatch.delenv("GRAFTKIT_CACHE", raising=False)
    else:
        monkeypatch.setenv("GRAFTKIT_CACHE", USER_CACHE)


def _zoo(name):
    from graftkit import zoo

    try:
        return zoo.get(name, install=False)
    except Exception as exc:  # not materialized on this machine
        pytest.skip(f"zoo model {name} not available: {exc}")


class Renamed(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.trunk = inner

    def forward(self, input_ids):
        return self.trunk(input_ids=input_ids, use_cache=False).logits


def test_smollm2_equals_a_renamed_copy_and_differs_from_gemma3():
    smol = checkpoint_genome(_zoo("SmolLM2-135M-Instruct"))
    with Checkpoint.open(smol.path) as ck:
        model = meta_model(_hf_config(ck.config), smol.model_class)
    renamed = trace(Renamed(model), torch.zeros(2, 5, dtype=torch.long, device="meta"))
    assert renamed.signature == smol.signature
    assert all(n.startswith("trunk.") for names in renamed.param_names.values() for n in names)

    gemma = checkpoint_genome(_zoo("gemma-3-270m"))
    d = diff(smol.genome, gemma.genome)
    assert not d.equal
    text = d.describe("SmolLM2", "gemma-3")
    assert "(49152, 576) vs (262144, 640)" in text and "model.embed_tokens.weight" in text


@pytest.mark.parametrize("name", ["all-MiniLM-L6-v2", "all-mpnet-base-v2"])
def test_encoder_zoo_models_trace_from_their_checkpoints(name):
    from graftkit.genome.compat import check_models

    report = check_models([_zoo(name)])
    found = report.genomes[0]
    assert found.signature.startswith("gk1-") and not found.missing
    # all-mpnet-base-v2's config says MPNetForMaskedLM but its weights are MPNetModel's
    assert found.model_class in ("BertModel", "MPNetModel")
    assert found.genome.dynamic
