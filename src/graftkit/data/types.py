"""The two shapes every loader returns: a ``Dataset`` of named ``Split``s.

One container for all task kinds keeps the evaluators and the fine-tuner generic:
text tasks fill ``texts`` (and ``text_pairs`` for premise/hypothesis tasks), image
tasks fill ``images``, language modelling fills ``text``; ``labels`` are ints that
index ``Dataset.label_names``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from graftkit.errors import DataError

KINDS = (
    "text-classification",
    "text-pair-classification",
    "image-classification",
    "language-modeling",
)
SPLIT_NAMES = ("train", "validation", "test")


@dataclass
class Split:
    """One split of a dataset; treat it as read-only (loaders may share lists)."""

    name: str
    texts: list[str] | None = None
    text_pairs: list[str] | None = None
    labels: list[int] | None = None
    images: torch.Tensor | None = None
    text: str | None = None

    def __len__(self) -> int:
        """Examples in the split (characters for a language-modelling split)."""
        if self.text is not None:
            return len(self.text)
        if self.images is not None:
            return int(self.images.shape[0])
        if self.texts is not None:
            return len(self.texts)
        return len(self.labels or [])

    def subset(self, indices: Sequence[int], name: str | None = None) -> Split:
        """The examples at ``indices`` (in that order) as a new split."""
        if self.text is not None:
            raise DataError(f"split {self.name!r} is running text; slice split.text instead of subset()")
        idx = list(indices)
        return Split(
            name=name or self.name,
            texts=None if self.texts is None else [self.texts[i] for i in idx],
            text_pairs=None if self.text_pairs is None else [self.text_pairs[i] for i in idx],
            labels=None if self.labels is None else [self.labels[i] for i in idx],
            images=None if self.images is None else self.images[torch.as_tensor(idx, dtype=torch.long)],
        )

    def head(self, n: int) -> Split:
        """The first ``n`` examples (all of them when there are fewer)."""
        return self.subset(range(min(n, len(self))))

    def label_counts(self) -> dict[int, int]:
        """How many examples carry each label id."""
        return dict(sorted(Counter(self.labels or []).items()))


@dataclass
class Dataset:
    """A named task with its splits; ``train``/``validation``/``test`` raise when absent."""

    name: str
    kind: str
    label_names: list[str]
    splits: dict[str, Split]
    description: str = ""
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise DataError(f"dataset {self.name!r}: unknown kind {self.kind!r}; use one of {', '.join(KINDS)}")

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def split(self, name: str) -> Split:
        """The split called ``name``; a DataError lists the ones that exist otherwise."""
        aliases = {"val": "validation", "valid": "validation", "dev": "validation"}
        key = aliases.get(name, name)
        if key not in self.splits:
            have = ", ".join(self.splits) or "none"
            why = " ".join(self.notes)
            raise DataError(
                f"dataset {self.name!r} has no {key!r} split (it has: {have})",
                hint=why or "use one of the splits it has",
            )
        return self.splits[key]

    @property
    def train(self) -> Split:
        return self.split("train")

    @property
    def validation(self) -> Split:
        return self.split("validation")

    @property
    def test(self) -> Split:
        return self.split("test")

    def sizes(self) -> dict[str, int]:
        """Examples per split (characters for language modelling)."""
        return {name: len(s) for name, s in self.splits.items()}

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}={v}" for k, v in self.sizes().items())
        return f"Dataset({self.name!r}, {self.kind}, labels={len(self.label_names)}, {sizes})"
