"""A small calibration set, streamed batch by batch as tokenized model inputs."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from graftkit.errors import DataError


@dataclass(frozen=True)
class Calibration:
    """Texts (and labels) to measure a model on; ``key`` identifies them in cache keys."""

    texts: list[str]
    labels: list[int] | None
    text_pairs: list[str] | None = None
    key: str = ""

    def __len__(self) -> int:
        return len(self.texts)

    def batches(self, tokenizer: Any, batch_size: int = 16, max_length: int = 128) -> Iterator[dict[str, torch.Tensor]]:
        """Tokenized batches with ``labels`` when the set has labels."""
        for start in range(0, len(self.texts), batch_size):
            stop = start + batch_size
            pairs = None if self.text_pairs is None else self.text_pairs[start:stop]
            enc = tokenizer(self.texts[start:stop], pairs, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
            batch = dict(enc)
            if self.labels is not None:
                batch["labels"] = torch.tensor(self.labels[start:stop], dtype=torch.long)
            yield batch


def calibration_set(dataset: str, *, split: str = "train", examples: int = 256, seed: int = 0) -> Calibration:
    """``examples`` random examples of a ``graftkit.data`` dataset split (seeded)."""
    from graftkit.data import load_dataset

    data = load_dataset(dataset)
    part = getattr(data, split, None) if split in ("train", "validation", "test") else data.splits.get(split)
    if part is None or not part.texts:
        raise DataError(f"dataset '{dataset}' has no text split '{split}' to calibrate on")
    order = list(range(len(part.texts)))
    random.Random(seed).shuffle(order)
    chosen = sorted(order[: min(examples, len(order))])
    sub = part.subset(chosen)
    return Calibration(
        texts=list(sub.texts or []),
        labels=None if sub.labels is None else list(sub.labels),
        text_pairs=None if sub.text_pairs is None else list(sub.text_pairs),
        key=f"{dataset}:{split}:{len(chosen)}:{seed}",
    )


def from_texts(texts: Sequence[str], labels: Sequence[int] | None = None, key: str = "") -> Calibration:
    """A calibration set from your own texts (``key`` names it in the cache)."""
    import hashlib

    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    return Calibration(list(texts), None if labels is None else list(labels), key=key or f"texts:{digest}")
