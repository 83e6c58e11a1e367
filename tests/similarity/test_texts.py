from __future__ import annotations

import pytest
import torch

from graftkit import zoo
from graftkit.errors import DataError
from graftkit.similarity import capture
from graftkit.similarity.streaming import MinibatchCKA
from graftkit.similarity.texts import TextBatches, token_length_order

from .helpers import SENTENCES, tokenizer


def test_length_order_sorts_by_tokens_and_pads_less():
    tok = tokenizer(words=("wonderful", "beautiful", "forgettable"))  # long words become one token
    texts = SENTENCES * 3
    lengths = [len(ids) for ids in tok(texts)["input_ids"]]
    order = token_length_order(tok, texts)
    assert [lengths[i] for i in order] == sorted(lengths)
    given = TextBatches(tok, texts, 8)
    by_length = TextBatches(tok, texts, 8, order="length")
    assert by_length.order == order and given.order is None
    padded = [sum(b["input_ids"].numel() for b in batches) for batches in (given, by_length)]
    assert padded[1] < padded[0]
    assert sum(int(b["attention_mask"].sum()) for b in by_length) == sum(lengths)


def test_capture_returns_rows_in_text_order_whatever_the_run_order():
    model = zoo.tiny("bert", seed=0, vocab_size=128)
    tok = tokenizer()
    texts = SENTENCES * 2
    given = capture(model, TextBatches(tok, texts, 5), pooling="mean")
    for order in ("length", list(reversed(range(len(texts))))):
        reordered = capture(model, TextBatches(tok, texts, 5, order=order), pooling="mean")
        for layer in given.layers:
            torch.testing.assert_close(reordered[layer], given[layer], atol=1e-5, rtol=1e-5)
    # first-token pooling too, and one text alone gives its own row
    first = capture(model, TextBatches(tok, texts, 4, order="length"), pooling="first")
    alone = capture(model, TextBatches(tok, texts[3:4], 1), pooling="first")
    torch.testing.assert_close(first["block.1"][3], alone["block.1"][0], atol=1e-5, rtol=1e-5)


def test_streaming_sees_the_batches_as_they_ran():
    model = zoo.tiny("bert", seed=0, vocab_size=128)
    batches = TextBatches(tokenizer(), SENTENCES, 4, order="length")
    acc = MinibatchCKA(["block.0"], ["block.1"])
    sizes = []

    def update(features):
        sizes.append(features["block.0"].shape[0])
        acc.update([features["block.0"]], [features["block.1"]])

    capture(model, batches, on_batch=update, keep=False)
    assert sizes == [4, 4, 4, 4] and acc.batches == 4


def test_bad_orders_are_refused():
    tok = tokenizer()
    with pytest.raises(DataError, match="not a permutation"):
        TextBatches(tok, SENTENCES[:3], 2, order=[0, 1, 1])
    with pytest.raises(DataError, match="unknown order"):
        TextBatches(tok, SENTENCES[:3], 2, order="chars")
