"""Synthetic datasets are deterministic and balanced; bad requests give clear DataErrors."""

from __future__ import annotations

import pytest

from graftkit.data import load_dataset
from graftkit.data.synthetic import SIZES, sentiment_dataset, topic_dataset
from graftkit.errors import DataError


@pytest.mark.parametrize("name,classes", [("synthetic-sentiment", 2), ("synthetic-topic", 4)])
def test_synthetic_is_deterministic_balanced_and_disjoint(name, classes, monkeypatch):
    monkeypatch.setenv("GRAFTKIT_DATA", "/nonexistent/graftkit-data")  # needs no files
    a, b = load_dataset(name), load_dataset(name)
    assert a.sizes() == SIZES
    for split in ("train", "validation", "test"):
        assert a.split(split).texts == b.split(split).texts
        assert a.split(split).labels == b.split(split).labels
    counts = a.train.label_counts()
    assert len(counts) == classes and max(counts.values()) - min(counts.values()) < 0.1 * len(a.train) / classes
    assert not set(a.train.texts) & set(a.test.texts)  # no example in two splits
    assert len(set(a.train.texts)) > 0.99 * len(a.train)


def test_synthetic_seed_changes_the_data_and_text_is_varied():
    assert sentiment_dataset(seed=1).train.texts != sentiment_dataset(seed=2).train.texts
    texts = topic_dataset().train.texts
    vocab = {w for t in texts for w in t.lower().split()}
    assert len(vocab) > 250
    sentiment = sentiment_dataset().train.texts
    assert any(" not " in t or "never" in t for t in sentiment)  # negations
    assert any(", but " in t for t in sentiment)  # contrasts


def test_unknown_dataset_suggests_close_names():
    with pytest.raises(DataError, match=r"unknown dataset 'agnew'.*did you mean 'agnews'"):
        load_dataset("agnew")
    with pytest.raises(DataError, match="graft data list"):
        load_dataset("zzzzzz")
    assert load_dataset("Synthetic_Topic").name == "synthetic-topic"  # aliases and case


def test_missing_data_folder_names_folder_and_env_var(monkeypatch, tmp_path):
    monkeypatch.setenv("GRAFTKIT_DATA", str(tmp_path / "missing"))
    with pytest.raises(DataError, match=r"missing \(from \$GRAFTKIT_DATA\) does not exist"):
        load_dataset("sst2")
    with pytest.raises(DataError, match=r"lacks sst2/.*GRAFTKIT_DATA"):
        load_dataset("sst2", root=tmp_path)
    monkeypatch.delenv("GRAFTKIT_DATA")
    monkeypatch.chdir(tmp_path)
    import graftkit.data.root as root

    monkeypatch.setattr(root, "_REPO", tmp_path / "repo")
    with pytest.raises(DataError, match=r"no data folder: .*shared/datasets does not exist and \$GRAFTKIT_DATA is not set"):
        load_dataset("mnist")


def test_split_that_does_not_exist(datasets_dir):
    wiki = load_dataset("wikitext2", root=datasets_dir)
    with pytest.raises(DataError, match=r"'wikitext2' has no 'train' split \(it has: validation, test\)"):
        wiki.train
    assert load_dataset("sst2", root=datasets_dir).split("dev").name == "validation"


def test_malformed_shared_file_names_file_and_line(tmp_path):
    (tmp_path / "sst2").mkdir()
    (tmp_path / "sst2" / "stsa.binary.train").write_text("1 good film\n7 odd label\n")
    with pytest.raises(DataError, match=r"stsa\.binary\.train, line 2: label '7'"):
        load_dataset("sst2", root=tmp_path)
    (tmp_path / "trec").mkdir()
    (tmp_path / "trec" / "train.txt").write_text("DESC:manner How ?\nnot a trec line\n")
    with pytest.raises(DataError, match=r"train\.txt, line 2: expected 'COARSE:fine question'"):
        load_dataset("trec", root=tmp_path)
