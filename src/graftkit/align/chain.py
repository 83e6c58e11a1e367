"""Permutation specs for feed-forward chains: MLPs and CNNs with BatchNorm.

A chain is a model whose parametrized leaf modules run in registration order, each
feeding the next (``nn.Sequential`` of Linear / Conv2d / BatchNorm / LayerNorm with
activations, pooling, dropout and Flatten in between). Every Linear or Conv output except
the last one is a group of interchangeable units; BatchNorm and LayerNorm follow the
group of the layer before them. A Linear after ``Flatten`` of a conv map sees each
channel as ``in_features // channels`` consecutive inputs (role ``x{k}``).
"""

from __future__ import annotations

import torch
from torch import nn

from graftkit.align.spec import AxisRef, Group, PermutationSpec
from graftkit.errors import AlignmentError

_PASSTHROUGH = (
    nn.ReLU, nn.GELU, nn.Tanh, nn.Sigmoid, nn.SiLU, nn.LeakyReLU, nn.ELU, nn.Identity,
    nn.Dropout, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Softmax, nn.LogSoftmax,
)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm)


def chain_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The leaf modules of a chain, in order (containers skipped)."""
    return [(name, m) for name, m in model.named_modules() if not list(m.children())]


def chain_spec(model: nn.Module) -> PermutationSpec:
    """The permutation spec of an MLP or CNN chain (see the module docstring)."""
    layers = chain_layers(model)
    producers = [i for i, (_, m) in enumerate(layers) if isinstance(m, (nn.Linear, nn.Conv2d))]
    if len(producers) < 2:
        raise AlignmentError(
            "the model has fewer than two Linear/Conv2d layers: it has no hidden units to permute",
            hint="permutation alignment needs at least one hidden layer",
        )
    groups: dict[str, Group] = {}
    axes: dict[str, tuple[AxisRef | None, ...]] = {}
    sites: dict[str, list[str]] = {}
    repair_sites: dict[str, str] = {}
    current: str | None = None  # group of the feature axis flowing between layers
    flatten_pending = False
    last = producers[-1]
    for i, (path, m) in enumerate(layers):
        prefix = f"{path}." if path else ""
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            in_ref = None
            if current is not None:
                in_features = m.in_features if isinstance(m, nn.Linear) else m.in_channels
                size = groups[current].size
                if in_features % size:
                    raise AlignmentError(
                        f"layer {path} takes {in_features} inputs, not a multiple of the "
                        f"{size} units before it: the chain spec cannot follow this model",
                        hint="write a PermutationSpec by hand for this architecture",
                    )
                k = in_features // size
                in_ref = AxisRef(current, f"x{k}" if (flatten_pending and k > 1) else "")
            flatten_pending = False
            out_ref = None
            if i != last:
                name = f"P{len(groups)}"
                out = m.out_features if isinstance(m, nn.Linear) else m.out_channels
                groups[name] = Group(name, out)
                out_ref = AxisRef(name)
                sites[name] = [path]
                repair_sites[name] = path
            extra = (None, None) if isinstance(m, nn.Conv2d) else ()
            axes[f"{prefix}weight"] = (out_ref, in_ref, *extra)
            if m.bias is not None:
                axes[f"{prefix}bias"] = (out_ref,)
            current = out_ref.group if out_ref else None
        elif isinstance(m, _NORMS):
            ref = AxisRef(current) if current else None
            for pname, t in m.state_dict().items():
                if torch.is_floating_point(t):
                    axes[f"{prefix}{pname}"] = (ref,)
            if current:
                sites[current] = [path]
                repair_sites[current] = path
        elif isinstance(m, nn.Flatten):
            flatten_pending = True
        elif isinstance(m, _PASSTHROUGH):
            if current and not isinstance(m, (nn.Dropout, nn.Identity)):
                sites[current] = [path]  # what the next layer reads (after the activation)
        elif any(True for _ in m.parameters(recurse=False)):
            raise AlignmentError(
                f"module {path} ({type(m).__name__}) has weights the chain spec does not know",
                hint="chains may hold Linear, Conv2d, BatchNorm and LayerNorm layers; write a "
                "PermutationSpec by hand for other architectures",
            )
    return PermutationSpec(groups=dict(groups), axes=axes, sites=sites, family="chain",
                           repair_sites=repair_sites)
