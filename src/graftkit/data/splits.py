"""Carving held-out splits from a training set, the same way every time.

Where a dataset ships no validation (or no test) split, graftkit takes one from the
training examples with a fixed seed, stratified by label so that small classes keep
their share. The fractions are module constants and are listed in docs/data.md.
"""

from __future__ import annotations

import numpy as np

from graftkit.data.types import Split

SEED = 0
VALIDATION_FRACTION = 0.1  # of the training file, where no validation split ships
TEST_FRACTION = 0.2  # of the whole file, where no test split ships


def carve(split: Split, fraction: float, name: str, seed: int = SEED) -> tuple[Split, Split]:
    """Split off ``fraction`` of ``split`` (stratified by label) as ``name``.

    Returns ``(rest, carved)``; both keep the original order of their examples so
    that the result does not depend on anything but the seed and the data.
    """
    n = len(split)
    rng = np.random.default_rng(seed)
    labels = split.labels if split.labels is not None else [0] * n
    chosen: list[int] = []
    for label in sorted(set(labels)):
        members = np.array([i for i, y in enumerate(labels) if y == label])
        k = int(round(len(members) * fraction))
        chosen.extend(rng.permutation(members)[:k].tolist())
    chosen_set = set(chosen)
    rest = [i for i in range(n) if i not in chosen_set]
    return split.subset(rest, name=split.name), split.subset(sorted(chosen_set), name=name)


def three_way(split: Split, seed: int = SEED) -> dict[str, Split]:
    """Train / validation / test from one unsplit file (test 20%, validation 10% of the rest)."""
    rest, test = carve(split, TEST_FRACTION, "test", seed)
    train, validation = carve(rest, VALIDATION_FRACTION, "validation", seed + 1)
    train.name = "train"
    return {"train": train, "validation": validation, "test": test}


def with_validation(train: Split, test: Split, seed: int = SEED) -> dict[str, Split]:
    """Train / validation / test where only train and test ship (validation = 10% of train)."""
    rest, validation = carve(train, VALIDATION_FRACTION, "validation", seed)
    rest.name = "train"
    test.name = "test"
    return {"train": rest, "validation": validation, "test": test}
