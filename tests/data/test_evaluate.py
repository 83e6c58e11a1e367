"""Evaluators on tiny models whose right answers are known in advance."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from graftkit.data import Split
from graftkit.data.evaluate import (
    EvalResult,
    causal_lm_accuracy,
    classification_accuracy,
    image_accuracy,
    perplexity,
)
from graftkit.errors import DataError


class WordTokenizer:
    """A whitespace tokenizer with a fixed vocabulary, shaped like an HF tokenizer's call."""

    pad_token_id = 0

    def __init__(self, words):
        self.vocab = {w: i + 1 for i, w in enumerate(words)}

    def _ids(self, text):
        return [self.vocab.get(w, 1) for w in text.split()]

    def __call__(self, texts, pairs=None, padding=False, truncation=False, max_length=None, return_tensors=None,
                 add_special_tokens=True, verbose=True):
        if isinstance(texts, str):
            return {"input_ids": self._ids(texts)}
        rows = [self._ids(t) + (self._ids(p) if pairs else []) for t, p in zip(texts, pairs or texts)]
        rows = [r[:max_length] if max_length else r for r in rows]
        width = max(len(r) for r in rows)
        ids = torch.tensor([r + [0] * (width - len(r)) for r in rows])
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])

        class Batch(dict):
            def to(self, device):
                return self

        return Batch(input_ids=ids, attention_mask=mask)


class AlwaysClass(nn.Module):
    """Predicts class ``c`` of ``k`` for every input."""

    def __init__(self, c, k):
        super().__init__()
        self.c, self.k = c, k
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, input_ids=None, attention_mask=None, pixel_values=None):
        n = (input_ids if input_ids is not None else pixel_values).shape[0]
        logits = torch.zeros(n, self.k)
        logits[:, self.c] = 5.0
        return logits


class FirstWordIsLabel(nn.Module):
    """An encoder whose hidden state of every token is one-hot of the sentence's first token id."""

    def __init__(self, vocab):
        super().__init__()
        self.vocab = vocab
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, attention_mask=None):
        first = torch.nn.functional.one_hot(input_ids[:, :1], self.vocab).float()

        class Out:
            last_hidden_state = first.expand(-1, input_ids.shape[1], -1)

        return Out()


def test_constant_classifier_scores_the_share_of_its_class():
    split = Split("test", texts=["a b"] * 10, labels=[0, 0, 0, 1, 1, 1, 1, 2, 2, 2])
    result = classification_accuracy(AlwaysClass(1, 3), split, WordTokenizer(["a", "b"]), batch_size=3)
    assert isinstance(result, EvalResult) and result.n == 10
    assert result.accuracy == pytest.approx(0.4)
    assert result.predictions == [1] * 10
    expected = -math.log(math.exp(5) / (math.exp(5) + 2))  # cross-entropy of the right rows
    wrong = -math.log(1 / (math.exp(5) + 2))
    assert result.loss == pytest.approx((4 * expected + 6 * wrong) / 10, rel=1e-5)


def test_encoder_with_separate_head_and_order_is_preserved():
    tok = WordTokenizer(["x", "y", "filler"])  # ids x=1 y=2 filler=3
    texts = ["x", "y filler filler filler", "x filler", "y", "y filler"]
    labels = [0, 1, 0, 1, 0]
    head = nn.Linear(4, 2, bias=False)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]]))
    for pooling in ("cls", "mean"):
        result = classification_accuracy(FirstWordIsLabel(4), Split("t", texts=texts, labels=labels), tok, head=head,
                                         pooling=pooling, batch_size=2)
        assert result.predictions == [0, 1, 0, 1, 1]
        assert result.accuracy == pytest.approx(0.8)
    assert head.training  # evaluation restores the module's mode


class LabelWordLM(nn.Module):
    """A causal LM that, after the word 'good' anywhere, puts mass on 'positive', else on 'negative'."""

    def __init__(self, vocab, pos, neg, good):
        super().__init__()
        self.vocab, self.pos, self.neg, self.good = vocab, pos, neg, good
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, attention_mask=None):
        seen = (input_ids == self.good).cumsum(1) > 0
        logits = torch.zeros(*input_ids.shape, self.vocab)
        logits[..., self.neg] = torch.where(seen, 0.0, 3.0)
        logits[..., self.pos] = torch.where(seen, 3.0, 0.0)
        return logits


def test_causal_lm_scores_label_words():
    words = ["good", "bad", "film", "negative", "positive", "Answer:"]
    tok = WordTokenizer(words)
    model = LabelWordLM(len(words) + 1, pos=5, neg=4, good=1)
    split = Split("t", texts=["good film", "bad film", "film good", "bad"], labels=[1, 0, 1, 1])
    result = causal_lm_accuracy(model, split, tok, ["negative", "positive"], batch_size=3)
    assert result.predictions == [1, 0, 1, 0]
    assert result.accuracy == pytest.approx(0.75)


def test_image_accuracy_and_plain_modules():
    images = torch.rand(7, 1, 4, 4)
    split = Split("t", images=images, labels=[3, 3, 1, 3, 0, 3, 2])
    result = image_accuracy(AlwaysClass(3, 4), split, batch_size=2)
    assert result.accuracy == pytest.approx(4 / 7) and result.n == 7
    # classification_accuracy dispatches image splits too
    assert classification_accuracy(AlwaysClass(3, 4), split).accuracy == pytest.approx(4 / 7)


class Uniform(nn.Module):
    def __init__(self, vocab):
        super().__init__()
        self.vocab = vocab
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, attention_mask=None):
        return torch.zeros(*input_ids.shape, self.vocab)


class NextToken(nn.Module):
    """Knows that token t is followed by t + 1 (mod vocab)."""

    def __init__(self, vocab):
        super().__init__()
        self.vocab = vocab
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, attention_mask=None):
        return torch.nn.functional.one_hot((input_ids + 1) % self.vocab, self.vocab).float() * 50


@pytest.mark.parametrize("n,window,stride", [(1000, 64, None), (1000, 64, 64), (65, 64, 10), (2, 64, None), (300, 2, 1)])
def test_perplexity_of_uniform_model_is_vocab_size(n, window, stride):
    result = perplexity(Uniform(50), torch.randint(0, 50, (n,)), window=window, stride=stride, batch_size=3)
    assert result.perplexity == pytest.approx(50.0, rel=1e-5)
    assert result.n == n - 1  # every token but the first is predicted exactly once


def test_perplexity_of_a_perfect_model_is_one_and_text_input_works():
    assert perplexity(NextToken(7), torch.arange(500) % 7, window=16, stride=5).perplexity == pytest.approx(1.0)
    tok = WordTokenizer(["a", "b", "c"])
    split = Split("validation", text="a b c a b c a b c")
    result = perplexity(Uniform(4), split, tok, window=4)
    assert result.n == 8 and result.perplexity == pytest.approx(4.0)
    assert perplexity(Uniform(4), "a b c", tok, max_tokens=2).n == 1


def test_bad_inputs_raise_data_errors():
    with pytest.raises(DataError, match="tokenizer"):
        classification_accuracy(AlwaysClass(0, 2), Split("t", texts=["a"], labels=[0]))
    with pytest.raises(DataError, match="no labelled examples"):
        classification_accuracy(AlwaysClass(0, 2), Split("t", texts=[], labels=[]), WordTokenizer(["a"]))
    with pytest.raises(DataError, match="labels go up to 4"):
        classification_accuracy(AlwaysClass(0, 2), Split("t", texts=["a"], labels=[4]), WordTokenizer(["a"]))
    with pytest.raises(DataError, match="not running text"):
        perplexity(Uniform(3), Split("t", texts=["a"], labels=[0]))
    with pytest.raises(DataError, match="at least 2 tokens"):
        perplexity(Uniform(3), torch.tensor([1]))
    with pytest.raises(DataError, match="no config.json"):
        classification_accuracy("/nonexistent/model", Split("t", texts=["a"], labels=[0]))
