"""load_csv / load_jsonl on small files, and the errors that name file and line."""

from __future__ import annotations

import json

import pytest

from graftkit.data import load_csv, load_jsonl
from graftkit.errors import DataError


def _write_csv(path, rows, header="text,label"):
    path.write_text("\n".join([header] + rows) + "\n" if header else "\n".join(rows) + "\n")
    return path


def test_csv_by_column_name_carves_validation_and_test(tmp_path):
    rows = [f'"sentence {i}, with a comma",{"good" if i % 2 else "bad"}' for i in range(50)]
    ds = load_csv(_write_csv(tmp_path / "reviews.csv", rows), "text", "label")
    assert ds.name == "reviews" and ds.kind == "text-classification"
    assert ds.label_names == ["bad", "good"]  # string labels: sorted
    assert ds.sizes() == {"train": 36, "validation": 4, "test": 10}
    all_texts = ds.train.texts + ds.validation.texts + ds.test.texts
    assert sorted(all_texts) == sorted(f"sentence {i}, with a comma" for i in range(50))
    again = load_csv(tmp_path / "reviews.csv", "text", "label")
    assert again.test.texts == ds.test.texts  # fixed seed


def test_csv_by_index_without_header_with_pairs_and_given_files(tmp_path):
    train = _write_csv(tmp_path / "train.tsv", [f"{i % 3}\tpremise {i}\thyp {i}" for i in range(30)], header=None)
    test = _write_csv(tmp_path / "test.tsv", ["2\tp\th", "0\tq\tk"], header=None)
    ds = load_csv({"train": train, "test": test}, 1, 0, text_pair_column=2, header=False, delimiter="\t",
                  label_names=["a", "b", "c"])
    assert ds.kind == "text-pair-classification"
    assert ds.label_names == ["a", "b", "c"]
    assert ds.test.labels == [2, 0] and ds.test.text_pairs == ["h", "k"]
    assert len(ds.train) + len(ds.validation) == 30


def test_csv_integer_labels_keep_their_values(tmp_path):
    ds = load_csv(_write_csv(tmp_path / "x.csv", [f"t{i},{i % 3}" for i in range(30)]), "text", "label", test_fraction=0)
    assert ds.label_names == ["0", "1", "2"] and "test" not in ds.splits
    with pytest.raises(DataError, match="no 'test' split"):
        ds.test


def test_malformed_csv_row_names_file_and_line(tmp_path):
    path = _write_csv(tmp_path / "bad.csv", ["fine,1", "also fine,0", "missing label"])
    with pytest.raises(DataError, match=r"bad\.csv, line 4: row has 1 field"):
        load_csv(path, "text", "label")
    with pytest.raises(DataError, match=r"no column 'review'"):
        load_csv(path, "review", "label")


def test_unknown_label_and_empty_file(tmp_path):
    path = _write_csv(tmp_path / "l.csv", ["a,pos", "b,neutral"])
    with pytest.raises(DataError, match="label 'neutral' is not one of"):
        load_csv(path, "text", "label", label_names=["neg", "pos"])
    empty = tmp_path / "empty.csv"
    empty.write_text("text,label\n")
    with pytest.raises(DataError, match="no rows"):
        load_csv(empty, "text", "label")
    with pytest.raises(DataError, match="does not exist"):
        load_csv(tmp_path / "nope.csv", "text", "label")


def test_jsonl(tmp_path):
    path = tmp_path / "emo.jsonl"
    path.write_text("\n".join(json.dumps({"sentence": f"s{i}", "y": ["joy", "fear"][i % 2]}) for i in range(20)) + "\n\n")
    ds = load_jsonl(path, "sentence", "y", label_names=["fear", "joy"], validation_fraction=0.0)
    assert ds.label_names == ["fear", "joy"] and ds.sizes() == {"train": 16, "test": 4}
    assert ds.train.labels[0] == 1 and ds.train.texts[0] == "s0"


def test_malformed_jsonl_names_file_and_line(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text('{"text": "a", "label": 0}\n{"text": "b", "label": \n')
    with pytest.raises(DataError, match=r"broken\.jsonl, line 2: not valid JSON"):
        load_jsonl(path)
    path.write_text('{"text": "a", "label": 0}\n{"txt": "b", "label": 1}\n')
    with pytest.raises(DataError, match=r"line 2: no field 'text'"):
        load_jsonl(path)
