"""Canonical parameter ids and merging through the name map."""

import pytest
import torch
from handwritten import HandLlama

from graftkit.errors import ArchitectureError
from graftkit.genome.params import canonical_ids, map_by_id
from graftkit.merge.methods import get_method
from graftkit.zoo import tiny


def test_map_from_transformers_llama_to_handwritten_names(genomes):
    mapping = map_by_id(genomes("hf_llama"), genomes("hand"))
    assert mapping["model.layers.0.self_attn.q_proj.weight"] == "blocks.0.attn.wq.weight"
    assert mapping["model.layers.1.mlp.down_proj.weight"] == "blocks.1.ff.w2.weight"
    assert mapping["lm_head.weight"] == "out.weight"
    assert len(set(mapping.values())) == len(mapping) == len(dict(HandLlama().named_parameters()))


def test_merging_through_the_map_equals_merging_by_name(genomes):
    mapping = map_by_id(genomes("hf_llama"), genomes("hand"))
    a, b = tiny("llama", seed=0).state_dict(), tiny("llama", seed=1).state_dict()
    hand = HandLlama()
    hand.load_state_dict({mapping[k]: v for k, v in b.items() if k in mapping}, strict=True)
    renamed_b = hand.state_dict()  # b under other names, in another module tree
    linear = get_method("linear")
    weights = [{"weight": 0.3}, {"weight": 0.7}]
    for name in mapping:
        via_map = linear.merge([a[name], renamed_b[mapping[name]]], base_index=None, model_params=weights,
                               params={}, tensor_name=name)
        by_name = linear.merge([a[name], b[name]], base_index=None, model_params=weights, params={},
                               tensor_name=name)
        assert torch.equal(via_map, by_name), name


def test_canonical_ids_are_stable_names(genomes):
    ids = canonical_ids(genomes("hf_llama"))
    hand_ids = canonical_ids(genomes("hand"))
    assert ids["model.embed_tokens.weight"] == hand_ids["tok.weight"] == "P0"
    assert ids["model.layers.0.self_attn.q_proj.weight"] == hand_ids["blocks.0.attn.wq.weight"]


def test_map_between_different_models_is_refused_with_the_diff(genomes):
    with pytest.raises(ArchitectureError, match="first difference"):
        map_by_id(genomes("hand"), genomes("hand_gelu"))
