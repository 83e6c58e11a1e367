"""The real zoo models (slow: each cold trace takes seconds)."""

import json
import shutil
import struct

import pytest

from graftkit.genome.compat import check_models

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def user_cache(genome_cache, monkeypatch):
    """Real checkpoints use the user's genome cache, as `graft merge` would (cold on first run)."""
    from .conftest import USER_CACHE

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


def _renamed_copy(src, dst):
    """SmolLM2's checkpoint with every "model." prefix dropped: header rewritten, data left
    sparse (only headers are read, so no 540 MB copy is needed)."""
    with (src / "model.safetensors").open("rb") as fh:
        size = struct.unpack("<Q", fh.read(8))[0]
        header = json.loads(fh.read(size))
    meta = header.pop("__metadata__", None)
    renamed = {(k[len("model."):] if k.startswith("model.") else k): v for k, v in header.items()}
    if meta:
        renamed["__metadata__"] = meta
    blob = json.dumps(renamed).encode()
    blob += b" " * (-len(blob) % 8)
    end = max(v["data_offsets"][1] for v in header.values())
    dst.mkdir()
    with (dst / "model.safetensors").open("wb") as fh:
        fh.write(struct.pack("<Q", len(blob)) + blob)
        fh.truncate(8 + len(blob) + end)
    shutil.copy(src / "config.json", dst / "config.json")
    return dst


def test_smollm2_equals_a_renamed_copy_and_differs_from_gemma3(tmp_path):
    smol = _zoo("SmolLM2-135M-Instruct")
    report = check_models([smol, _renamed_copy(smol, tmp_path / "renamed")])
    assert report.compatible, report.describe()
    assert report.param_maps[1]["layers.3.mlp.up_proj.weight"] == "model.layers.3.mlp.up_proj.weight"

    report = check_models([smol, _zoo("gemma-3-270m")])
    assert not report.compatible
    text = report.describe()
    assert "(49152, 576) vs (262144, 640)" in text and "model.embed_tokens.weight" in text


@pytest.mark.parametrize("name", ["all-MiniLM-L6-v2", "all-mpnet-base-v2"])
def test_encoder_zoo_models_trace_from_their_checkpoints(name):
    report = check_models([_zoo(name)])
    found = report.genomes[0]
    assert found.signature.startswith("gk1-") and not found.missing
    # all-mpnet-base-v2's config says MPNetForMaskedLM but its weights are MPNetModel's
    assert found.model_class in ("BertModel", "MPNetModel")
    assert found.genome.dynamic
