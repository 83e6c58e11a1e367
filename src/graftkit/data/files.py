"""Reading CSV, JSONL and plain-text task files, with errors that name file and line.

The shared datasets use these readers, and so do ``load_csv`` / ``load_jsonl`` for a
user's own files: the text column, an optional second text (premise/hypothesis
tasks) and a label column, by name or by position.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from graftkit.data.root import require_file
from graftkit.data.splits import SEED, TEST_FRACTION, VALIDATION_FRACTION, carve
from graftkit.data.types import Dataset, Split
from graftkit.errors import DataError

Column = str | int


def open_text(path: Path) -> io.TextIOBase:
    """Open a text file, gunzipping ``*.gz`` transparently."""
    require_file(path)
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def csv_rows(path: Path, *, header: bool, delimiter: str = ",") -> tuple[list[str] | None, Iterator[tuple[int, list[str]]]]:
    """The header (or None) and ``(line number, fields)`` of every non-empty row."""
    handle = open_text(path)
    reader = csv.reader(handle, delimiter=delimiter)
    names: list[str] | None = None
    try:
        if header:
            names = next(reader, None)
            if names is None:
                raise DataError(f"{path}: empty file, expected a header row")
    except csv.Error as exc:
        raise DataError(f"{path}, line {reader.line_num}: {exc}") from exc

    def rows() -> Iterator[tuple[int, list[str]]]:
        with handle:
            start = reader.line_num + 1
            try:
                for fields in reader:
                    if fields:
                        yield start, fields
                    start = reader.line_num + 1
            except csv.Error as exc:
                raise DataError(f"{path}, line {reader.line_num}: {exc}") from exc

    return names, rows()


def jsonl_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for every non-blank line of a JSON-lines file."""
    with open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}, line {number}: not valid JSON ({exc.msg})") from exc
            if not isinstance(row, dict):
                raise DataError(f"{path}, line {number}: expected a JSON object, got {type(row).__name__}")
            yield number, row


def field_of(path: Path, line: int, row: Sequence[str] | Mapping[str, Any], column: Column, names: list[str] | None) -> Any:
    """One field of a row by name or index, or a DataError naming file, line and column."""
    if isinstance(row, Mapping):
        if column not in row:
            raise DataError(f"{path}, line {line}: no field {column!r} (fields: {', '.join(map(str, row))})")
        return row[column]
    index = column
    if isinstance(column, str):
        if names is None or column not in names:
            have = ", ".join(names) if names else "no header"
            raise DataError(f"{path}: no column {column!r} ({have})", hint="name a column of the header or give its index")
        index = names.index(column)
    if not -len(row) <= index < len(row):
        raise DataError(
            f"{path}, line {line}: row has {len(row)} field(s), column {column!r} is missing",
            hint="check the delimiter and quoting of that line",
        )
    return row[index]


def label_ids(raw: list[Any], path: Path, label_names: Sequence[str] | None) -> tuple[list[int], list[str]]:
    """Map raw labels to ids: through ``label_names`` when given, else ints as they are, else sorted strings."""
    if label_names is not None:
        index = {str(n): i for i, n in enumerate(label_names)}
        ids = []
        for value in raw:
            key = str(value)
            if key not in index:
                if key.lstrip("-").isdigit() and 0 <= int(key) < len(label_names):
                    ids.append(int(key))
                    continue
                raise DataError(f"{path}: label {value!r} is not one of {list(label_names)}")
            ids.append(index[key])
        return ids, list(label_names)
    if all(isinstance(v, int) or (isinstance(v, str) and v.strip().lstrip("-").isdigit()) for v in raw):
        ids = [int(v) for v in raw]
        if ids and min(ids) < 0:
            raise DataError(f"{path}: negative label {min(ids)}", hint="pass label_names to map labels to classes")
        return ids, [str(i) for i in range(max(ids, default=-1) + 1)]
    names = sorted({str(v) for v in raw})
    index = {n: i for i, n in enumerate(names)}
    return [index[str(v)] for v in raw], names


def _dataset_from(
    name: str,
    splits_raw: dict[str, tuple[Path, list[str], list[str] | None, list[Any]]],
    label_names: Sequence[str] | None,
    validation_fraction: float,
    test_fraction: float,
    seed: int,
) -> Dataset:
    """Assemble a Dataset from parsed files, carving validation/test where none was given."""
    all_raw = [v for _, _, _, labels in splits_raw.values() for v in labels]
    first_path = next(iter(splits_raw.values()))[0]
    _, names = label_ids(all_raw, first_path, label_names)
    splits: dict[str, Split] = {}
    for split_name, (path, texts, pairs, raw) in splits_raw.items():
        ids, _ = label_ids(raw, path, names)
        splits[split_name] = Split(split_name, texts=texts, text_pairs=pairs, labels=ids)
    notes = []
    train = splits["train"]
    if "test" not in splits and test_fraction > 0:
        train, splits["test"] = carve(train, test_fraction, "test", seed)
        notes.append(f"test = {test_fraction:.0%} of the training file (seed {seed})")
    if "validation" not in splits and validation_fraction > 0:
        train, splits["validation"] = carve(train, validation_fraction, "validation", seed + 1)
        notes.append(f"validation = {validation_fraction:.0%} of the remaining training examples (seed {seed + 1})")
    train.name = "train"
    splits["train"] = train
    kind = "text-pair-classification" if train.text_pairs is not None else "text-classification"
    ordered = {k: splits[k] for k in ("train", "validation", "test") if k in splits}
    return Dataset(name=name, kind=kind, label_names=names, splits=ordered, notes=notes)


def _as_split_paths(path: str | Path | Mapping[str, str | Path]) -> dict[str, Path]:
    if isinstance(path, Mapping):
        paths = {("validation" if k in ("val", "valid", "dev") else k): Path(v) for k, v in path.items()}
        if "train" not in paths:
            raise DataError(f"no 'train' file among {list(paths)}", hint="give at least {'train': path}")
        return paths
    return {"train": Path(path)}


def load_csv(
    path: str | Path | Mapping[str, str | Path],
    text_column: Column,
    label_column: Column,
    *,
    text_pair_column: Column | None = None,
    header: bool = True,
    delimiter: str = ",",
    label_names: Sequence[str] | None = None,
    name: str | None = None,
    validation_fraction: float = VALIDATION_FRACTION,
    test_fraction: float = TEST_FRACTION,
    seed: int = SEED,
) -> Dataset:
    """A text-classification Dataset from your own CSV file(s).

    ``path`` is one file (validation and test are carved from it) or a mapping
    ``{"train": ..., "validation": ..., "test": ...}``. Columns are header names or
    0-based indices. Example: ``load_csv("reviews.csv", "review", "stars")``.
    """
    raw: dict[str, tuple[Path, list[str], list[str] | None, list[Any]]] = {}
    for split_name, file in _as_split_paths(path).items():
        names, rows = csv_rows(file, header=header, delimiter=delimiter)
        texts, pairs, labels = [], [] if text_pair_column is not None else None, []
        for line, fields in rows:
            texts.append(str(field_of(file, line, fields, text_column, names)))
            if pairs is not None:
                pairs.append(str(field_of(file, line, fields, text_pair_column, names)))
            labels.append(str(field_of(file, line, fields, label_column, names)).strip())
        if not texts:
            raise DataError(f"{file}: no rows", hint="the file is empty or holds only a header")
        raw[split_name] = (file, texts, pairs, labels)
    stem = name or Path(next(iter(raw.values()))[0]).stem
    return _dataset_from(stem, raw, label_names, validation_fraction, test_fraction, seed)


def load_jsonl(
    path: str | Path | Mapping[str, str | Path],
    text_field: str = "text",
    label_field: str = "label",
    *,
    text_pair_field: str | None = None,
    label_names: Sequence[str] | None = None,
    name: str | None = None,
    validation_fraction: float = VALIDATION_FRACTION,
    test_fraction: float = TEST_FRACTION,
    seed: int = SEED,
) -> Dataset:
    """A text-classification Dataset from your own JSON-lines file(s), one object per line.

    Example: ``load_jsonl({"train": "train.jsonl", "test": "test.jsonl"}, "sentence", "label")``.
    """
    raw: dict[str, tuple[Path, list[str], list[str] | None, list[Any]]] = {}
    for split_name, file in _as_split_paths(path).items():
        texts, pairs, labels = [], [] if text_pair_field is not None else None, []
        for line, row in jsonl_rows(file):
            texts.append(str(field_of(file, line, row, text_field, None)))
            if pairs is not None:
                pairs.append(str(field_of(file, line, row, text_pair_field, None)))
            labels.append(field_of(file, line, row, label_field, None))
        if not texts:
            raise DataError(f"{file}: no rows")
        raw[split_name] = (file, texts, pairs, labels)
    stem = name or Path(next(iter(raw.values()))[0]).stem
    return _dataset_from(stem, raw, label_names, validation_fraction, test_fraction, seed)
