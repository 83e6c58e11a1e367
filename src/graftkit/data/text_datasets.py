"""Parsers for the shared text-classification datasets, one small function each.

Each file format was read before its parser was written (see the shared README):
SST-2 is ``label sentence``, TREC ``COARSE:fine question``, AG News a CSV with a
header and labels 1..4, MR/CR/MPQA headerless ``label,text`` CSVs, SST-5/SUBJ/
emotion/RTE/CB JSON lines, SMS spam ``ham|spam<TAB>text``.
"""

from __future__ import annotations

import re
from pathlib import Path

from graftkit.data.files import csv_rows, field_of, jsonl_rows, open_text
from graftkit.data.root import dataset_dir
from graftkit.data.splits import three_way, with_validation
from graftkit.data.types import Dataset, Split
from graftkit.errors import DataError

NEG_POS = ["negative", "positive"]


def _split_index(path: Path, line: int, value: object, names: list[str]) -> int:
    """A label as an id into ``names`` (ids and names both accepted)."""
    if isinstance(value, int) and 0 <= value < len(names):
        return value
    text = str(value).strip()
    if text in names:
        return names.index(text)
    if text.isdigit() and 0 <= int(text) < len(names):
        return int(text)
    raise DataError(f"{path}, line {line}: label {value!r} is not one of {names}")


def _label_space_text(path: Path, name: str, names: list[str]) -> Split:
    """Lines of ``<label digit> <sentence>`` (SST-2)."""
    texts, labels = [], []
    with open_text(path) as handle:
        for line, raw in enumerate(handle, start=1):
            raw = raw.rstrip("\n")
            if not raw.strip():
                continue
            label, sep, text = raw.partition(" ")
            if not sep or not text.strip():
                raise DataError(f"{path}, line {line}: expected '<label> <sentence>', got {raw[:60]!r}")
            labels.append(_split_index(path, line, label, names))
            texts.append(text.strip())
    return Split(name, texts=texts, labels=labels)


def _headerless_csv(path: Path, name: str, names: list[str]) -> Split:
    """Rows of ``label,text`` without a header (MR, CR, MPQA)."""
    _, rows = csv_rows(path, header=False)
    texts, labels = [], []
    for line, fields in rows:
        labels.append(_split_index(path, line, field_of(path, line, fields, 0, None), names))
        texts.append(str(field_of(path, line, fields, 1, None)).strip())
    return Split(name, texts=texts, labels=labels)


def _jsonl(path: Path, name: str, names: list[str], text: str = "text", pair: str | None = None) -> Split:
    """JSON lines with a text field (and optional second text) and an int or string label."""
    texts, pairs, labels = [], [] if pair else None, []
    for line, row in jsonl_rows(path):
        texts.append(str(field_of(path, line, row, text, None)).strip())
        if pairs is not None:
            pairs.append(str(field_of(path, line, row, pair, None)).strip())
        labels.append(_split_index(path, line, field_of(path, line, row, "label", None), names))
    return Split(name, texts=texts, text_pairs=pairs, labels=labels)


def sst2(root: Path | None) -> Dataset:
    d = dataset_dir("sst2", root)
    splits = {
        s: _label_space_text(d / f"stsa.binary.{f}", s, NEG_POS)
        for s, f in (("train", "train"), ("validation", "dev"), ("test", "test"))
    }
    return Dataset("sst2", "text-classification", NEG_POS, splits, "Stanford Sentiment Treebank, binary (sentences)")


SST5_NAMES = ["very negative", "negative", "neutral", "positive", "very positive"]


def sst5(root: Path | None) -> Dataset:
    d = dataset_dir("sst5", root)
    splits = {s: _jsonl(d / f"{f}.jsonl", s, SST5_NAMES) for s, f in (("train", "train"), ("validation", "val"), ("test", "test"))}
    return Dataset("sst5", "text-classification", SST5_NAMES, splits, "Stanford Sentiment Treebank, 5 classes")


TREC_CODES = ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]
TREC_NAMES = ["abbreviation", "description", "entity", "human", "location", "number"]
_TREC_LINE = re.compile(r"^([A-Z]+):(\S+)\s+(.*)$")


def _trec_file(path: Path, name: str) -> Split:
    texts, labels = [], []
    with open_text(path) as handle:
        for line, raw in enumerate(handle, start=1):
            raw = raw.strip()
            if not raw:
                continue
            match = _TREC_LINE.match(raw)
            if not match or match.group(1) not in TREC_CODES:
                raise DataError(f"{path}, line {line}: expected 'COARSE:fine question', got {raw[:60]!r}")
            labels.append(TREC_CODES.index(match.group(1)))
            texts.append(match.group(3))
    return Split(name, texts=texts, labels=labels)


def trec(root: Path | None) -> Dataset:
    d = dataset_dir("trec", root)
    splits = with_validation(_trec_file(d / "train.txt", "train"), _trec_file(d / "test.txt", "test"))
    return Dataset("trec", "text-classification", TREC_NAMES, splits, "TREC question type, 6 coarse classes",
                   ["validation = 10% of train.txt (stratified, seed 0)"])


AGNEWS_NAMES = ["World", "Sports", "Business", "Sci/Tech"]
_ENTITIES = ((" #39;", "'"), ("#39;", "'"), (" quot;", '"'), ("quot;", '"'), (" amp;", " &"), ("#36;", "$"), ("\\", " "))


def _clean_agnews(text: str) -> str:
    """Undo the HTML-entity debris of the AG News dump (``#39;`` for an apostrophe, ...)."""
    for bad, good in _ENTITIES:
        text = text.replace(bad, good)
    return re.sub(r"\s+", " ", text).strip()


def _agnews_file(path: Path, name: str) -> Split:
    header, rows = csv_rows(path, header=True)
    texts, labels = [], []
    for line, fields in rows:
        raw = field_of(path, line, fields, "Class Index", header)
        if raw.strip() not in ("1", "2", "3", "4"):
            raise DataError(f"{path}, line {line}: class index {raw!r} is not 1..4")
        labels.append(int(raw) - 1)
        title = field_of(path, line, fields, "Title", header)
        body = field_of(path, line, fields, "Description", header)
        texts.append(_clean_agnews(f"{title}. {body}"))
    return Split(name, texts=texts, labels=labels)


def agnews(root: Path | None) -> Dataset:
    d = dataset_dir("agnews", root)
    splits = with_validation(_agnews_file(d / "val_linc.csv", "train"), _agnews_file(d / "test.csv", "test"))
    return Dataset("agnews", "text-classification", AGNEWS_NAMES, splits, "AG News topic (title. description)",
                   ["train = val_linc.csv (6001 rows, disjoint from test); validation = 10% of it (seed 0)"])


def _jsonl_three(sub: str, names: list[str], files: tuple[str, str, str], description: str, root: Path | None) -> Dataset:
    d = dataset_dir(sub, root)
    splits = {s: _jsonl(d / f"{f}.jsonl", s, names) for s, f in zip(("train", "validation", "test"), files)}
    return Dataset(sub, "text-classification", names, splits, description)


def subj(root: Path | None) -> Dataset:
    return _jsonl_three("subj", ["objective", "subjective"], ("train", "val", "test"), "Subjectivity of movie sentences", root)


EMOTION_NAMES = ["sadness", "joy", "love", "anger", "fear", "surprise"]


def emotion(root: Path | None) -> Dataset:
    return _jsonl_three("emotion", EMOTION_NAMES, ("train", "validation", "test"), "Emotion of English tweets, 6 classes", root)


def _csv_pair(sub: str, description: str, root: Path | None) -> Dataset:
    d = dataset_dir(sub, root)
    splits = with_validation(_headerless_csv(d / "train.csv", "train", NEG_POS), _headerless_csv(d / "test.csv", "test", NEG_POS))
    notes = ["validation = 10% of train.csv (stratified, seed 0)"]
    blank = sum(not t for s in splits.values() for t in s.texts or [])
    if blank:
        notes.append(f"{blank} row(s) with blank text kept as shipped")
    return Dataset(sub, "text-classification", NEG_POS, splits, description, notes)


def mr(root: Path | None) -> Dataset:
    return _csv_pair("mr", "Movie review polarity (sentences)", root)


def cr(root: Path | None) -> Dataset:
    return _csv_pair("cr", "Customer (product) review polarity", root)


def mpqa(root: Path | None) -> Dataset:
    ds = _csv_pair("mpqa", "Opinion phrase polarity (MPQA)", root)
    ds.notes.append("262 phrases occur in both train and test (as shipped)")
    return ds


def _entailment(sub: str, names: list[str], description: str, root: Path | None) -> Dataset:
    d = dataset_dir(sub, root)
    train = _jsonl(d / "train.jsonl", "train", names, "premise", "hypothesis")
    test = _jsonl(d / "val.jsonl", "test", names, "premise", "hypothesis")
    return Dataset(sub, "text-pair-classification", names, with_validation(train, test), description,
                   ["test = the official validation file (the shipped test file has no labels); "
                    "validation = 10% of train (stratified, seed 0)"])


def rte(root: Path | None) -> Dataset:
    return _entailment("rte", ["entailment", "not_entailment"], "Recognizing textual entailment (premise, hypothesis)", root)


def cb(root: Path | None) -> Dataset:
    return _entailment("cb", ["entailment", "contradiction", "neutral"], "CommitmentBank, 3-way entailment", root)


def sms_spam(root: Path | None) -> Dataset:
    path = dataset_dir("sms_spam", root) / "SMSSpamCollection"
    names = ["ham", "spam"]
    texts, labels = [], []
    with open_text(path) as handle:
        for line, raw in enumerate(handle, start=1):
            raw = raw.rstrip("\r\n")
            if not raw:
                continue
            label, sep, text = raw.partition("\t")
            if not sep or label not in names:
                raise DataError(f"{path}, line {line}: expected 'ham|spam<TAB>text', got {raw[:60]!r}")
            labels.append(names.index(label))
            texts.append(text.strip())
    splits = three_way(Split("train", texts=texts, labels=labels))
    return Dataset("sms_spam", "text-classification", names, splits, "SMS spam collection",
                   ["no split ships: test = 20%, validation = 10% of the rest (stratified, seed 0)"])
