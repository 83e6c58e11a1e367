"""Layer-by-layer similarity matrices between two models (any widths and depths).

``similarity_matrix`` compares every layer of one set of activations with every
layer of another; linear CKA has a vectorized path (normalized centered Gram
matrices compared with one matrix product, or d x d cross-covariances when that is
cheaper). ``layer_similarity`` does the whole job for two text models: tokenize,
capture both, compare, and return a ``LayerSimilarity`` that saves JSON and a heatmap.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from graftkit.errors import ConfigError, ShapeMismatchError
from graftkit.progress import progress_bar
from graftkit.similarity.capture import Activations, LayerRecorder, capture
from graftkit.similarity.checks import as_features, centered
from graftkit.similarity.cka import _zero_variance
from graftkit.similarity.metrics import get_metric
from graftkit.similarity.models import TextModel, load_text_model
from graftkit.similarity.streaming import MinibatchCKA
from graftkit.similarity.symmetric import chunk_grams, column_gram
from graftkit.similarity.texts import TextBatches

GRAM_MEMORY_BYTES = 768 * 2**20  # float64 Gram matrices held at once by the linear CKA path


def _as_layers(acts: Activations | dict[str, Any]) -> dict[str, Any]:
    return dict(acts.features) if isinstance(acts, Activations) else dict(acts)


def _normalized_gram(x: torch.Tensor, name: str) -> torch.Tensor:
    gram = chunk_grams(x[None])[0]  # symmetric BLAS product: half the multiply-adds of x @ x.T
    norm = torch.linalg.matrix_norm(gram)
    if float(norm) <= 0.0:
        raise _zero_variance(name)
    return (gram / norm).flatten()


def _linear_cka_matrix(a: dict[str, Any], b: dict[str, Any], same: bool, advance) -> torch.Tensor:
    """All-pairs linear CKA in float64, choosing the cheaper of the Gram and feature forms."""
    xa = {k: centered(as_features(v, k)) for k, v in a.items()}
    xb = xa if same else {k: centered(as_features(v, k)) for k, v in b.items()}
    n = next(iter(xa.values())).shape[0]
    for k, v in list(xa.items()) + list(xb.items()):
        if v.shape[0] != n:
            raise ShapeMismatchError(f"layer {k!r} has {v.shape[0]} samples, others have {n}",
                                     hint="both models must see the same inputs in the same order")
    da = sum(v.shape[1] for v in xa.values()) / len(xa)
    db = sum(v.shape[1] for v in xb.values()) / len(xb)
    gram_cost = (len(xa) + (0 if same else len(xb))) * n * n * (da + db) / 2
    feature_cost = len(xa) * len(xb) * n * da * db
    out = torch.empty(len(xa), len(xb), dtype=torch.float64)
    names_a, names_b = list(xa), list(xb)
    if gram_cost <= feature_cost:
        block = max(1, int(GRAM_MEMORY_BYTES // (n * n * 8 * (1 if same else 2))))
        for start in range(0, len(names_a), block):
            chunk = names_a[start : start + block]
            ga = torch.stack([_normalized_gram(xa[k], k) for k in chunk])
            if same and start == 0 and block >= len(names_b):
                out[:] = ga @ ga.T  # every pair from one product: each Gram is read once, not once per column
                advance(len(names_a) * len(names_b))
                return out.clamp_(0.0, 1.0)
            for j, name in enumerate(names_b):
                g = _normalized_gram(xb[name], name)
                out[start : start + len(chunk), j] = ga @ g
                advance(len(chunk))
        return out.clamp_(0.0, 1.0)
    self_a = {k: torch.linalg.matrix_norm(column_gram(v)) for k, v in xa.items()}
    self_b = self_a if same else {k: torch.linalg.matrix_norm(column_gram(v)) for k, v in xb.items()}
    for k, v in list(self_a.items()) + list(self_b.items()):
        if float(v) <= 0.0:
            raise _zero_variance(k)
    for i, ka in enumerate(names_a):
        for j, kb in enumerate(names_b):
            cross = torch.linalg.matrix_norm(xb[kb].T @ xa[ka]) ** 2
            out[i, j] = cross / (self_a[ka] * self_b[kb])
            advance(1)
    return out.clamp_(0.0, 1.0)


def similarity_matrix(
    acts_a: Activations | dict[str, Any],
    acts_b: Activations | dict[str, Any] | None = None,
    metric: str = "linear_cka",
    *,
    description: str | None = None,
) -> torch.Tensor:
    """(layers of a) x (layers of b) float64 matrix of ``metric``; ``acts_b=None`` compares a with itself."""
    spec = get_metric(metric)
    same = acts_b is None or acts_b is acts_a
    a = _as_layers(acts_a)
    b = a if same else _as_layers(acts_b)
    if not a or not b:
        raise ConfigError("no layers to compare", hint="capture at least one layer of each model")
    total = len(a) * len(b)
    with progress_bar(description or f"{metric} matrix", total) as advance:
        if spec.name == "linear_cka":
            return _linear_cka_matrix(a, b, same, advance)
        prepared_a = {k: spec.prepare(v, k) for k, v in a.items()}
        prepared_b = prepared_a if same else {k: spec.prepare(v, k) for k, v in b.items()}
        out = torch.empty(len(a), len(b), dtype=torch.float64)
        for i, pa in enumerate(prepared_a.values()):
            for j, pb in enumerate(prepared_b.values()):
                out[i, j] = spec.compare(pa, pb)
                advance(1)
        return out


@dataclass
class LayerSimilarity:
    """A layer-by-layer similarity matrix of two models and how it was made."""

    metric: str
    model_a: str
    model_b: str
    layers_a: list[str]
    layers_b: list[str]
    matrix: torch.Tensor
    n: int
    pooling: str
    seconds: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def best_matches(self) -> dict[str, str]:
        """For each layer of model A, the most similar layer of model B."""
        idx = self.matrix.argmax(1).tolist()
        return {a: self.layers_b[j] for a, j in zip(self.layers_a, idx)}

    def to_dict(self) -> dict[str, Any]:
        from graftkit import __version__

        return {
            "metric": self.metric,
            "model_a": self.model_a,
            "model_b": self.model_b,
            "n": self.n,
            "pooling": self.pooling,
            "layers_a": self.layers_a,
            "layers_b": self.layers_b,
            "matrix": [[round(float(v), 6) for v in row] for row in self.matrix],
            "best_match_a_to_b": self.best_matches(),
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "details": self.details,
            "graftkit_version": __version__,
        }

    def save_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    def save_heatmap(self, path: str | Path) -> Path:
        from graftkit.similarity.plot import heatmap

        return heatmap(self, path)


def _pick_texts(texts: Sequence[str], n: int | None, seed: int) -> list[str]:
    texts = [t for t in texts if isinstance(t, str) and t.strip()]
    if n is not None and n < len(texts):
        texts = random.Random(seed).sample(texts, n)
    return texts


def _check_same_tokens(a: TextModel, b: TextModel, texts: list[str], max_length: int) -> None:
    """pooling='all' compares token rows, which only correspond under the same tokenization."""
    for start in range(0, len(texts), 256):
        chunk = texts[start : start + 256]
        ta = a.tokenizer(chunk, truncation=True, max_length=max_length)["input_ids"]
        tb = b.tokenizer(chunk, truncation=True, max_length=max_length)["input_ids"]
        for i, (x, y) in enumerate(zip(ta, tb)):
            if len(x) != len(y):
                raise ShapeMismatchError(
                    f"pooling='all' needs both models to split each text into the same tokens, but "
                    f"{a.name} gives {len(x)} and {b.name} gives {len(y)} tokens for text {chunk[i]!r:.60}",
                    hint="use pooling='mean' (or 'first') for models with different tokenizers",
                )


def layer_similarity(
    model_a: Any,
    model_b: Any,
    texts: Sequence[str],
    metric: str = "linear_cka",
    *,
    n: int | None = None,
    layers_a: str | Iterable[str] | None = None,
    layers_b: str | Iterable[str] | None = None,
    pooling: str = "mean",
    batch_size: int = 32,
    max_length: int = 128,
    max_tokens: int = 10_000,
    seed: int = 0,
) -> LayerSimilarity:
    """Similarity of every layer of ``model_a`` with every layer of ``model_b`` on ``texts``.

    Models: HF folder paths, zoo names ("all-MiniLM-L6-v2"), ``(model, tokenizer)``
    pairs or ``TextModel``s. ``n`` texts are sampled with ``seed`` (all when None)
    and run sorted by token count (rows of the result follow the sampled texts). Layers default
    to every transformer block's output. ``metric="minibatch_cka"`` streams: nothing
    but per-batch Gram matrices is ever held, whatever ``n``.
    """
    spec = get_metric(metric)
    if pooling not in ("mean", "first", "last", "all"):
        raise ConfigError(f"pooling {pooling!r} does not apply to text models",
                          hint="use mean, first, last or all")
    picked = _pick_texts(texts, n, seed)
    if len(picked) < 4:
        raise ConfigError(f"only {len(picked)} non-empty texts", hint="pass at least 4 (hundreds for stable numbers)")
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    a = load_text_model(model_a)
    same_model = model_b is model_a or (
        isinstance(model_b, (str, Path)) and isinstance(model_a, (str, Path)) and str(model_b) == str(model_a)
    )
    same = same_model and layers_b == layers_a
    b = a if same_model else load_text_model(model_b)
    seconds["load"] = time.perf_counter() - start
    if pooling == "all" and not same_model:
        _check_same_tokens(a, b, picked, max_length)
    # each model runs its texts sorted by its own token counts (little padding; capture puts the
    # rows back in text order), except where both must see the same batches: streamed minibatch
    # CKA and token rows
    batches_a = TextBatches(a.tokenizer, picked, batch_size, max_length, order="length")
    shared_order = spec.name == "minibatch_cka" or pooling == "all"
    batches_b = batches_a if same_model else TextBatches(
        b.tokenizer, picked, batch_size, max_length, order=batches_a.order if shared_order else "length")
    details: dict[str, Any] = {"batch_size": batch_size, "max_length": max_length}

    if spec.name == "minibatch_cka":
        start = time.perf_counter()
        with LayerRecorder(a.model, layers_a, pooling) as rec_a, LayerRecorder(b.model, layers_b, pooling) as rec_b:
            acc = MinibatchCKA(rec_a.layers, rec_b.layers)
            with progress_bar(f"minibatch CKA {a.name} vs {b.name}", len(batches_a)) as advance:
                for batch_a, batch_b in zip(batches_a, batches_b):
                    fa = rec_a(batch_a)
                    fb = fa if same else rec_b(batch_b)
                    acc.update(list(fa.values()), list(fb.values()))
                    advance(1)
            names_a, names_b = rec_a.layers, rec_b.layers
        matrix = acc.value()
        seconds["capture_and_metric"] = time.perf_counter() - start
        details.update(batches=acc.batches, skipped_batches=acc.skipped)
        count = len(picked)
    else:
        start = time.perf_counter()
        acts_a = capture(a.model, batches_a, layers_a, pooling, max_tokens=max_tokens, seed=seed,
                         description=f"capturing {a.name}")
        seconds["capture_a"] = time.perf_counter() - start
        if same:
            acts_b = acts_a
        else:
            start = time.perf_counter()
            acts_b = capture(b.model, batches_b, layers_b, pooling, max_tokens=max_tokens, seed=seed,
                             description=f"capturing {b.name}")
            seconds["capture_b"] = time.perf_counter() - start
        start = time.perf_counter()
        matrix = similarity_matrix(acts_a, None if same else acts_b, spec.name,
                                   description=f"{spec.name} {a.name} vs {b.name}")
        seconds["metric"] = time.perf_counter() - start
        names_a, names_b = acts_a.layers, acts_b.layers
        count = acts_a.n
    if not torch.isfinite(matrix).all():
        raise ShapeMismatchError(f"{spec.name} produced non-finite values", hint="report this with the models used")
    details["widths"] = {"a": _width(a), "b": _width(b)}
    return LayerSimilarity(spec.name, a.name, b.name, list(names_a), list(names_b), matrix, count, pooling,
                           seconds, details)


def _width(model: TextModel) -> int | None:
    config = getattr(model.model, "config", None)
    value = getattr(config, "hidden_size", None)
    return value if isinstance(value, int) else None


def diagonal_identification(matrix: torch.Tensor) -> float:
    """Share of rows whose most similar column is the same index (layer identification accuracy)."""
    if matrix.shape[0] != matrix.shape[1]:
        raise ShapeMismatchError("identification needs a square matrix (the same layers on both sides)")
    return float((matrix.argmax(1) == torch.arange(matrix.shape[0])).float().mean())
