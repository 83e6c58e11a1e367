"""Neuron alignment: permutation specs, weight/activation matching, REPAIR, OT fusion, CCA, zip-merging."""

from graftkit.align.apply import apply_permutation, permute_model, permute_tensor, state_tensors
from graftkit.align.architectures import spec_for, spec_from_config
from graftkit.align.spec import (
    AxisRef,
    Group,
    HeadGroup,
    HeadPermutation,
    Permutation,
    PermutationSpec,
    identity,
    random_permutation,
    recovered_fraction,
)
from graftkit.align.weight_matching import MatchResult, weight_matching

__all__ = [
    "AxisRef",
    "Group",
    "HeadGroup",
    "HeadPermutation",
    "MatchResult",
    "Permutation",
    "PermutationSpec",
    "apply_permutation",
    "identity",
    "permute_model",
    "permute_tensor",
    "random_permutation",
    "recovered_fraction",
    "spec_for",
    "spec_from_config",
    "state_tensors",
    "weight_matching",
]
