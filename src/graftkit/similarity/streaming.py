"""CKA statistics accumulated over batches, so memory does not grow with the number of inputs.

``GramAccumulator``: exact linear CKA over every sample seen, from running sums in
feature space (X'X, Y'Y, X'Y, column sums): memory (d1 + d2)^2 numbers, whatever n.

``MinibatchCKA`` (Nguyen, Raghu & Kornblith 2021, arXiv 2010.15327): the unbiased
HSIC_1 estimator computed on each minibatch's Gram matrices and averaged; CKA is
the ratio of the averages. Memory is the number of layer pairs; it converges to
the population CKA as batches accumulate and is unbiased per batch, which is why
the minibatches may be small.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from graftkit.errors import DataError, ShapeMismatchError
from graftkit.similarity.checks import as_features, pair
from graftkit.similarity.symmetric import column_gram


class GramAccumulator:
    """Exact linear CKA between two feature streams, fed batch by batch (same samples on both sides)."""

    def __init__(self, names: tuple[str | None, str | None] = (None, None), dtype: torch.dtype = torch.float64):
        self.names = names
        self.dtype = dtype
        self.n = 0
        self._sx = self._sy = self._xx = self._yy = self._xy = None

    def update(self, x: Any, y: Any) -> None:
        x, y = pair(x, y, self.names, dtype=self.dtype, min_samples=1)
        if self._xx is None:
            self._sx, self._sy = x.sum(0), y.sum(0)
            self._xx, self._yy, self._xy = column_gram(x), column_gram(y), x.T @ y
        else:
            if x.shape[1] != self._xx.shape[0] or y.shape[1] != self._yy.shape[0]:
                raise ShapeMismatchError(
                    f"feature count changed between batches for {self.names}",
                    hint="feed the same layers in every batch",
                )
            self._sx += x.sum(0)
            self._sy += y.sum(0)
            self._xx += column_gram(x)
            self._yy += column_gram(y)
            self._xy += x.T @ y
        self.n += x.shape[0]

    def value(self) -> float:
        """Linear CKA of all samples so far (identical to ``linear_cka`` on the concatenated batches)."""
        if self.n < 2:
            raise DataError(f"{self.names}: linear CKA needs at least 2 samples, got {self.n}",
                            hint="feed more batches")
        mx, my = self._sx / self.n, self._sy / self.n
        xx = self._xx - self.n * torch.outer(mx, mx)
        yy = self._yy - self.n * torch.outer(my, my)
        xy = self._xy - self.n * torch.outer(mx, my)
        norm_x, norm_y = torch.linalg.matrix_norm(xx), torch.linalg.matrix_norm(yy)
        for norm, name in ((norm_x, self.names[0]), (norm_y, self.names[1])):
            if float(norm) <= 0.0:
                raise DataError(f"layer {name!r}: constant over all samples, CKA is undefined",
                                hint="pick another layer or use inputs that differ")
        return float(torch.linalg.matrix_norm(xy) ** 2 / (norm_x * norm_y))


def _hsic_terms(grams: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Zero-diagonal Grams flattened (L, n*n), their row sums (L, n) and totals (L,)."""
    k = grams.clone()
    k.diagonal(dim1=1, dim2=2).zero_()
    rows = k.sum(2)
    return k.flatten(1), rows, rows.sum(1)


def hsic_matrix(grams_a: torch.Tensor, grams_b: torch.Tensor) -> torch.Tensor:
    """Unbiased HSIC_1 (Song et al. 2012) of every pair of stacked n x n Grams (La, n, n) x (Lb, n, n).

    HSIC_1(K, L) = [tr(K~L~) + 1'K~1 1'L~1 / ((n-1)(n-2)) - 2/(n-2) 1'K~L~1] / (n(n-3)),
    K~ being K with a zero diagonal; n >= 4.
    """
    n = grams_a.shape[-1]
    ka, ra, sa = _hsic_terms(grams_a)
    kb, rb, sb = _hsic_terms(grams_b)
    trace = ka @ kb.T
    middle = torch.outer(sa, sb) / ((n - 1) * (n - 2))
    last = (2.0 / (n - 2)) * (ra @ rb.T)
    return (trace + middle - last) / (n * (n - 3))


def hsic_self(grams: torch.Tensor) -> torch.Tensor:
    """HSIC_1(K, K) of each stacked Gram (L, n, n): the diagonal of ``hsic_matrix`` at 1/L the cost."""
    n = grams.shape[-1]
    k, r, s = _hsic_terms(grams)
    return ((k * k).sum(1) + s * s / ((n - 1) * (n - 2)) - (2.0 / (n - 2)) * (r * r).sum(1)) / (n * (n - 3))


def paired_hsic(grams_x: torch.Tensor, grams_y: torch.Tensor, *, overwrite: bool = False) -> torch.Tensor:
    """(B, 3) float64: HSIC_1(K_b, L_b), HSIC_1(K_b, K_b), HSIC_1(L_b, L_b) for stacked pairs of
    n x n Grams (B, n, n) (n >= 4). Gram entries may be float32: every sum is taken by
    torch's cascade summation and the terms are combined in float64. ``overwrite=True``
    zeroes the Grams' diagonals in place instead of copying them (for temporaries)."""
    n = grams_x.shape[-1]
    k, l = (grams_x, grams_y) if overwrite else (grams_x.clone(), grams_y.clone())
    k.diagonal(dim1=1, dim2=2).zero_()
    l.diagonal(dim1=1, dim2=2).zero_()
    rk, rl = k.sum(2), l.sum(2)
    sk, sl = rk.sum(1).double(), rl.sum(1).double()
    traces = torch.stack([(k * l).sum((1, 2)), (k * k).sum((1, 2)), (l * l).sum((1, 2))], 1).double()
    rows = torch.stack([(rk * rl).sum(1), (rk * rk).sum(1), (rl * rl).sum(1)], 1).double()
    totals = torch.stack([sk * sl, sk * sk, sl * sl], 1)
    return (traces + totals / ((n - 1) * (n - 2)) - (2.0 / (n - 2)) * rows) / (n * (n - 3))


def unbiased_hsic(k: torch.Tensor, l: torch.Tensor) -> torch.Tensor:
    """HSIC_1 of two n x n Gram matrices (n >= 4)."""
    return hsic_matrix(k[None], l[None])[0, 0]


class MinibatchCKA:
    """Linear CKA matrix between two lists of layers, accumulated with unbiased HSIC per minibatch.

    ``update(feats_a, feats_b)`` takes one batch's features of every layer of each
    side (lists in layer order, the same samples); ``value()`` returns the
    (len(a), len(b)) matrix. Batches with fewer than 4 samples are skipped (the
    estimator needs n >= 4) and counted in ``skipped``.
    """

    def __init__(self, names_a: Sequence[str], names_b: Sequence[str], dtype: torch.dtype = torch.float64):
        self.names_a, self.names_b = list(names_a), list(names_b)
        self.dtype = dtype
        self._cross = torch.zeros(len(self.names_a), len(self.names_b), dtype=dtype)
        self._self_a = torch.zeros(len(self.names_a), dtype=dtype)
        self._self_b = torch.zeros(len(self.names_b), dtype=dtype)
        self.batches = 0
        self.skipped = 0

    def _grams(self, feats: Sequence[Any], names: Sequence[str]) -> torch.Tensor:
        if len(feats) != len(names):
            raise ShapeMismatchError(f"got {len(feats)} feature matrices for {len(names)} layers",
                                     hint="pass one matrix per layer, in layer order")
        grams = []
        for f, name in zip(feats, names):
            x = as_features(f, name, dtype=self.dtype, min_samples=1)
            if grams and x.shape[0] != grams[0].shape[0]:
                raise ShapeMismatchError(f"layer {name!r} has {x.shape[0]} samples in this batch, "
                                         f"layer {names[0]!r} has {grams[0].shape[0]}",
                                         hint="all layers must see the same inputs")
            grams.append(x @ x.T)
        return torch.stack(grams)

    def update(self, feats_a: Sequence[Any], feats_b: Sequence[Any]) -> None:
        ga = self._grams(feats_a, self.names_a)
        gb = self._grams(feats_b, self.names_b)
        n = ga.shape[-1]
        if gb.shape[-1] != n:
            raise ShapeMismatchError(f"one minibatch has {n} samples on side A and {gb.shape[-1]} on side B",
                                     hint="both models must see the same inputs in the same batches")
        if n < 4:
            self.skipped += 1
            return
        self._cross += hsic_matrix(ga, gb)
        self._self_a += hsic_self(ga)
        self._self_b += hsic_self(gb)
        self.batches += 1

    def value(self) -> torch.Tensor:
        if self.batches == 0:
            raise DataError("minibatch CKA saw no batch with at least 4 samples",
                            hint="use a batch size of 4 or more")
        dead = [n for n, v in zip(self.names_a, self._self_a) if v <= 0] + [
            n for n, v in zip(self.names_b, self._self_b) if v <= 0
        ]
        if dead:
            raise DataError(f"layer {dead[0]!r}: no variance across samples, CKA is undefined",
                            hint="drop that layer or use inputs that differ")
        return self._cross / torch.sqrt(self._self_a[:, None] * self._self_b[None, :])
