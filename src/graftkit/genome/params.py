"""Canonical parameter ids and name maps between isomorphic models.

A parameter's id is its rank among the parameter nodes of the canonical graph, so it
says where the parameter enters the computation, not what it is called.
"""

from __future__ import annotations

from typing import Any

import torch

from graftkit.errors import ArchitectureError
from graftkit.genome.diff import diff
from graftkit.genome.graph import Genome


def _genome(model_or_genome: Any, example_inputs: Any = None) -> Genome:
    if isinstance(model_or_genome, Genome):
        return model_or_genome
    from graftkit.genome.decompose import trace

    return trace(model_or_genome, example_inputs)


def canonical_ids(model_or_genome: Any, example_inputs: Any = None) -> dict[str, str]:
    """Parameter name -> canonical id (``"P17"``); tied names share an id."""
    genome = _genome(model_or_genome, example_inputs)
    return {name: f"P{pid}" for name, pid in genome.id_of().items()}


def map_by_id(a: Genome, b: Genome, labels: tuple[str, str] = ("A", "B")) -> dict[str, str]:
    """A's parameter names -> B's, for genomes with equal signatures."""
    if a.signature != b.signature:
        raise ArchitectureError(
            f"{labels[0]} and {labels[1]} do not compute the same graph, so their parameters have no common ids:\n"
            + diff(a, b).describe(*labels),
            hint="compare them with `graft inspect A --against B`",
        )
    out = {}
    for pid, names in a.param_names.items():
        target = b.param_names.get(pid)
        if not target:
            continue
        for name in names:
            out[name] = target[0]
    return out


def param_map(a: Any, b: Any, example_inputs: Any = None) -> dict[str, str]:
    """Map ``a``'s parameter names to ``b``'s for isomorphic models (modules or genomes).

    Raises ``ArchitectureError`` with the first diverging node when they differ.
    """
    return map_by_id(_genome(a, example_inputs), _genome(b, example_inputs))


def rename_state_dict(state: dict[str, torch.Tensor], mapping: dict[str, str]) -> dict[str, torch.Tensor]:
    """``state`` with its keys renamed through ``mapping`` (keys not in it are kept)."""
    return {mapping.get(k, k): v for k, v in state.items()}
