"""Data-aware merges that mergekit lacks: Fisher merging and RegMean.

Both need statistics of each model on a little data, computed by
``graftkit.merge.statistics`` and handed in by the engine as extra per-model
entries: ``model_params[i]["fisher"]`` (a tensor shaped like the weight) with
``model_params[i]["fisher_norm"]`` (that model's global Fisher L2 norm), and
``model_params[i]["gram"]`` (the Gram matrix X^T X / n of the input of the
``nn.Linear`` owning a 2-D weight). A model that is given as base is left out:
both methods combine the fine-tuned models themselves, not task vectors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from graftkit.errors import MergeError, ShapeMismatchError
from graftkit.merge.methods.base import MergeMethod, ParamSpec, split_base


def _weighted_mean(tensors: Sequence[torch.Tensor], weights: Sequence[float]) -> torch.Tensor:
    total = sum(weights)
    if total == 0:
        raise MergeError("the model weights sum to zero", hint="give the models positive weights")
    return sum(w * t for w, t in zip(weights, tensors)) / total


def fisher_merge(
    tensors: Sequence[torch.Tensor],
    *,
    base_index: int | None,
    model_params: Sequence[Mapping[str, Any]],
    fisher_floor: float = 1e-6,
    normalize_fisher: bool = True,
    tensor_name: str = "",
    **_: Any,
) -> torch.Tensor:
    """theta = sum_i w_i F_i theta_i / sum_i w_i F_i, per entry (Matena & Raffel 2022).

    With ``normalize_fisher`` each model's Fisher is divided by its global L2 norm
    (over all of that model's tensors), so that models whose losses differ in scale
    count alike; every Fisher entry is then floored at ``fisher_floor``, so entries
    that no model's data touched fall back to the weighted mean. A tensor for which
    no model has a Fisher (e.g. a head that was not part of the statistics) is the
    weighted mean.
    """
    _, others = split_base(tensors, base_index)
    weights = [float(model_params[i]["weight"]) for i in others]
    fishers = [model_params[i].get("fisher") for i in others]
    if all(f is None for f in fishers):
        return _weighted_mean([tensors[i] for i in others], weights)
    if any(f is None for f in fishers):
        missing = [i for i, f in zip(others, fishers) if f is None]
        raise MergeError(
            f"fisher: models {missing} have no Fisher statistics for '{tensor_name}' while others do",
            hint="compute the statistics of every model with the same settings",
        )
    numerator = torch.zeros_like(tensors[others[0]])
    denominator = torch.zeros_like(numerator)
    for i, w, fisher in zip(others, weights, fishers):
        if fisher.shape != tensors[i].shape:
            raise ShapeMismatchError(f"fisher: statistics for '{tensor_name}' have shape {tuple(fisher.shape)}, the weight {tuple(tensors[i].shape)}")
        f = fisher.to(numerator.dtype)
        if normalize_fisher:
            norm = float(model_params[i].get("fisher_norm") or 0.0)
            if norm > 0:
                f = f / norm
        f = w * f.clamp(min=fisher_floor)
        numerator += f * tensors[i]
        denominator += f
    return numerator / denominator


def regmean_merge(
    tensors: Sequence[torch.Tensor],
    *,
    base_index: int | None,
    model_params: Sequence[Mapping[str, Any]],
    alpha: float = 0.9,
    tensor_name: str = "",
    **_: Any,
) -> torch.Tensor:
    """RegMean (Jin et al. 2023) for a linear layer's weight W (out x in, y = x W^T).

    W = (sum_i w_i W_i G_i) (sum_i w_i G_i)^-1 with G_i = alpha G_i + (1 - alpha)
    diag(G_i): the least-squares weight that best reproduces every model's outputs
    on its own inputs, with the off-diagonal Gram terms shrunk by alpha (alpha = 1
    is the exact regression, alpha = 0 a per-input-feature weighted mean). Tensors
    without Grams (biases, norms, embeddings) are the weighted mean.
    """
    _, others = split_base(tensors, base_index)
    weights = [float(model_params[i].get("weight", 1.0)) for i in others]
    grams = [model_params[i].get("gram") for i in others]
    if tensors[others[0]].dim() != 2 or all(g is None for g in grams):
        return _weighted_mean([tensors[i] for i in others], weights)
    if any(g is None for g in grams):
        missing = [i for i, g in zip(others, grams) if g is None]
        raise MergeError(
            f"regmean: models {missing} have no Gram matrix for '{tensor_name}' while others do",
            hint="compute the statistics of every model with the same settings",
        )
    in_features = tensors[others[0]].shape[1]
    lhs = torch.zeros(in_features, in_features, dtype=torch.float64, device=tensors[0].device)
    rhs = torch.zeros(tensors[others[0]].shape, dtype=torch.float64, device=tensors[0].device)
    for i, w, gram in zip(others, weights, grams):
        if tuple(gram.shape) != (in_features, in_features):
            raise ShapeMismatchError(
                f"regmean: the Gram for '{tensor_name}' is {tuple(gram.shape)}, the weight takes {in_features} inputs"
            )
        g = gram.to(torch.float64)
        g = alpha * g + (1 - alpha) * torch.diag(torch.diagonal(g))
        lhs += w * g
        rhs += w * tensors[i].to(torch.float64) @ g
    try:
        merged = torch.linalg.solve(lhs, rhs.T).T
    except RuntimeError:  # singular: the inputs span fewer dimensions than the layer has
        merged = rhs @ torch.linalg.pinv(lhs, hermitian=True)
    return merged.to(tensors[others[0]].dtype)


FISHER = MergeMethod(
    name="fisher",
    function=fisher_merge,
    reference="https://arxiv.org/abs/2111.09832",
    description="per-parameter Fisher-weighted mean of the models (needs Fisher statistics)",
    base="optional",
    min_models=1,
    min_non_base=1,
    global_params={
        "fisher_floor": ParamSpec("fisher_floor", float, 1e-6, description="lower bound on each (normalized) Fisher entry"),
        "normalize_fisher": ParamSpec("normalize_fisher", bool, True, description="divide each model's Fisher by its global L2 norm"),
    },
    model_params={"weight": ParamSpec("weight", float, 1.0, per_model=True, non_base=True, description="scales this model's Fisher")},
    statistics=("fisher", "fisher_norm"),
    mergekit=False,
)
REGMEAN = MergeMethod(
    name="regmean",
    function=regmean_merge,
    reference="https://arxiv.org/abs/2212.09849",
    description="per linear layer, the weight that best fits every model's outputs on its inputs (needs Gram statistics)",
    base="optional",
    min_models=1,
    min_non_base=1,
    global_params={"alpha": ParamSpec("alpha", float, 0.9, description="scale of the Gram matrices' off-diagonal entries (1 = exact regression)")},
    model_params={"weight": ParamSpec("weight", float, 1.0, per_model=True, non_base=True, description="scales this model's Gram matrix")},
    statistics=("gram",),
    mergekit=False,
)

REGMEAN_PLUS = MergeMethod(
    name="regmean_plus",
    function=regmean_merge,
    reference="https://arxiv.org/abs/2508.03121",
    description="RegMean++: RegMean whose Grams for each block are taken over the already merged earlier blocks "
                "(needs Gram statistics; loads the input models in memory once)",
    base="optional",
    min_models=1,
    min_non_base=1,
    global_params=REGMEAN.global_params,
    model_params=REGMEAN.model_params,
    statistics=("gram", "progressive"),
    mergekit=False,
)

METHODS = [FISHER, REGMEAN, REGMEAN_PLUS]
