"""Equal signatures exactly when the computation is the same up to naming."""

import pytest
import torch

from graftkit.genome import Genome, diff, trace
from graftkit.genome.encoding import MAGIC
from graftkit.zoo import tiny


class Renamed(torch.nn.Module):
    """The same HF model under other module and parameter names."""

    def __init__(self, inner):
        super().__init__()
        self.backbone_v2 = inner

    def forward(self, input_ids):
        return self.backbone_v2(input_ids=input_ids, use_cache=False).logits


def test_renamed_copy_has_the_same_signature(genomes):
    renamed = trace(Renamed(tiny("llama", seed=5)), torch.zeros(2, 5, dtype=torch.long))
    assert renamed.signature == genomes("hf_llama").signature
    assert all(n.startswith("backbone_v2.") for names in renamed.param_names.values() for n in names)


def test_handwritten_llama_equals_transformers_llama(genomes):
    a, b = genomes("hf_llama"), genomes("hand")
    assert diff(a, b).equal, diff(a, b).describe()
    assert a.signature == b.signature


def test_eval_mode_dropout_changes_nothing(genomes):
    assert genomes("hand_dropout").signature == genomes("hand").signature


@pytest.mark.parametrize("variant", ["hand_gelu", "hand_parallel", "hand_depth3", "hand_heads8"])
def test_activation_wiring_depth_and_heads_change_the_signature(genomes, variant):
    assert genomes(variant).signature != genomes("hand").signature
    assert not diff(genomes("hand"), genomes(variant)).equal


def test_widths_64_and_128_differ_with_a_readable_diff(genomes):
    a, b = genomes("hf_w64"), genomes("hf_w128")
    assert a.signature != b.signature
    text = diff(a, b).describe("w64", "w128")
    assert "model.embed_tokens.weight" in text and "(128, 64) vs (128, 128)" in text


def test_activation_diff_names_the_ops_and_modules(genomes):
    d = diff(genomes("hand"), genomes("hand_gelu"))
    assert "op:" in " ".join(d.differences)
    assert "blocks.0.ff" in d.left_where and "blocks.0.ff" in d.right_where


def test_batch_and_sequence_are_symbolic(genomes):
    g = genomes("hf_llama")
    assert g.dynamic
    first_input = next(n for n in g.nodes if n.kind == "input")
    assert first_input.shape == ((2, 3), (5, 7))
    assert any(n.describe().endswith("(B, S, 32) float32") for n in g.nodes)
    assert "(B*S, 32)" in "\n".join(n.describe() for n in g.nodes)


def test_encoding_is_binary_deterministic_and_round_trips(genomes):
    g = genomes("hf_llama")
    blob = g.encoding()
    assert blob.startswith(MAGIC) and blob == g.encoding()
    again = Genome.from_json(g.to_json())
    assert again.encoding() == blob and again.signature == g.signature
    assert g.signature.startswith("gk1-") and len(g.signature) == 4 + 43


def test_parameters_are_roles_not_names(genomes):
    g = genomes("hf_llama")
    ids = g.id_of()
    assert ids["model.embed_tokens.weight"] == 0  # first parameter the computation touches
    assert sorted(ids.values()) == list(range(len(ids)))
    assert len(ids) == len(dict(tiny("llama").named_parameters()))


@pytest.mark.parametrize("arch", ["gpt2", "bert", "mpnet", "t5", "vit", "qwen2", "gemma3_text"])
def test_families_trace_with_symbolic_batch(arch):
    g = trace(tiny(arch))
    assert g.dynamic and g.param_nodes()
    first_input = next(n for n in g.nodes if n.kind == "input")
    assert first_input.shape[0] == (2, 3)
    assert not g.unused or arch in ("bert", "mpnet", "vit")


def test_mistral_with_llama_config_is_the_same_computation(genomes):
    assert trace(tiny("mistral")).signature == genomes("hf_llama").signature
