"""Progressive Grams (RegMean++): each block's Grams come from what the merged earlier blocks feed it.

RegMean fits every linear layer to each model's own inputs, computed by that model
alone, so the errors of the merged early layers never reach the later layers'
regressions. RegMean++ (Nguyen et al. 2025, arXiv:2508.03121) merges block by block:
the Grams of block l are taken with each model whose embeddings and blocks before l
are already the merged ones, so block l is fitted on the inputs the merged model
really gives it. The Grams that result are ordinary per-model Gram statistics, so the
streaming merge afterwards reproduces the block-by-block merge tensor for tensor.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

import torch
from torch import nn

from graftkit.errors import DataError
from graftkit.merge.statistics.calibration import Calibration
from graftkit.merge.statistics.gram import compute_grams
from graftkit.merge.statistics.store import ModelStatistics, match_up_to_prefix
from graftkit.progress import track

MergeGroup = Callable[[list[str], list[ModelStatistics | None]], dict[str, torch.Tensor]]


def block_order(names: Sequence[str], layer_of: Callable[[str], int | None],
                is_pre_layer: Callable[[str], bool]) -> list[list[str]]:
    """Tensor names in forward order: tensors before the layer stack, each layer, the rest."""
    keyed: dict[float, list[str]] = {}
    for name in names:
        layer = layer_of(name)
        key = float(layer) if layer is not None else (-1.0 if is_pre_layer(name) else float("inf"))
        keyed.setdefault(key, []).append(name)
    return [keyed[k] for k in sorted(keyed)]


def _match(names: Sequence[str], candidates: Collection[str]) -> dict[str, str]:
    """``name -> candidate`` where the two are equal up to a leading prefix (``bert.x`` vs ``x``)."""
    return {name: hit for name in names if (hit := match_up_to_prefix(name, candidates)) is not None}


def progressive_grams(
    models: Sequence[nn.Module | None],
    calibrations: Sequence[Calibration | None],
    tokenizers: Sequence[object | None],
    groups: Sequence[Sequence[str]],
    merge_group: MergeGroup,
    *,
    batch_size: int = 16,
    max_length: int = 128,
) -> list[ModelStatistics | None]:
    """Gram statistics of every model, block by block over the merged earlier blocks.

    ``models[i]`` is the HF model of input i (None for a base that takes no statistics;
    the models are modified in place: their merged blocks are overwritten); ``groups``
    lists the tensor names block by block in forward order (``block_order``);
    ``merge_group(names, statistics)`` returns the merged tensors of those names given
    the statistics so far. Returns one ``ModelStatistics("gram")`` per model.
    """
    present = [i for i, m in enumerate(models) if m is not None]
    if not present:
        raise DataError("progressive Grams need at least one model with calibration data")
    grams: dict[int, dict[str, torch.Tensor]] = {i: {} for i in present}
    params = {i: dict(models[i].named_parameters()) for i in present}
    linears = {i: {n + ".weight": n for n, m in models[i].named_modules() if isinstance(m, nn.Linear)} for i in present}
    for group in track(list(groups), "progressive grams (RegMean++)"):
        for i in present:
            wanted = _match(list(group), linears[i])
            if not wanted:
                continue
            only = {linears[i][key] for key in wanted.values()}
            found, _ = compute_grams(models[i], calibrations[i].batches(tokenizers[i], batch_size=batch_size,
                                                                         max_length=max_length), only=only)
            grams[i].update({name: gram.cpu() for name, gram in found.items()})
        statistics = [ModelStatistics("gram", dict(grams[i]), {"progressive": "1"}) if i in grams else None
                      for i in range(len(models))]
        merged = merge_group(list(group), statistics)
        with torch.no_grad():
            for i in present:
                for name, target in _match(list(merged), params[i]).items():
                    params[i][target].copy_(merged[name].to(params[i][target].dtype))
    return [ModelStatistics("gram", grams[i], {"progressive": "1"}) if i in grams else None for i in range(len(models))]
