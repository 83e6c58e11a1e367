"""The registry of representation-similarity metrics, by name.

Each metric is a ``prepare`` step run once per layer (validation, centering, Gram
or eigendecomposition) and a ``compare`` step run per pair of prepared layers, so
a layer-by-layer matrix pays the per-layer cost once, not once per pair. All
values are similarities: higher means more alike (1 = identical up to the
metric's invariances).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from graftkit.errors import ConfigError, DataError
from graftkit.similarity import cca as _cca
from graftkit.similarity import cka as _cka
from graftkit.similarity import procrustes as _procrustes
from graftkit.similarity import rsa as _rsa
from graftkit.similarity.checks import as_features, centered, pair
from graftkit.similarity.precision import product_dtype
from graftkit.similarity.streaming import paired_hsic
from graftkit.similarity.symmetric import chunk_grams


@dataclass(frozen=True)
class Metric:
    name: str
    description: str
    reference: str
    prepare: Callable[[Any, str | None], Any]
    compare: Callable[[Any, Any], float]
    symmetric: bool = True

    def __call__(self, x: Any, y: Any, names: tuple[str | None, str | None] = (None, None)) -> float:
        a, b = self.prepare(x, names[0]), self.prepare(y, names[1])
        return self.compare(a, b)


@dataclass
class _Named:
    name: str | None
    value: Any


def _features(x: Any, name: str | None) -> _Named:
    return _Named(name, centered(as_features(x, name)))


def _linear(a: _Named, b: _Named) -> float:
    return _cka.linear_cka(a.value, b.value, names=(a.name, b.name))


def _debiased(a: _Named, b: _Named) -> float:
    return _cka.linear_cka(a.value, b.value, debiased=True, names=(a.name, b.name))


def _rbf_prepare(x: Any, name: str | None, threshold: float = 0.5) -> _Named:
    gram = _cka.center_gram(_cka.gram_rbf(as_features(x, name), threshold))
    norm = torch.linalg.matrix_norm(gram)
    if float(norm) == 0.0:
        raise _cka._zero_variance(name)
    return _Named(name, gram / norm)


def _gram_dot(a: _Named, b: _Named) -> float:
    if a.value.shape != b.value.shape:
        from graftkit.errors import ShapeMismatchError

        raise ShapeMismatchError(f"layer {a.name!r} and layer {b.name!r} have different sample counts",
                                 hint="both must come from the same inputs")
    return float((a.value * b.value).sum())


def minibatch_cka(
    x: Any,
    y: Any,
    *,
    batch_size: int = 256,
    names: tuple[str | None, str | None] = (None, None),
    precision: str = "auto",
) -> float:
    """Minibatch linear CKA over consecutive chunks of ``batch_size`` samples (unbiased HSIC per chunk).

    Equal to feeding the chunks to ``MinibatchCKA`` one by one (a last chunk of fewer than 4
    samples is skipped), but the chunks' Gram matrices come from symmetric BLAS products
    (``chunk_grams``) and their HSIC terms from batched reductions; ``precision`` picks the
    products' float type (``graftkit.similarity.precision``). Each
    chunk is centered on its own mean after the cast: the unbiased HSIC does not change
    under a shift of the features, float32 products of centered data keep more digits,
    and centering a chunk in the product's type costs far less than a float64 pass over
    all samples.
    """
    x, y = pair(x, y, names, min_samples=4)
    if batch_size < 4:
        raise ConfigError(f"batch_size must be at least 4 for the unbiased HSIC, got {batch_size}",
                          hint="use e.g. 256")
    n = x.shape[0]
    full = n - n % batch_size
    dtype = product_dtype(precision, n * batch_size * (x.shape[1] + y.shape[1]))
    chunks = [(x[:full].reshape(-1, batch_size, x.shape[1]), y[:full].reshape(-1, batch_size, y.shape[1]))]
    if n - full >= 4:
        chunks.append((x[full:][None], y[full:][None]))
    totals = torch.zeros(3, dtype=torch.float64)  # HSIC(x, y), HSIC(x, x), HSIC(y, y)
    for xb, yb in chunks:
        if xb.shape[0] == 0:
            continue
        kx, ky = chunk_grams(_centered_chunks(xb, dtype)), chunk_grams(_centered_chunks(yb, dtype))
        totals += paired_hsic(kx, ky, overwrite=True).sum(0)
    for value, name in ((totals[1], names[0]), (totals[2], names[1])):
        if float(value) <= 0.0:
            raise DataError(f"layer {name or 'activations'!r}: no variance across samples, CKA is undefined",
                            hint="drop that layer or use inputs that differ")
    return float(totals[0] / torch.sqrt(totals[1] * totals[2]))


def _centered_chunks(chunks: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, b, d) chunks in ``dtype``, each minus its own mean (in place on the cast copy, so the
    caller's tensor is never modified and no second copy is made)."""
    out = chunks.to(dtype)
    if out.data_ptr() == chunks.data_ptr():
        return out - out.mean(dim=1, keepdim=True)
    return out.sub_(out.mean(dim=1, keepdim=True))


def _raw(x: Any, name: str | None) -> _Named:
    return _Named(name, as_features(x, name, min_samples=4))


def _minibatch(a: _Named, b: _Named) -> float:
    return minibatch_cka(a.value, b.value, names=(a.name, b.name))


def _cca_prepare(metric: str) -> Callable[[Any, str | None], _cca.CCASide]:
    return lambda x, name: _cca.prepare_cca(x, name, metric=metric)


def _rsa_prepare(correlation: str) -> Callable[[Any, str | None], _Named]:
    def prepare(x: Any, name: str | None) -> _Named:
        tri = _rsa.rdm_upper(x, "correlation", name)
        if correlation == "spearman":
            tri = _rsa.average_ranks(tri)
        return _Named(name, tri)

    return prepare


def _rsa_compare(a: _Named, b: _Named) -> float:
    return float(_rsa.pearson(a.value, b.value))


def _procrustes_prepare(x: Any, name: str | None) -> _Named:
    return _Named(name, _procrustes._normalized(as_features(x, name), name))


def _procrustes_compare(a: _Named, b: _Named) -> float:
    return _procrustes.procrustes_similarity(a.value, b.value, names=(a.name, b.name))


METRICS: dict[str, Metric] = {
    m.name: m
    for m in [
        Metric("linear_cka", "linear centered kernel alignment", "Kornblith et al. 2019 (1905.00414)",
               _features, _linear),
        Metric("rbf_cka", "CKA with RBF kernels, sigma = 0.5 x median distance", "Kornblith et al. 2019",
               _rbf_prepare, _gram_dot),
        Metric("debiased_cka", "linear CKA with the unbiased HSIC estimator", "Kornblith et al. 2019; Song et al. 2012",
               _features, _debiased),
        Metric("minibatch_cka", "linear CKA from unbiased HSIC averaged over minibatches of 256",
               "Nguyen et al. 2021 (2010.15327)", _raw, _minibatch),
        Metric("cca", "mean squared canonical correlation (R^2_CCA)", "Kornblith et al. 2019",
               _cca_prepare("CCA"), _cca.cca_r2_prepared),
        Metric("svcca", "mean canonical correlation of the top singular directions (99% variance)",
               "Raghu et al. 2017 (1706.05806)", _cca_prepare("SVCCA"), _cca.svcca_prepared),
        Metric("pwcca", "projection-weighted mean canonical correlation (weights from the first model)",
               "Morcos et al. 2018 (1806.05759)", _cca_prepare("PWCCA"), _cca.pwcca_prepared, symmetric=False),
        Metric("rsa", "Spearman correlation of correlation-distance RDMs", "Kriegeskorte et al. 2008",
               _rsa_prepare("spearman"), _rsa_compare),
        Metric("rsa_pearson", "Pearson correlation of correlation-distance RDMs", "Kriegeskorte et al. 2008",
               _rsa_prepare("pearson"), _rsa_compare),
        Metric("procrustes", "1 - orthogonal Procrustes distance / 2 (nuclear norm of X'Y, unit-norm sides)",
               "Ding et al. 2021 (2108.01661)", _procrustes_prepare, _procrustes_compare),
    ]
}


def get_metric(name: str) -> Metric:
    """The metric called ``name``; a ConfigError with the closest names otherwise."""
    if name in METRICS:
        return METRICS[name]
    close = difflib.get_close_matches(name, list(METRICS), n=3)
    hint = f"did you mean {', '.join(close)}?" if close else f"choose one of: {', '.join(METRICS)}"
    raise ConfigError(f"unknown similarity metric {name!r}", hint=hint)
