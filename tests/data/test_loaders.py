"""Every shared dataset loads with the counts of the shared README table."""

from __future__ import annotations

from functools import lru_cache

import pytest
import torch

from graftkit.data import list_datasets, load_dataset
from graftkit.data.types import KINDS

@lru_cache(maxsize=None)
def _load(name, root):
    """Each dataset parsed once per test session (the image files take seconds)."""
    return load_dataset(name, root=root)


# name -> (README counts: file train (validation carved from it where none ships), validation, test), classes
README = {
    "sst2": ((6920, 872, 1821), 2),
    "sst5": ((8544, 1101, 2210), 5),
    "trec": ((5452, None, 500), 6),
    "agnews": ((6001, None, 7600), 4),
    "subj": ((7700, 300, 2000), 2),
    "mr": ((8662, None, 2000), 2),
    "cr": ((1775, None, 2000), 2),
    "mpqa": ((8606, None, 2000), 2),
    "emotion": ((16000, 2000, 2000), 6),
    "rte": ((2490, None, 277), 2),
    "cb": ((250, None, 56), 3),
    "mnist": ((5000, None, 10000), 10),
    "fashion_mnist": ((60000, None, 10000), 10),
}
UNSPLIT = {"sms_spam": (5574, 2), "digits": (1797, 10), "lfw_subset": (200, 2)}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(README))
def test_split_counts_match_readme(datasets_dir, name):
    (train, validation, test), classes = README[name]
    ds = _load(name, datasets_dir)
    sizes = ds.sizes()
    assert list(sizes) == ["train", "validation", "test"]
    assert ds.num_labels == classes
    if validation is None:  # carved: 10% of the training file, nothing lost
        assert sizes["train"] + sizes["validation"] == train
        assert abs(sizes["validation"] - 0.1 * train) <= classes
    else:
        assert (sizes["train"], sizes["validation"]) == (train, validation)
    assert sizes["test"] == test
    for split in ds.splits.values():
        assert split.labels is not None and len(split.labels) == len(split)
        assert set(split.labels) <= set(range(classes))
        if ds.kind == "image-classification":
            assert split.images.dtype == torch.float32 and split.images.ndim == 4
            assert 0.0 <= float(split.images.min()) and float(split.images.max()) <= 1.0
        else:
            assert all(isinstance(t, str) for t in split.texts)
            # cr and mpqa ship a few rows whose text is blank; they are kept so counts match
            assert sum(not t for t in split.texts) <= 3
    assert len(set(ds.train.labels)) == classes  # every class present in train


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(UNSPLIT))
def test_unsplit_datasets_are_carved_without_loss(datasets_dir, name):
    total, classes = UNSPLIT[name]
    ds = _load(name, datasets_dir)
    sizes = ds.sizes()
    assert sum(sizes.values()) == total
    assert abs(sizes["test"] - 0.2 * total) <= classes
    assert ds.num_labels == classes


def test_parsed_contents(datasets_dir):
    sst2 = load_dataset("sst2", root=datasets_dir)
    assert sst2.train.texts[0].startswith("a stirring , funny and finally transporting")
    assert sst2.train.labels[0] == 1 and sst2.label_names == ["negative", "positive"]
    trec = load_dataset("trec", root=datasets_dir)
    assert trec.label_names[1] == "description"
    assert trec.test.labels.count(5) == 113  # NUM questions in the official test file
    ag = load_dataset("agnews", root=datasets_dir)
    assert ag.test.texts[0].startswith("Fears for T N pension after talks. Unions representing")
    assert ag.test.labels[0] == 2 and ag.label_names[2] == "Business"
    assert all("#39;" not in t for t in ag.train.texts)
    emo = load_dataset("emotion", root=datasets_dir)
    assert emo.train.labels[0] == emo.label_names.index("sadness")
    rte = load_dataset("rte", root=datasets_dir)
    assert rte.kind == "text-pair-classification" and len(rte.test.text_pairs) == 277
    assert rte.test.texts[0] and rte.test.text_pairs[0]
    spam = load_dataset("sms_spam", root=datasets_dir)
    assert sum(s.labels.count(1) for s in spam.splits.values()) == 747


@pytest.mark.slow
def test_mnist_test_set_is_the_official_one(datasets_dir):
    ds = _load("mnist", datasets_dir)
    assert ds.test.images.shape == (10000, 1, 28, 28)
    assert abs(float(ds.test.images.mean()) - 0.13251) < 1e-4  # PROVENANCE.md
    assert [ds.test.labels.count(c) for c in range(3)] == [980, 1135, 1032]
    digits = _load("digits", datasets_dir)
    assert digits.train.images.shape[1:] == (1, 8, 8)


def test_language_modeling_splits(datasets_dir):
    shakespeare = load_dataset("tiny_shakespeare", root=datasets_dir)
    text = "".join(shakespeare.splits[s].text for s in ("train", "validation", "test"))
    assert len(text) == 1_115_394 and text.startswith("First Citizen:")
    assert shakespeare.train.text.endswith("\n") and shakespeare.validation.text.endswith("\n")  # cut at line ends
    wiki = load_dataset("wikitext2", root=datasets_dir)
    assert list(wiki.splits) == ["validation", "test"]
    assert " = Homarus gammarus = " in wiki.validation.text


def test_catalogue_is_complete():
    names = {e.name for e in list_datasets()}
    assert set(README) | set(UNSPLIT) | {"tiny_shakespeare", "wikitext2", "synthetic-sentiment", "synthetic-topic"} == names
    assert all(e.kind in KINDS for e in list_datasets())


def test_validation_carving_is_deterministic_and_disjoint(datasets_dir):
    a = load_dataset("trec", root=datasets_dir)
    b = load_dataset("trec", root=datasets_dir)
    assert a.validation.texts == b.validation.texts
    assert a.train.texts == b.train.texts
    # carving keeps class shares (stratified)
    share = a.validation.labels.count(0) / len(a.validation)
    assert abs(share - a.train.labels.count(0) / len(a.train)) < 0.01
