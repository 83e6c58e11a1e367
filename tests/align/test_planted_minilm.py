"""A real MiniLM-L6 whose neurons were randomly permuted is re-aligned exactly (slow: real model)."""

from __future__ import annotations

import pytest
import torch

from graftkit.align import (
    activation_matching,
    permute_model,
    random_permutation,
    recovered_fraction,
    spec_for,
    state_tensors,
    weight_matching,
)


@pytest.fixture(scope="module")
def minilm():
    from transformers import AutoModel, AutoTokenizer

    from graftkit import zoo

    try:
        folder = zoo.get("all-MiniLM-L6-v2", install=False)
    except Exception as exc:  # noqa: BLE001 - offline machine without the package
        pytest.skip(f"all-MiniLM-L6-v2 not available from the zoo: {exc}")
    return AutoModel.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)


@pytest.mark.slow
def test_planted_permutation_recovered_by_weight_and_activation_matching(minilm):
    model, tok = minilm
    spec = spec_for(model)
    planted = random_permutation(spec, seed=0)
    permuted = permute_model(model, spec, planted)
    words = ("a gripping funny film the plot never comes together it is what it is slow dull bright actors "
             "music scene ending story director camera script long short warm cold lovely awful").split()
    gen = torch.Generator().manual_seed(0)
    texts = [" ".join(words[i] for i in torch.randint(0, len(words), (12,), generator=gen)) for _ in range(32)]
    batch = dict(tok(texts, padding=True, return_tensors="pt"))
    with torch.no_grad():  # the planted model computes the same thing (hidden states in the permuted basis)
        torch.testing.assert_close(permuted(**batch).last_hidden_state,
                                   model(**batch).last_hidden_state[..., planted["R"]], atol=1e-4, rtol=0)
    wm = weight_matching(spec, state_tensors(model), state_tensors(permuted), seed=0)
    assert min(recovered_fraction(spec, planted, wm.perm).values()) == 1.0
    am = activation_matching(spec, model, permuted, [batch])
    assert min(recovered_fraction(spec, planted, am.perm).values()) == 1.0
    realigned = permute_model(permuted, spec, wm.perm)
    for name, tensor in state_tensors(model).items():
        assert torch.equal(state_tensors(realigned)[name], tensor), name
