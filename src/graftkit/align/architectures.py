"""Pick the permutation spec of a model: bert or llama family by config, else a chain (MLP/CNN)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from torch import nn

from graftkit.align.apply import state_tensors
from graftkit.align.bert import bert_spec
from graftkit.align.chain import chain_spec
from graftkit.align.llama import llama_spec
from graftkit.align.spec import PermutationSpec
from graftkit.errors import AlignmentError

BERT_FAMILY = ("bert", "roberta", "xlm-roberta", "camembert", "electra")
LLAMA_FAMILY = ("llama", "mistral", "qwen2")


def spec_from_config(names: Iterable[str], config: dict[str, Any], residual: bool = True) -> PermutationSpec:
    """The spec of an HF state dict (``names``) from its ``config.json`` contents."""
    model_type = config.get("model_type", "")
    if model_type in BERT_FAMILY:
        return bert_spec(names, config, residual=residual)
    if model_type in LLAMA_FAMILY:
        return llama_spec(names, config, residual=residual)
    raise AlignmentError(
        f"no permutation spec for model_type {model_type!r}",
        hint=f"supported: {', '.join(BERT_FAMILY + LLAMA_FAMILY)}, and plain MLP/CNN chains",
    )


def spec_for(model: nn.Module, residual: bool = True) -> PermutationSpec:
    """The spec of an HF model (bert or llama family) or a plain MLP/CNN chain.

    ``residual=False`` leaves a transformer's residual stream in place, so that its hidden
    states keep their basis (heads and MLP units are still permuted).
    """
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "to_dict"):
        return spec_from_config(state_tensors(model), config.to_dict(), residual=residual)
    return chain_spec(model)


_LAYER = re.compile(r"(?P<pre>(?:^|\.)(?:encoder\.layer|layers|h|blocks)\.)(?P<i>\d+)\.")


def select_layers(params: dict[str, Any], layers: list[int]) -> dict[str, Any]:
    """B's tensors with only ``layers`` kept, renumbered 0..k-1: a layer mapping for deeper models.

    ``select_layers(params_b, [0, 2, 4])`` lets a 6-layer B be matched against a 3-layer
    A (A's layer i stands for B's layer ``layers[i]``); set the config's layer count to
    ``len(layers)`` when building the spec. Tensors outside the layer stack are kept.
    """
    out: dict[str, Any] = {}
    found: set[int] = set()
    for name, tensor in params.items():
        m = _LAYER.search(name)
        if m is None:
            out[name] = tensor
            continue
        i = int(m["i"])
        found.add(i)
        if i in layers:
            out[name[: m.start("i")] + str(layers.index(i)) + name[m.end("i"):]] = tensor
    missing = [i for i in layers if i not in found]
    if missing:
        raise AlignmentError(f"layer(s) {missing} do not exist (the model has layers {sorted(found)[:1]}..{max(found, default=-1)})",
                             hint="choose existing layer indices")
    return out
