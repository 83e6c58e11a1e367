"""Evaluators shared by every engine: accuracy and perplexity, batched and gradient-free.

Every merge, fusion or transfer is checked against its teachers with these, so they
accept what the engines produce: an HF ``*ForSequenceClassification`` model (or its
folder), an encoder plus a separate linear head, a causal LM scored on label words,
an image classifier, or a causal LM on running text (perplexity over strided windows).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from graftkit.data.types import Split
from graftkit.errors import DataError
from graftkit.progress import track


@dataclass
class EvalResult:
    """What an evaluator measured: ``accuracy`` or ``perplexity``, over ``n`` examples or tokens."""

    metric: str
    n: int
    loss: float
    accuracy: float | None = None
    perplexity: float | None = None
    predictions: list[int] | None = field(default=None, repr=False)

    @property
    def value(self) -> float:
        """The headline number (accuracy or perplexity)."""
        return float(self.accuracy if self.metric == "accuracy" else self.perplexity)  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("predictions")
        return out

    def __str__(self) -> str:
        if self.metric == "accuracy":
            return f"accuracy {self.accuracy:.4f} on {self.n} examples (loss {self.loss:.4f})"
        return f"perplexity {self.perplexity:.3f} over {self.n} tokens (loss {self.loss:.4f} nats/token)"


# ------------------------------------------------------------------ helpers
def _device(model: nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def _logits(output: Any) -> torch.Tensor:
    """Logits from an HF output object, a tuple, or a plain tensor."""
    if isinstance(output, torch.Tensor):
        return output
    if hasattr(output, "logits"):
        return output.logits
    if isinstance(output, (tuple, list)):
        return output[0]
    raise DataError(f"model returned {type(output).__name__}; expected a tensor or an object with .logits")


class _EvalMode:
    """``model.eval()`` for the block, the previous mode restored afterwards."""

    def __init__(self, *modules: nn.Module | None) -> None:
        self.modules = [m for m in modules if m is not None]
        self.modes: list[bool] = []

    def __enter__(self) -> None:
        self.modes = [m.training for m in self.modules]
        for m in self.modules:
            m.eval()

    def __exit__(self, *exc: object) -> None:
        for m, mode in zip(self.modules, self.modes):
            m.train(mode)


def _check_labels(data: Split, what: str) -> list[int]:
    if not isinstance(data, Split):
        raise DataError(f"{what} expects a graftkit.data.Split (e.g. load_dataset('sst2').validation), got {type(data).__name__}")
    if data.labels is None or len(data) == 0:
        raise DataError(f"split {data.name!r} has no labelled examples to evaluate")
    return data.labels


def _batches_by_length(texts: Sequence[str], batch_size: int) -> list[list[int]]:
    """Index batches of texts of similar length (less padding, same results)."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def _finish(logits_by_index: dict[int, torch.Tensor], labels: list[int]) -> EvalResult:
    logits = torch.stack([logits_by_index[i] for i in range(len(labels))]).float()
    target = torch.tensor(labels)
    if logits.shape[1] <= int(target.max()):
        raise DataError(f"the model scores {logits.shape[1]} classes but the labels go up to {int(target.max())}",
                        hint="evaluate on the task the model was trained for")
    preds = logits.argmax(dim=1)
    return EvalResult(
        metric="accuracy",
        n=len(labels),
        loss=float(F.cross_entropy(logits, target)),
        accuracy=float((preds == target).float().mean()),
        predictions=preds.tolist(),
    )


def _load_from_path(path: str | Path) -> tuple[nn.Module, Any, bool]:
    """A model folder loaded for evaluation: (model, tokenizer, is_causal_lm)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise DataError(f"{folder} is not a model folder (no config.json)", hint="pass a folder written by `graft finetune`")
    config = AutoConfig.from_pretrained(folder)
    causal = any(a.endswith("ForCausalLM") for a in (config.architectures or []))
    cls = AutoModelForCausalLM if causal else AutoModelForSequenceClassification
    model = cls.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder) if (folder / "tokenizer_config.json").is_file() else None
    return model, tokenizer, causal


def _is_causal_lm(model: nn.Module) -> bool:
    return type(model).__name__.endswith("ForCausalLM") or type(model).__name__.endswith("LMHeadModel")


# ------------------------------------------------------------------ classification
def classification_accuracy(
    model: nn.Module | str | Path,
    data: Split,
    tokenizer: Any = None,
    *,
    head: nn.Module | None = None,
    pooling: str = "mean",
    label_words: Sequence[str] | None = None,
    batch_size: int = 64,
    max_length: int = 128,
    description: str = "evaluate",
) -> EvalResult:
    """Accuracy of a classifier on a labelled split.

    ``model`` is an HF ``*ForSequenceClassification`` model (its ``.logits`` are used),
    an encoder with ``head`` (a module mapping pooled hidden states to logits; pooling
    ``mean`` over the attention mask, ``cls`` or ``pooler``), a causal LM (scored on
    ``label_words``, see ``causal_lm_accuracy``), an image classifier (image splits), or a
    model folder path. Example: ``classification_accuracy("experts/sst2", ds.validation)``.
    """
    if isinstance(model, (str, Path)):
        model, loaded_tokenizer, _ = _load_from_path(model)
        tokenizer = tokenizer or loaded_tokenizer
    labels = _check_labels(data, "classification_accuracy")
    if data.images is not None:
        return image_accuracy(model, data, head=head, batch_size=batch_size, description=description)
    if _is_causal_lm(model) and head is None:
        if label_words is None:
            raise DataError("a causal LM is scored on label words; pass label_words (e.g. dataset.label_names)")
        return causal_lm_accuracy(model, data, tokenizer, label_words, batch_size=batch_size, max_length=max_length,
                                  description=description)
    if tokenizer is None:
        raise DataError("classification_accuracy on text needs the model's tokenizer (tokenizer=AutoTokenizer.from_pretrained(folder))")
    if pooling not in ("mean", "cls", "pooler"):
        raise DataError(f"unknown pooling {pooling!r}; use 'mean', 'cls' or 'pooler'")
    texts = data.texts or []
    device = _device(model)
    out: dict[int, torch.Tensor] = {}
    with _EvalMode(model, head), torch.inference_mode():
        for idx in track(_batches_by_length(texts, batch_size), description):
            pairs = None if data.text_pairs is None else [data.text_pairs[i] for i in idx]
            enc = tokenizer([texts[i] for i in idx], pairs, padding=True, truncation=True, max_length=max_length,
                            return_tensors="pt").to(device)
            if head is None:
                logits = _logits(model(**enc))
            else:
                logits = _logits(head(pool(model(**enc), enc["attention_mask"], pooling)))
            for i, row in zip(idx, logits.float().cpu()):
                out[i] = row
    return _finish(out, labels)


def pool(output: Any, attention_mask: torch.Tensor, pooling: str = "mean") -> torch.Tensor:
    """One vector per sequence from an encoder output: masked mean, first token, or the pooler."""
    if pooling == "pooler":
        pooled = getattr(output, "pooler_output", None)
        if pooled is None:
            raise DataError("the encoder has no pooler_output; use pooling='mean' or 'cls'")
        return pooled
    hidden = output.last_hidden_state if hasattr(output, "last_hidden_state") else _logits(output)
    if pooling == "cls":
        return hidden[:, 0]
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


def default_prompt(text: str, pair: str | None = None) -> str:
    """The prompt a causal LM completes with a label word (the fine-tuner uses the same)."""
    if pair is None:
        return f"{text}\nAnswer:"
    return f"{text}\nHypothesis: {pair}\nAnswer:"


def _encode_words(tokenizer: Any, words: Sequence[str]) -> list[list[int]]:
    ids = [tokenizer(" " + w.strip(), add_special_tokens=False)["input_ids"] for w in words]
    for w, t in zip(words, ids):
        if not t:
            raise DataError(f"label word {w!r} encodes to no tokens")
    return ids


def _right_pad(rows: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    return ids, mask


def causal_lm_accuracy(
    model: nn.Module,
    data: Split,
    tokenizer: Any,
    label_words: Sequence[str],
    *,
    batch_size: int = 16,
    max_length: int = 256,
    description: str = "evaluate (label words)",
) -> EvalResult:
    """Accuracy of a causal LM that picks the most likely label word after ``default_prompt``.

    Each class is scored by the summed log-probability of its word (with a leading
    space); the loss is the cross-entropy of the softmax over those class scores.
    """
    labels = _check_labels(data, "causal_lm_accuracy")
    if tokenizer is None:
        raise DataError("causal_lm_accuracy needs the model's tokenizer")
    words = _encode_words(tokenizer, label_words)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    texts = data.texts or []
    device = _device(model)
    out: dict[int, torch.Tensor] = {}
    with _EvalMode(model), torch.inference_mode():
        for idx in track(_batches_by_length(texts, batch_size), description):
            prompts = []
            for i in idx:
                prompt = default_prompt(texts[i], None if data.text_pairs is None else data.text_pairs[i])
                ids = tokenizer(prompt)["input_ids"]
                prompts.append(ids[-(max_length - max(len(w) for w in words)):])  # keep the end: it holds "Answer:"
            scores = torch.zeros(len(idx), len(words))
            if all(len(w) == 1 for w in words):  # one pass: next-token log-probs at the prompt's end
                ids, mask = _right_pad(prompts, pad)
                logp = _logits(model(input_ids=ids.to(device), attention_mask=mask.to(device))).float().log_softmax(-1)
                last = logp[torch.arange(len(idx)), mask.sum(1).to(device) - 1]
                scores = last[:, [w[0] for w in words]].cpu()
            else:  # one pass per class: sum of the word's token log-probs
                for c, word in enumerate(words):
                    ids, mask = _right_pad([p + word for p in prompts], pad)
                    logp = _logits(model(input_ids=ids.to(device), attention_mask=mask.to(device))).float().log_softmax(-1).cpu()
                    for r, p in enumerate(prompts):
                        positions = torch.arange(len(p) - 1, len(p) - 1 + len(word))
                        scores[r, c] = logp[r, positions, torch.tensor(word)].sum()
            for i, row in zip(idx, scores):
                out[i] = row
    return _finish(out, labels)


# ------------------------------------------------------------------ images
def image_accuracy(
    model: nn.Module,
    data: Split,
    *,
    head: nn.Module | None = None,
    batch_size: int = 256,
    description: str = "evaluate (images)",
) -> EvalResult:
    """Accuracy of an image classifier on a split of (N, C, H, W) images in [0, 1].

    HF image models get ``pixel_values=``; plain modules get the batch positionally.
    """
    labels = _check_labels(data, "image_accuracy")
    if data.images is None:
        raise DataError(f"split {data.name!r} holds no images")
    device = _device(model)
    takes_pixels = hasattr(model, "config") and hasattr(model, "main_input_name")
    out: dict[int, torch.Tensor] = {}
    with _EvalMode(model, head), torch.inference_mode():
        for start in track(range(0, len(data), batch_size), description):
            x = data.images[start : start + batch_size].to(device)
            output = model(pixel_values=x) if takes_pixels else model(x)
            logits = _logits(head(output) if head is not None else output)
            for i, row in enumerate(logits.float().cpu()):
                out[start + i] = row
    return _finish(out, labels)


# ------------------------------------------------------------------ perplexity
def perplexity(
    model: nn.Module,
    data: str | Split | torch.Tensor,
    tokenizer: Any = None,
    *,
    window: int = 256,
    stride: int | None = None,
    max_tokens: int | None = None,
    batch_size: int = 8,
    description: str = "perplexity",
) -> EvalResult:
    """Perplexity of a causal LM on running text, with strided sliding windows.

    Windows of ``window`` tokens advance by ``stride`` tokens (default window // 2);
    each token is predicted once, and every window after the first predicts only its
    last ``stride`` tokens, so those see at least ``window - stride`` tokens of context. ``max_tokens`` caps the text (CPU time grows with it).
    ``data`` is a string, a language-modelling Split, or a 1-D tensor of token ids.
    """
    if isinstance(data, Split):
        if data.text is None:
            raise DataError(f"split {data.name!r} is not running text; perplexity needs a language-modelling split")
        data = data.text
    if isinstance(data, str):
        if tokenizer is None:
            raise DataError("perplexity on text needs the model's tokenizer")
        ids = torch.tensor(tokenizer(data, add_special_tokens=False, verbose=False)["input_ids"], dtype=torch.long)
    else:
        ids = torch.as_tensor(data, dtype=torch.long).flatten()
    if max_tokens is not None:
        ids = ids[:max_tokens]
    if ids.numel() < 2:
        raise DataError("perplexity needs at least 2 tokens of text")
    stride = stride or max(1, window // 2)
    if window < 2 or not 0 < stride <= window:
        raise DataError(f"window {window} must be >= 2 and stride {stride} in 1..window")
    # (start, end, first predicted position): every position 1..N-1 is predicted exactly once,
    # each window after the first predicts its last `step` tokens from the tokens before them
    step = min(stride, window - 1)
    spans, prev_end = [], 1
    while prev_end < ids.numel():
        end = min(window if not spans else prev_end + step, ids.numel())
        spans.append((max(0, end - window), end, prev_end))
        prev_end = end
    device = _device(model)
    total_nll, total_n = 0.0, 0
    with _EvalMode(model), torch.inference_mode():
        for b in track(range(0, len(spans), batch_size), description):
            group = spans[b : b + batch_size]
            rows = [ids[s:e].tolist() for s, e, _ in group]
            x, mask = _right_pad(rows, 0)
            logits = _logits(model(input_ids=x.to(device), attention_mask=mask.to(device))).float()
            logp = logits[:, :-1].log_softmax(-1)
            target = x[:, 1:].to(device)
            nll = -logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)
            for r, (s, e, first) in enumerate(group):
                # position p (absolute) is predicted by logits at p - 1 (relative p - 1 - s)
                lo, hi = first - s - 1, e - s - 1
                total_nll += float(nll[r, lo:hi].sum())
                total_n += hi - lo
    loss = total_nll / total_n
    return EvalResult(metric="perplexity", n=total_n, loss=loss, perplexity=math.exp(loss))
