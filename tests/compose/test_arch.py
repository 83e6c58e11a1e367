import pytest
import torch
from torch import nn

from graftkit import zoo
from graftkit.compose.arch import FAMILIES, describe, describe_config, get_module
from graftkit.errors import CompositionError

EXPECTED_FAMILY = {"gpt2": "decoder-only", "llama": "decoder-only", "mistral": "decoder-only", "qwen2": "decoder-only",
                   "gemma": "decoder-only", "gemma3_text": "decoder-only", "phi3": "decoder-only", "bert": "encoder-only",
                   "roberta": "encoder-only", "mpnet": "encoder-only", "t5": "encoder-decoder", "vit": "vision"}


@pytest.mark.parametrize("arch", sorted(zoo.TINY_ARCHITECTURES))
def test_handler_finds_parts_of_every_tiny_architecture(arch):
    model = zoo.tiny(arch)
    info = describe(model)
    assert info.family == EXPECTED_FAMILY[arch] and info.family in FAMILIES
    assert info.hidden_size == 32 and info.num_layers == 2
    layers = get_module(model, info.layers_path)
    assert isinstance(layers, nn.ModuleList) and len(layers) == model.config.num_hidden_layers
    assert info.embeddings_path is not None and get_module(model, info.embeddings_path) is model.get_input_embeddings()
    if info.family == "decoder-only":
        assert get_module(model, info.head_path) is model.get_output_embeddings()
        norm = get_module(model, info.final_norm_path)
        assert norm is not None and "norm" in type(norm).__name__.lower() or isinstance(norm, nn.LayerNorm)
    if arch == "t5":
        assert set(info.stacks) == {"encoder", "decoder"} and info.final_norm_path == "encoder.final_layer_norm"
    if arch == "vit":
        assert info.final_norm_path is not None and info.main_input == "pixel_values"
    # the same answer from the config alone, on the meta device (no weights)
    assert describe_config(model.config, type(model)) == info


def test_handler_on_heads_of_one_family():
    mlm = zoo.tiny("bert", head="masked-lm")
    info = describe(mlm)
    assert info.base_path == "bert" and info.layers_path == "bert.encoder.layer" and info.head_path == "cls"
    clf = zoo.tiny("mpnet", head="sequence-classification", num_labels=3)
    assert describe(clf).head_path == "classifier"


def test_unlocatable_layers_name_the_model():
    class Flat(nn.Module):
        def __init__(self):
            super().__init__()
            self.config = zoo.tiny_config("llama")
            self.proj = nn.Linear(4, 4)

    with pytest.raises(CompositionError, match="flat-model.*no layer stack"):
        describe(Flat(), "flat-model")
    with pytest.raises(CompositionError, match="not a transformers model"):
        describe(nn.Linear(2, 2), "plain")


def test_config_description_reads_no_weights():
    config = zoo.tiny_config("llama", num_hidden_layers=5)
    info = describe_config(config, label="five")
    assert info.num_layers == 5 and info.family == "decoder-only"
    assert describe_config(config, label="five") is info  # cached


@pytest.mark.slow
@pytest.mark.parametrize("name,family,hidden,layers", [
    ("all-MiniLM-L6-v2", "encoder-only", 384, 6), ("paraphrase-MiniLM-L3-v2", "encoder-only", 384, 3),
    ("all-mpnet-base-v2", "encoder-only", 768, 12), ("SmolLM2-135M-Instruct", "decoder-only", 576, 30),
    ("gemma-3-270m", "decoder-only", 640, 18)])
def test_handler_on_zoo_models(name, family, hidden, layers):
    from graftkit.compose.experts import ExpertModel

    expert = ExpertModel(name)
    info = expert.info  # from config.json on meta: no weights read
    assert (info.family, info.hidden_size, info.num_layers) == (family, hidden, layers)
    assert not expert.loaded
    if family == "decoder-only":
        assert info.final_norm_path == "model.norm" and info.head_path == "lm_head"
