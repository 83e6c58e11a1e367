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
from graftkit.merge.statistics.block_replay import BlockReplay, block_of
from graftkit.merge.statistics.calibration import Calibration
from graftkit.merge.statistics.gram import GramRecorder, model_inputs
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
    replay: bool = True,
) -> list[ModelStatistics | None]:
    """Gram statistics of every model, block by block over the merged earlier blocks.

    ``models[i]`` is the HF model of input i (None for a base that takes no statistics;
    the models are modified in place: their merged blocks are overwritten); ``groups``
    lists the tensor names block by block in forward order (``block_order``);
    ``merge_group(names, statistics)`` returns the merged tensors of those names given
    the statistics so far. Returns one ``ModelStatistics("gram")`` per model. ``replay=False``
    runs whole forward passes for every block (L(L+1)/2 block passes instead of about 2L; the
    same Grams, kept as the reference the replay is tested against).
    """
    present = [i for i, m in enumerate(models) if m is not None]
    if not present:
        raise DataError("progressive Grams need at least one model with calibration data")
    grams: dict[int, dict[str, torch.Tensor]] = {i: {} for i in present}
    params = {i: dict(models[i].named_parameters()) for i in present}
    linears = {i: {n + ".weight": n for n, m in models[i].named_modules() if isinstance(m, nn.Linear)} for i in present}
    batches = {i: _batches(models[i], calibrations[i], tokenizers[i], batch_size, max_length) for i in present}
    replays = {i: BlockReplay(models[i]) for i in present}
    if not replay:
        for r in replays.values():
            r.supported = False
    for group in track(list(groups), "progressive grams (RegMean++)"):
        for i in present:
            wanted = _match(list(group), linears[i])
            if not wanted:
                continue
            only = {linears[i][key] for key in wanted.values()}
            grams[i].update(_group_grams(models[i], only, batches[i], replays[i]))
        statistics = [ModelStatistics("gram", dict(grams[i]), {"progressive": "1"}) if i in grams else None
                      for i in range(len(models))]
        merged = merge_group(list(group), statistics)
        with torch.no_grad():
            for i in present:
                for name, target in _match(list(merged), params[i]).items():
                    params[i][target].copy_(merged[name].to(params[i][target].dtype))
    return [ModelStatistics("gram", grams[i], {"progressive": "1"}) if i in grams else None for i in range(len(models))]


def _batches(model: nn.Module, calibration: Calibration, tokenizer: object, batch_size: int,
             max_length: int) -> list[dict[str, torch.Tensor]]:
    device = next(model.parameters()).device
    return [model_inputs(batch, device)
            for batch in calibration.batches(tokenizer, batch_size=batch_size, max_length=max_length)]


def _group_grams(model: nn.Module, only: set[str], batches: list[dict[str, torch.Tensor]],
                 replay: BlockReplay) -> dict[str, torch.Tensor]:
    """The Grams of the Linear modules ``only`` (one block, or modules outside the layer stack).

    A block right after the one merged last is run from the kept inputs (``BlockReplay``);
    the first block, or a model whose blocks cannot be replayed, gets whole forward passes
    that stop once the wanted modules have their input.
    """
    block = block_of(model, sorted(only))
    was_training = model.training
    model.eval()
    try:
        with GramRecorder(model, only) as recorder:
            if block is not None and replay.ready_for(*block) and replay.step(recorder):
                pass  # a step that cannot run records nothing and turns the replay off
            elif block is not None and replay.supported:
                replay.start(batches, block[0], block[1], recorder)
            else:
                for batch in batches:
                    recorder.run(lambda: model(**batch), batch.get("attention_mask"))
            return {name: gram.cpu() for name, gram in recorder.result()[0].items()}
    finally:
        model.train(was_training)
