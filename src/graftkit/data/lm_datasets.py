"""Running-text datasets for language modelling (perplexity, causal-LM fine-tuning)."""

from __future__ import annotations

from pathlib import Path

from graftkit.data.root import dataset_dir, require_file
from graftkit.data.types import Dataset, Split

# tiny_shakespeare ships as one file: contiguous 90% / 5% / 5%, cut at line ends.
SHAKESPEARE_FRACTIONS = (0.9, 0.05)


def _cut_at_newline(text: str, at: int) -> int:
    nl = text.find("\n", at)
    return len(text) if nl < 0 else nl + 1


def tiny_shakespeare(root: Path | None) -> Dataset:
    path = require_file(dataset_dir("tiny_shakespeare", root) / "input.txt")
    text = path.read_text(encoding="utf-8")
    a = _cut_at_newline(text, int(len(text) * SHAKESPEARE_FRACTIONS[0]))
    b = _cut_at_newline(text, int(len(text) * sum(SHAKESPEARE_FRACTIONS)))
    splits = {"train": Split("train", text=text[:a]), "validation": Split("validation", text=text[a:b]),
              "test": Split("test", text=text[b:])}
    return Dataset("tiny_shakespeare", "language-modeling", [], splits, "Shakespeare plays, 1.1M characters",
                   ["one file: contiguous train 90%, validation 5%, test 5% (cut at line ends)"])


def wikitext2(root: Path | None) -> Dataset:
    d = dataset_dir("wikitext2_raw", root)
    splits = {s: Split(s, text=require_file(d / f"{f}.txt").read_text(encoding="utf-8"))
              for s, f in (("validation", "valid"), ("test", "test"))}
    return Dataset("wikitext2", "language-modeling", [], splits, "WikiText-2 raw (Wikipedia articles)",
                   ["wikitext2 ships only valid.txt and test.txt here (train.txt is missing): no train split; "
                    "fine-tune on tiny_shakespeare or your own text instead"])
