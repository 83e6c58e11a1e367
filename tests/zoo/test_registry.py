"""Names and aliases of the real-model zoo."""

import pytest

from graftkit.errors import ZooError
from graftkit.zoo import MODELS, list_models, resolve

EXPECTED = {
    "all-MiniLM-L6-v2": "minilm-l6",
    "paraphrase-MiniLM-L3-v2": "minilm-l3",
    "all-mpnet-base-v2": "mpnet",
    "SmolLM2-135M-Instruct": "smollm2",
    "gemma-3-270m": "gemma3",
}


def test_the_five_models_of_anchors_section_7_are_listed():
    assert {e.name: e.aliases[0] for e in MODELS} == EXPECTED


@pytest.mark.parametrize("name,alias", sorted(EXPECTED.items()))
def test_names_and_aliases_resolve_ignoring_case_and_punctuation(name, alias):
    assert resolve(name).name == name
    assert resolve(alias).name == name
    assert resolve(name.upper().replace("-", "_")).name == name


def test_unknown_name_suggests_close_ones():
    with pytest.raises(ZooError) as info:
        resolve("minilm-l7")
    message = str(info.value)
    assert "minilm-l7" in message and "minilm-l6" in message and "graft zoo list" in message


def test_unrelated_name_lists_every_model():
    with pytest.raises(ZooError) as info:
        resolve("resnet50")
    assert all(e.name in str(info.value) for e in MODELS)


def test_aliases_are_unique():
    keys = [n.lower() for e in MODELS for n in (e.name, *e.aliases)]
    assert len(keys) == len(set(keys))


def test_list_models_reports_cache_state(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAFTKIT_CACHE", str(tmp_path))
    entries = list_models()
    assert [e.name for e in entries] == list(EXPECTED)
    assert not any(e.cached for e in entries)
    for e in entries:
        assert e.packages and e.sources and e.params > 0 and "x" in e.shape
