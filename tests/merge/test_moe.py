"""`graft moe`: a Mixtral from tiny llamas that loads with transformers and generates."""

from __future__ import annotations

import pytest
import torch

from graftkit.errors import ValidationError
from graftkit.merge.moe import assemble_moe

from .helpers import perturbed_family, with_word_tokenizer

WORDS = ["<unk>", "</s>"] + [f"w{i}" for i in range(126)]


@pytest.fixture(scope="module")
def experts(tmp_path_factory):
    root = tmp_path_factory.mktemp("moe")
    family = perturbed_family(root, "llama", n=2, scale=0.05)
    for folder in family:
        with_word_tokenizer(folder, WORDS)
    return family


def _config(tmp_path, base, experts, mode="hidden", extra=""):
    body = "".join(f"  - source_model: {e}\n    positive_prompts: [\"w{3 + i} w{9 + i} w{20 + i}\"]\n"
                   f"    negative_prompts: [\"w50\"]\n" for i, e in enumerate(experts))
    path = tmp_path / f"moe_{mode}.yaml"
    path.write_text(f"base_model: {base}\ngate_mode: {mode}\nexperts_per_token: 2\n{extra}experts:\n{body}")
    return path


@pytest.mark.parametrize("mode", ["hidden", "cheap_embed", "random"])
def test_moe_loads_and_generates(experts, tmp_path, mode):
    from transformers import MixtralForCausalLM

    base, e1, e2 = experts
    result = assemble_moe(_config(tmp_path, base, [e1, e2, base], mode), tmp_path / "out")
    assert result.experts == 3 and "generated 8 tokens" in result.check
    model = MixtralForCausalLM.from_pretrained(str(tmp_path / "out"))
    assert model.config.num_local_experts == 3
    assert torch.isfinite(model(torch.arange(1, 10)[None]).logits).all()


def test_identical_experts_reproduce_the_base(experts, tmp_path):
    """Every expert a copy of the base: whatever the router picks, the MoE computes the base model."""
    from transformers import AutoModelForCausalLM, MixtralForCausalLM

    base = experts[0]
    assemble_moe(_config(tmp_path, base, [base, base], "random"), tmp_path / "out", check=False)
    ids = torch.arange(1, 12)[None]
    moe = MixtralForCausalLM.from_pretrained(str(tmp_path / "out")).eval()
    ref = AutoModelForCausalLM.from_pretrained(str(base)).eval()
    with torch.no_grad():
        assert torch.allclose(moe(ids).logits, ref(ids).logits, atol=1e-4)


def test_moe_validation_lists_problems(experts, tmp_path):
    bert = perturbed_family(tmp_path, "bert", n=0)[0]
    path = _config(tmp_path, experts[0], [experts[1], bert])
    path.write_text(path.read_text().replace("experts_per_token: 2", "experts_per_token: 5"))
    with pytest.raises(ValidationError) as info:
        assemble_moe(path, tmp_path / "out")
    found = "\n".join(info.value.problems)
    assert "experts_per_token 5" in found and "not llama/mistral" in found
    assert not (tmp_path / "out").exists()
