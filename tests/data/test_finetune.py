"""Fine-tuning makes HF-loadable experts that beat chance, reproducibly; its bad inputs fail early."""

from __future__ import annotations

import json

import pytest
import torch

from graftkit.data import Dataset, Split, load_dataset
from graftkit.data.evaluate import classification_accuracy
from graftkit.data.finetune import RESULT_FILE, FinetuneSettings, finetune
from graftkit.errors import CheckpointError, DataError

from .helpers import save_tiny_with_tokenizer

TINY_BERT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)


@pytest.fixture(scope="module")
def topic():
    return load_dataset("synthetic-topic")


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory, topic):
    return save_tiny_with_tokenizer("bert", tmp_path_factory.mktemp("base") / "bert", topic)


def test_tiny_bert_expert_beats_chance_reloads_and_is_reproducible(tmp_path, tiny_bert, topic):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    settings = FinetuneSettings(steps=40, lr=3e-3, batch_size=32, val_size=200, threads=1)
    result = finetune(tiny_bert, topic, tmp_path / "a", settings)
    assert result.metric == "accuracy" and result.validation_n == 200
    assert result.value > 0.5  # 4 balanced classes: chance is 0.25
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "a")
    assert model.config.id2label == dict(enumerate(topic.label_names))
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "a")
    again = classification_accuracy(model, topic.validation.head(200), tokenizer, max_length=64)
    assert again.accuracy == pytest.approx(result.value)
    record = json.loads((tmp_path / "a" / RESULT_FILE).read_text())
    assert record["value"] == result.value and record["settings"]["steps"] == 40
    assert record["environment"]["threads"] == 1
    second = finetune(tiny_bert, topic, tmp_path / "b", settings)
    assert second.value == result.value and second.final_train_loss == result.final_train_loss


def test_existing_output_and_wrong_pairings_fail_before_training(tmp_path, tiny_bert, topic):
    (tmp_path / "taken").mkdir()
    with pytest.raises(CheckpointError, match="already exists"):
        finetune(tiny_bert, topic, tmp_path / "taken")
    lm = Dataset("toy-lm", "language-modeling", [], {"train": Split("train", text="a b c " * 50),
                                                     "validation": Split("validation", text="a b c " * 5)})
    with pytest.raises(DataError, match="not a causal LM"):
        finetune(tiny_bert, lm, tmp_path / "x")
    with pytest.raises(DataError, match="trains image classifiers"):
        finetune("vit-tiny", topic, tmp_path / "x")
    with pytest.raises(CheckpointError, match="neither a folder nor a zoo model"):
        finetune("no-such-model-anywhere", topic, tmp_path / "x")
    wiki_like = Dataset("wiki", "language-modeling", [], {"validation": Split("validation", text="x")})
    with pytest.raises(DataError, match="no 'train' split"):
        finetune(tiny_bert, wiki_like, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_tiny_causal_lm_on_text_and_on_label_words(tmp_path, topic):
    text = " ".join(f"the {w} sat on the mat ." for w in ["cat", "dog", "cow", "fox"] * 60)
    lm = Dataset("toy-lm", "language-modeling", [], {"train": Split("train", text=text),
                                                     "validation": Split("validation", text=text[:600])})
    folder = save_tiny_with_tokenizer("llama", tmp_path / "llama", lm)
    result = finetune(folder, lm, tmp_path / "lm", FinetuneSettings(steps=30, lr=3e-3, batch_size=4, max_length=16, threads=1))
    assert result.recipe == "causal-lm" and result.metric == "perplexity"
    assert result.value < result.extra["perplexity_before"] / 2  # it learned the repeated text
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(tmp_path / "lm").config.model_type == "llama"

    small = Dataset(topic.name, topic.kind, topic.label_names,
                    {"train": topic.train.head(400), "validation": topic.validation.head(100)})
    folder = save_tiny_with_tokenizer("llama", tmp_path / "llama-cls", topic)
    words = finetune(folder, small, tmp_path / "cls", FinetuneSettings(steps=30, lr=3e-3, batch_size=16, threads=1))
    assert words.recipe == "causal-lm-label-words" and words.validation_n == 100
    assert words.value > 0.3


def _bright_half_images(n: int, seed: int) -> Split:
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 1, 8, 8, generator=g) * 0.3
    labels = torch.randint(0, 2, (n,), generator=g)
    for i, y in enumerate(labels.tolist()):
        images[i, 0, :, y * 4 : y * 4 + 4] += 0.6
    return Split("x", images=images, labels=labels.tolist())


def test_vit_from_config_learns_a_simple_image_task(tmp_path):
    from transformers import AutoModelForImageClassification

    splits = {"train": _bright_half_images(256, 0), "validation": _bright_half_images(64, 1)}
    ds = Dataset("halves", "image-classification", ["left", "right"], splits)
    result = finetune("vit-tiny", ds, tmp_path / "vit", FinetuneSettings(steps=40, batch_size=32, threads=1))
    assert result.value > 0.8
    model = AutoModelForImageClassification.from_pretrained(tmp_path / "vit")
    assert model.config.image_size == 8 and model.config.num_channels == 1
    assert (tmp_path / "vit" / "preprocessor_config.json").is_file()


@pytest.mark.slow
def test_minilm_short_finetune_beats_chance(tmp_path):
    from transformers import AutoModelForSequenceClassification

    from graftkit import zoo

    base = zoo.get("all-MiniLM-L6-v2")
    ds = load_dataset("synthetic-topic")
    result = finetune(base, ds, tmp_path / "minilm", FinetuneSettings(steps=50, batch_size=16, lr=2e-4, val_size=200))
    assert result.value > 0.5  # 4 balanced classes: chance is 0.25
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "minilm")
    assert model.config.id2label == dict(enumerate(ds.label_names))
