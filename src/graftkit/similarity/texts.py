"""Tokenized batches from a list of sentences, for capturing a text model's activations."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from graftkit.errors import DataError

ORDERS = ("given", "length")


class TextBatches:
    """Re-iterable tokenized batches of ``texts``, each padded only to its own longest text.

    ``order="given"`` keeps the texts' order. ``order="length"`` runs them sorted by this
    tokenizer's token count, so a batch holds texts of nearly equal length and almost no
    padding is computed (on SST-2 with batches of 64, sorting by characters still leaves
    33% padded positions, sorting by tokens 4%). ``order`` may also be an explicit
    permutation of ``range(len(texts))`` (to run a second model in a first one's order).
    ``self.order`` is the permutation used (None for "given"); ``capture`` uses it to
    return rows in the order of ``texts`` whatever order the batches ran in.
    ``len()`` is the number of batches, so progress bars know their total.
    """

    def __init__(self, tokenizer: Any, texts: Sequence[str], batch_size: int = 32, max_length: int = 128,
                 order: str | Sequence[int] = "given"):
        texts = list(texts)
        if not texts:
            raise DataError("no texts to run through the model", hint="pass at least one sentence")
        bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
        if bad:
            raise DataError(f"text #{bad[0]} is a {type(texts[bad[0]]).__name__}, not a string",
                            hint="pass a list of sentences")
        if batch_size < 1:
            raise DataError(f"batch_size must be positive, got {batch_size}")
        self.tokenizer = tokenizer
        self.texts = texts
        self.batch_size = batch_size
        self.max_length = max_length
        self.order: list[int] | None = self._resolve_order(order)

    def _resolve_order(self, order: str | Sequence[int]) -> list[int] | None:
        if isinstance(order, str):
            if order == "given":
                return None
            if order == "length":
                return token_length_order(self.tokenizer, self.texts, self.max_length)
            raise DataError(f"unknown order {order!r}", hint=f"use one of {', '.join(ORDERS)} or a permutation")
        order = [int(i) for i in order]
        if sorted(order) != list(range(len(self.texts))):
            raise DataError(f"order is not a permutation of the {len(self.texts)} texts",
                            hint="pass each index 0..len(texts)-1 exactly once, e.g. another TextBatches' .order")
        return order

    def __len__(self) -> int:
        return (len(self.texts) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[dict]:
        texts = self.texts if self.order is None else [self.texts[i] for i in self.order]
        for start in range(0, len(texts), self.batch_size):
            chunk = texts[start : start + self.batch_size]
            encoded = self.tokenizer(
                chunk, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
            )
            yield {k: v for k, v in encoded.items() if k in ("input_ids", "attention_mask", "token_type_ids")}


def token_length_order(tokenizer: Any, texts: Sequence[str], max_length: int = 128) -> list[int]:
    """Indices that sort texts by their token count under ``tokenizer`` (ties by index)."""
    lengths = [len(ids) for ids in tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]]
    return sorted(range(len(texts)), key=lambda i: (lengths[i], i))


def length_order(texts: Sequence[str]) -> list[int]:
    """Indices that sort texts by character length (tokenizer-free, a rough proxy of token count)."""
    return sorted(range(len(texts)), key=lambda i: (len(texts[i]), i))
