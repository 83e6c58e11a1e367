"""Genes: one id per block computation, across models."""

import json

from graftkit.genome import trace
from graftkit.genome.genes import GeneRegistry, layer_stack
from graftkit.zoo import tiny


def test_llamas_of_different_depth_share_their_block_gene(genomes):
    two = layer_stack(genomes("hf_llama"))
    three = layer_stack(trace(tiny("llama", num_hidden_layers=3)))
    assert len(two) == 2 and len(three) == 3
    assert len({gid for gid, _ in two + three}) == 1
    assert three[2][1].module == "model.layers.2"


def test_mistral_block_with_llama_config_gets_the_llama_gene_and_handwritten_too(genomes):
    llama = layer_stack(genomes("hf_llama"))[0][0]
    assert layer_stack(trace(tiny("mistral")))[0][0] == llama
    assert layer_stack(genomes("hand"))[0][0] == llama  # blocks.0 of the hand-written model


def test_a_wider_mlp_is_another_gene(genomes):
    wide = layer_stack(trace(tiny("llama", intermediate_size=128)))[0][0]
    assert wide != layer_stack(genomes("hf_llama"))[0][0]


def test_registry_records_attention_mlp_and_residual_genes(genomes, tmp_path):
    reg = GeneRegistry()
    reg.add(genomes("hf_llama"), "llama")
    reg.add(genomes("hand"), "hand")
    kinds = {(g.kind, g.label) for g in reg.recurring()}
    assert {("module", "LlamaAttention"), ("module", "LlamaMLP"), ("module", "LlamaDecoderLayer")} <= kinds
    residual = [g for g in reg.genes.values() if g.kind == "residual"]
    assert len(residual) == 2 and all(len(g.occurrences) == 4 for g in residual)  # 2 per model, 2 models
    path = reg.save(tmp_path / "registry.json")
    data = json.loads(path.read_text())
    some = next(iter(data["genes"].values()))
    assert {"encoding", "occurrences", "nodes", "params"} <= set(some)
    again = GeneRegistry.load(path)
    assert again.genes.keys() == reg.genes.keys()
    assert again.genes[residual[0].id].encoding == residual[0].encoding
