"""CCA alignment (Horoi et al. 2024, "CCA Merge"): map B's units onto A's with a linear map.

A permutation can only pair units one to one; when a feature of A is spread over
several units of B, a linear map does better. Per hidden group, from activations on
the same inputs: whiten each side (Sigma^-1/2), take the SVD of the whitened
cross-covariance to get the canonical directions P_A and P_B (X_A P_A and X_B P_B are
maximally correlated; samples before and after the activation function are pooled:
after it a widening layer's units are not linearly dependent, before it dead ReLU units
still vary), and set T = P_B P_A^-1, so that x_B T ~ x_A. B's layer producing
the group gets T^T on its output side, the layer consuming it T^-T on its input side.
With a ReLU in between this is not exact (unlike a permutation); it is meant for
merging: average A with the mapped B. For a permuted copy T is that permutation.
Chains (MLPs) only.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from graftkit.align.chain import chain_spec
from graftkit.align.weight_matching import check_same_shapes
from graftkit.align.apply import state_tensors
from graftkit.errors import AlignmentError


def _inv_sqrt(cov: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    vals, vecs = torch.linalg.eigh(cov)
    vals = vals.clamp_min(0) + eps * vals.abs().max().clamp_min(1e-12)
    return vecs @ torch.diag(vals.rsqrt()) @ vecs.T, vecs @ torch.diag(vals.sqrt()) @ vecs.T


def cca_transform(xa_stats: dict[str, torch.Tensor], eps: float = 1e-4) -> torch.Tensor:
    """T (units x units) with x_B T ~ x_A, from the covariances ``aa``, ``bb``, ``ab``."""
    inv_a, sqrt_a = _inv_sqrt(xa_stats["aa"], eps)
    inv_b, _ = _inv_sqrt(xa_stats["bb"], eps)
    u, _, vh = torch.linalg.svd(inv_a @ xa_stats["ab"] @ inv_b)
    # P_A = inv_a U, P_B = inv_b V; T = P_B P_A^-1 = inv_b V U^T sqrt_a
    return inv_b @ vh.T @ u.T @ sqrt_a


def _covariances(model_a: nn.Module, model_b: nn.Module, sites: list[str], batches: Iterable[Any]) -> dict:
    from graftkit.similarity import LayerRecorder

    acc: dict[str, dict[str, Any]] = {}
    with LayerRecorder(model_a, sites, pooling="all") as ra, LayerRecorder(model_b, sites, pooling="all") as rb:
        for batch in batches:
            oa, ob = ra(batch), rb(batch)
            for site in sites:
                a, b = oa[site].double(), ob[site].double()
                if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
                    raise AlignmentError(f"activations at layer {site!r} contain NaN or Inf",
                                         hint="check both models' weights and the data")
                s = acc.setdefault(site, {"n": 0, "a": 0, "b": 0, "aa": 0, "bb": 0, "ab": 0})
                s["n"] += a.shape[0]
                s["a"] = s["a"] + a.sum(0)
                s["b"] = s["b"] + b.sum(0)
                s["aa"] = s["aa"] + a.T @ a
                s["bb"] = s["bb"] + b.T @ b
                s["ab"] = s["ab"] + a.T @ b
    out = {}
    for site, s in acc.items():
        n = s["n"]
        if n < 2:
            raise AlignmentError(f"layer {site!r}: fewer than 2 samples for CCA", hint="pass more batches")
        ma, mb = s["a"] / n, s["b"] / n
        out[site] = {"aa": s["aa"] / n - torch.outer(ma, ma), "bb": s["bb"] / n - torch.outer(mb, mb),
                     "ab": s["ab"] / n - torch.outer(ma, mb)}
    return out


@torch.no_grad()
def cca_align(model_a: nn.Module, model_b: nn.Module, batches: Iterable[Any], eps: float = 1e-4) -> nn.Module:
    """A copy of chain model B with every hidden group mapped into A's basis by CCA."""
    spec = chain_spec(model_a)
    check_same_shapes(spec, state_tensors(model_a), state_tensors(model_b))
    group_sites = {g: sorted({spec.repair_sites[g], *spec.sites[g]}) for g in spec.groups}
    covs = _covariances(model_a, model_b, sorted({s for v in group_sites.values() for s in v}), list(batches))
    transforms = {}
    for g, sites in group_sites.items():  # samples before and after the activation, pooled
        pooled = {k: sum(covs[s][k] for s in sites) for k in ("aa", "bb", "ab")}
        transforms[g] = cca_transform(pooled, eps)
    out = copy.deepcopy(model_b)
    params = dict(out.named_parameters())
    buffers = dict(out.named_buffers())
    for name, refs in spec.axes.items():
        tensor = params.get(name, buffers.get(name))
        w = tensor.double()
        for axis, ref in enumerate(refs):
            if ref is None:
                continue
            t = transforms[ref.group]
            k = ref.expand()
            if axis == 0:  # output side of the producing layer: h' = T^T h
                if w.dim() > 1 and not isinstance(out.get_submodule(name.rsplit(".", 1)[0]), nn.Linear):
                    raise AlignmentError(f"CCA alignment supports Linear layers only, not {name}",
                                         hint="use permutation matching for conv networks")
                if name.endswith(("running_mean", "running_var")) or w.dim() == 1 and not name.endswith("bias"):
                    raise AlignmentError(f"CCA alignment cannot map the per-unit tensor {name}",
                                         hint="use permutation matching for networks with norm layers")
                w = torch.tensordot(t.T, w, dims=([1], [0]))
            else:  # input side of the consuming layer: W' = W T^-T
                if k != 1:
                    raise AlignmentError(f"CCA alignment cannot map the flattened input of {name}",
                                         hint="use permutation matching for conv networks")
                w = w @ torch.linalg.inv(t).T
        tensor.copy_(w.to(tensor.dtype))
    return out
