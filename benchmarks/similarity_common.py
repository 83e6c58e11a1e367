"""Shared by the similarity benchmarks: the results folder and plain-numpy reference kernels.

The numpy functions are the anchors' formulas written the plain way (Kornblith et al.'s
CKA notebook in Gram form, Google's svcca `cca_core` covariance route), so that
graftkit's kernels can be timed and checked against them in the same run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


# ---- plain numpy references (Gram form, as in the CKA paper's notebook) ----

def np_gram_linear(x):
    return x.dot(x.T)


def np_gram_rbf(x, threshold=1.0):
    dot = x.dot(x.T)
    sq = np.diag(dot)
    d2 = -2 * dot + sq[:, None] + sq[None, :]
    return np.exp(-d2 / (2 * threshold**2 * np.median(d2)))


def np_center_gram(gram, unbiased=False):
    gram = gram.copy()
    n = gram.shape[0]
    if unbiased:
        np.fill_diagonal(gram, 0)
        means = np.sum(gram, 0) / (n - 2)
        means -= np.sum(means) / (2 * (n - 1))
        gram -= means[:, None]
        gram -= means[None, :]
        np.fill_diagonal(gram, 0)
    else:
        means = np.mean(gram, 0)
        means -= np.mean(means) / 2
        gram -= means[:, None]
        gram -= means[None, :]
    return gram


def np_cka(gram_x, gram_y, debiased=False):
    gx = np_center_gram(gram_x, debiased)
    gy = np_center_gram(gram_y, debiased)
    return gx.ravel().dot(gy.ravel()) / (np.linalg.norm(gx) * np.linalg.norm(gy))


def np_feature_space_linear_cka(x, y):
    """The notebook's own faster form (d x d products), for an honest second comparison."""
    x = x - x.mean(0)
    y = y - y.mean(0)
    return np.linalg.norm(x.T.dot(y)) ** 2 / (np.linalg.norm(x.T.dot(x)) * np.linalg.norm(y.T.dot(y)))


def np_cca_r2(x, y):
    qx, _ = np.linalg.qr(x - x.mean(0))
    qy, _ = np.linalg.qr(y - y.mean(0))
    return np.linalg.norm(qx.T.dot(qy)) ** 2 / min(x.shape[1], y.shape[1])


def _np_cca_core(x, y):
    """cca_core route: covariance, pinv, matrix inverse square roots, SVD. x, y: (n, d) centered."""
    dx = x.shape[1]
    cov = np.cov(np.concatenate([x, y], 1).T)
    sxx, sxy, syy = cov[:dx, :dx], cov[:dx, dx:], cov[dx:, dx:]

    def inv_sqrt(a):
        w, v = np.linalg.eigh(np.linalg.pinv(a))
        return v.dot(np.diag(np.sqrt(np.clip(w, 0, None)))).dot(v.T)

    ix, iy = inv_sqrt(sxx), inv_sqrt(syy)
    u, s, vt = np.linalg.svd(ix.dot(sxy).dot(iy))
    return u, np.clip(s, 0, 1), ix


def np_svcca(x, y, keep=0.99):
    """Raghu et al.: SVD of each side, keep 99% of the variance, then CCA; mean correlation."""
    def reduce(a):
        a = a - a.mean(0)
        u, s, _ = np.linalg.svd(a, full_matrices=False)
        k = int(np.searchsorted(np.cumsum(s**2) / np.sum(s**2), keep)) + 1
        return u[:, :k] * s[:k]

    _, s, _ = _np_cca_core(reduce(x), reduce(y))
    return float(np.mean(s))


def np_pwcca(x, y):
    """Morcos et al.: canonical variates of x orthonormalized by QR, weights sum |<variate, neuron>|."""
    x = x - x.mean(0)
    y = y - y.mean(0)
    u, s, ix = _np_cca_core(x, y)
    variates = x.dot(ix).dot(u[:, : len(s)])
    q, _ = np.linalg.qr(variates)
    weights = np.abs(q.T.dot(x)).sum(1)
    weights /= weights.sum()
    return float(np.sum(weights * s))


def np_rsa(x, y):
    from scipy.spatial.distance import pdist
    from scipy.stats import spearmanr

    return float(spearmanr(pdist(x, "correlation"), pdist(y, "correlation")).statistic)


def np_procrustes(x, y):
    x = x - x.mean(0)
    y = y - y.mean(0)
    x /= np.linalg.norm(x)
    y /= np.linalg.norm(y)
    return float(np.linalg.svd(x.T.dot(y), compute_uv=False).sum())


def np_minibatch_cka(x, y, batch=256):
    def hsic1(k, l):
        n = k.shape[0]
        k = k.copy()
        l = l.copy()
        np.fill_diagonal(k, 0)
        np.fill_diagonal(l, 0)
        return (np.sum(k * l) + k.sum() * l.sum() / ((n - 1) * (n - 2))
                - 2.0 / (n - 2) * k.sum(0).dot(l.sum(0))) / (n * (n - 3))

    xy = xx = yy = 0.0
    for s in range(0, x.shape[0], batch):
        kx, ky = np_gram_linear(x[s : s + batch]), np_gram_linear(y[s : s + batch])
        xy += hsic1(kx, ky)
        xx += hsic1(kx, kx)
        yy += hsic1(ky, ky)
    return float(xy / np.sqrt(xx * yy))
