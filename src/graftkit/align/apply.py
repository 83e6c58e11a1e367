"""Apply a permutation to a model's tensors (the result computes exactly what the input did)."""

from __future__ import annotations

import torch

from graftkit.align.spec import Permutation, PermutationSpec, axis_index


def permute_tensor(
    spec: PermutationSpec, perm: Permutation, name: str, tensor: torch.Tensor, except_axis: int | None = None
) -> torch.Tensor:
    """``tensor`` (named ``name`` in the spec) with every axis reordered, but ``except_axis``."""
    out = tensor
    for axis, ref in enumerate(spec.axes[name]):
        if ref is None or axis == except_axis:
            continue
        index = axis_index(spec.groups[ref.group], perm[ref.group], ref).to(out.device)
        out = torch.index_select(out, axis, index)
    return out


def apply_permutation(
    spec: PermutationSpec, perm: Permutation, params: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """A new state dict: every tensor of ``params`` reordered by ``perm``."""
    spec.validate(params)
    return {name: permute_tensor(spec, perm, name, t) for name, t in params.items()}


def permute_model(model: torch.nn.Module, spec: PermutationSpec, perm: Permutation) -> torch.nn.Module:
    """A deep copy of ``model`` with its weights reordered by ``perm`` (buffers included)."""
    import copy

    out = copy.deepcopy(model)
    state = state_tensors(model)
    out.load_state_dict(apply_permutation(spec, perm, state), strict=False)
    return out


def state_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The floating-point tensors of a model's state dict, shared storage deduplicated by name.

    Integer buffers (BatchNorm's step counter, position id tables) carry no unit axes and
    are left out; tied weights appear once per name, as in the state dict.
    """
    return {
        k: v.detach()
        for k, v in model.state_dict().items()
        if torch.is_floating_point(v)
    }
