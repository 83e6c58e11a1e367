"""Tokenized batches from a list of sentences, for capturing a text model's activations."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from graftkit.errors import DataError


class TextBatches:
    """Re-iterable tokenized batches of ``texts`` in the given order (so two models see the same inputs).

    ``len()`` is the number of batches, so progress bars know their total.
    """

    def __init__(self, tokenizer: Any, texts: Sequence[str], batch_size: int = 32, max_length: int = 128):
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

    def __len__(self) -> int:
        return (len(self.texts) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[dict]:
        for start in range(0, len(self.texts), self.batch_size):
            chunk = self.texts[start : start + self.batch_size]
            encoded = self.tokenizer(
                chunk, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
            )
            yield {k: v for k, v in encoded.items() if k in ("input_ids", "attention_mask", "token_type_ids")}


def length_order(texts: Sequence[str]) -> list[int]:
    """Indices that sort texts by character length: less padding, and model-independent,
    so two models with different tokenizers still see the inputs in the same order."""
    return sorted(range(len(texts)), key=lambda i: (len(texts[i]), i))
