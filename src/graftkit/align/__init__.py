"""Neuron alignment: permutation specs, weight/activation matching, REPAIR, OT fusion, CCA, zip-merging.

Typical use::

    spec = spec_for(model_a)                                   # which axes share a permutation
    result = weight_matching(spec, state_tensors(model_a), state_tensors(model_b))
    b_aligned = permute_model(model_b, spec, result.perm)      # computes exactly what B computes
    merged = interpolate_model(model_a, b_aligned, 0.5)        # now averaging pairs like with like
"""

from graftkit.align.activation_matching import activation_matching
from graftkit.align.apply import apply_permutation, permute_model, permute_tensor, state_tensors
from graftkit.align.architectures import select_layers, spec_for, spec_from_config
from graftkit.align.cca import cca_align
from graftkit.align.interpolate import (
    Curve,
    evaluate_classifier,
    interpolate_model,
    interpolation_curve,
    lerp_params,
    loss_barrier,
    plot_curves,
)
from graftkit.align.ot import OTFusion, ot_fuse, transport_plan
from graftkit.align.repair import channel_stats, repair, reset_batchnorm
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
from graftkit.align.zip import ZippedModel, ZipResult, zip_merge

__all__ = [
    "AxisRef",
    "Curve",
    "Group",
    "HeadGroup",
    "HeadPermutation",
    "MatchResult",
    "OTFusion",
    "Permutation",
    "PermutationSpec",
    "ZipResult",
    "ZippedModel",
    "activation_matching",
    "apply_permutation",
    "cca_align",
    "channel_stats",
    "evaluate_classifier",
    "identity",
    "interpolate_model",
    "interpolation_curve",
    "lerp_params",
    "loss_barrier",
    "ot_fuse",
    "permute_model",
    "permute_tensor",
    "plot_curves",
    "random_permutation",
    "recovered_fraction",
    "repair",
    "reset_batchnorm",
    "select_layers",
    "spec_for",
    "spec_from_config",
    "state_tensors",
    "transport_plan",
    "weight_matching",
    "zip_merge",
]
