"""``trace(model, example_inputs)``: a model's genome, from two fake-tensor traces.

The model is traced at two fixed input sizes (batch 2/3, sequence 5/7, see
``hf.TRACE_SIZES``); each trace is canonicalized alone, and the two canonical lists
must agree node for node. Dims and integer arguments that differ between them are
the symbolic ones (batch, sequence and what is derived from them).
"""

from __future__ import annotations

import hashlib
import inspect
from typing import Any

import torch

from graftkit.errors import ShapeMismatchError, TraceError
from graftkit.genome.canonical import CNode, canonicalize
from graftkit.genome.graph import Genome, GNode
from graftkit.genome.hf import TRACE_SIZES, check_hf_inputs, hf_call_kwargs, hf_example_inputs, is_hf_model
from graftkit.genome.tracing import raw_trace


def trace(
    model: torch.nn.Module,
    example_inputs: Any = None,
    *,
    batch_dims: dict[int, int] | None = None,
) -> Genome:
    """The canonical genome of ``model``.

    ``example_inputs``: a tensor, a tuple of positional inputs or a dict of keyword
    inputs; only their number, dtypes and non-symbolic dims matter (they are resized to
    the canonical trace sizes: dim 0 is the batch, dim 1 the sequence for integer
    tensors of rank 2 and float tensors of rank 3). ``None`` for a transformers model
    means token ids (or pixels, or encoder/decoder ids) built from its config.
    """
    sized = _inputs_at_sizes(model, example_inputs)
    lists = []
    for args, kwargs in sized:
        raw = raw_trace(model, args, kwargs)
        lists.append(canonicalize(raw))
    (n1, o1), (n2, o2) = lists
    merged = _merge(n1, n2) if o1 == o2 else None
    dynamic = merged is not None
    if merged is None:
        merged = [_static(c) for c in n1]
    return _genome(model, merged, [c.role for c in n1], o1, dynamic)


def _inputs_at_sizes(model: torch.nn.Module, example_inputs: Any) -> list[tuple[tuple, dict]]:
    device = torch.device("meta")
    hf = is_hf_model(model)
    if example_inputs is None:
        if not hf:
            raise TraceError(
                f"{type(model).__name__} is not a transformers model: example inputs are needed",
                hint="call trace(model, torch.zeros(batch, features)) with inputs of the right dtype",
            )
        sized = [((), hf_example_inputs(model, b, s)) for b, s in TRACE_SIZES]
    else:
        args, kwargs = _as_call(example_inputs)
        if hf:
            check_hf_inputs(model, kwargs)
        else:
            _check_first_layer(model, args, kwargs)
        sized = [(_resize(args, b, s, device), _resize(kwargs, b, s, device)) for b, s in TRACE_SIZES]
    if hf:
        accepted = inspect.signature(model.forward).parameters
        extra = {k: v for k, v in hf_call_kwargs(model).items() if k in accepted}
        sized = [(a, {**k, **extra}) for a, k in sized]
    return sized


def _as_call(example_inputs: Any) -> tuple[tuple, dict]:
    if isinstance(example_inputs, torch.Tensor):
        return (example_inputs,), {}
    if isinstance(example_inputs, dict):
        return (), dict(example_inputs)
    if isinstance(example_inputs, (tuple, list)):
        return tuple(example_inputs), {}
    raise TraceError(
        f"example inputs of type {type(example_inputs).__name__} are not supported",
        hint="pass a tensor, a tuple of tensors or a dict of keyword tensors",
    )


def _resize(obj: Any, batch: int, seq: int, device: torch.device) -> Any:
    if isinstance(obj, torch.Tensor):
        shape = list(obj.shape)
        if shape:
            shape[0] = batch
        is_int = not (obj.dtype.is_floating_point or obj.dtype.is_complex)
        if len(shape) >= 2 and ((is_int and len(shape) == 2) or (not is_int and len(shape) == 3)):
            shape[1] = seq
        return torch.zeros(shape, dtype=obj.dtype, device=device)
    if isinstance(obj, dict):
        return {k: _resize(v, batch, seq, device) for k, v in obj.items()}
    if isinstance(obj, (tuple, list)):
        return type(obj)(_resize(v, batch, seq, device) for v in obj)
    return obj


def _check_first_layer(model: torch.nn.Module, args: tuple, kwargs: dict) -> None:
    """Catch the common wrong-shape input before tracing: the first layer's input size."""
    tensors = [a for a in list(args) + list(kwargs.values()) if isinstance(a, torch.Tensor)]
    if not tensors:
        return
    x = tensors[0]
    for path, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            if x.dtype.is_floating_point and x.dim() >= 1 and x.shape[-1] != module.in_features:
                raise ShapeMismatchError(
                    f"example input has shape {tuple(x.shape)} but the first layer {path!r} "
                    f"(Linear) expects {module.in_features} features in the last dim",
                    hint=f"pass torch.zeros(batch, {module.in_features})",
                )
            return
        if isinstance(module, torch.nn.Embedding):
            if x.dtype.is_floating_point:
                raise ShapeMismatchError(
                    f"example input is {x.dtype} but the first layer {path!r} (Embedding) takes integer ids",
                    hint="pass torch.zeros(batch, seq, dtype=torch.long)",
                )
            return
        if isinstance(module, torch.nn.modules.conv._ConvNd):
            if x.dim() >= 2 and x.shape[1] != module.in_channels:
                raise ShapeMismatchError(
                    f"example input has shape {tuple(x.shape)} but the first layer {path!r} "
                    f"({type(module).__name__}) expects {module.in_channels} channels in dim 1",
                    hint="pass inputs shaped (batch, channels, ...)",
                )
            return


def _merge_args(a: Any, b: Any) -> Any:
    """Merge the args of one node at the two sizes; None when they differ structurally."""
    if len(a) != len(b):
        return None
    out = []
    for x, y in zip(a, b):
        if x == y:
            out.append(x)
        elif x[0] == "i" and y[0] == "i":
            out.append(("y", x[1], y[1]))
        elif x[0] == "l" and y[0] == "l":
            inner = _merge_args(x[1], y[1])
            if inner is None:
                return None
            out.append(("l", inner))
        else:
            return None
    return tuple(out)


def _merge(n1: list[CNode], n2: list[CNode]) -> list[GNode] | None:
    if len(n1) != len(n2):
        return None
    out = []
    for a, b in zip(n1, n2):
        if (a.kind, a.op, a.dtype, a.role, len(a.shape)) != (b.kind, b.op, b.dtype, b.role, len(b.shape)):
            return None
        args = _merge_args(a.args, b.args)
        if args is None:
            return None
        shape = tuple(x if x == y else (x, y) for x, y in zip(a.shape, b.shape))
        value = ""
        if a.kind == "const":
            value = hashlib.sha256((a.value + b.value).encode()).hexdigest()[:32]
        out.append(_gnode(a, args, shape, value))
    return out


def _static(c: CNode) -> GNode:
    return _gnode(c, c.args, c.shape, c.value)


def _gnode(c: CNode, args: tuple, shape: tuple, value: str) -> GNode:
    stack = tuple(c.module)
    index = c.role if c.kind == "input" else -1
    return GNode(c.kind, c.op, args, shape, c.dtype, index, value,
                 stack[-1][0] if stack else "", stack[-1][1] if stack else "", stack)


def _genome(model: torch.nn.Module, nodes: list[GNode], roles: list[Any], outputs: list[int], dynamic: bool) -> Genome:
    """Number parameters and buffers in canonical order and attach this model's names."""
    aliases: dict[int, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        aliases.setdefault(id(p), []).append(name)
    params = dict(model.named_parameters())
    buffer_aliases: dict[int, list[str]] = {}
    for name, b in model.named_buffers(remove_duplicate=False):
        buffer_aliases.setdefault(id(b), []).append(name)
    buffers = dict(model.named_buffers())
    param_names: dict[int, list[str]] = {}
    buffer_names: dict[int, list[str]] = {}
    for node, role in zip(nodes, roles):
        if node.kind == "param":
            node.index = len(param_names)
            param_names[node.index] = aliases.get(id(params[role]), [role])
        elif node.kind == "buffer":
            node.index = len(buffer_names)
            buffer_names[node.index] = buffer_aliases.get(id(buffers[role]), [role])
    used = {n for names in param_names.values() for n in names}
    genome = Genome(nodes=nodes, outputs=outputs, param_names=param_names, buffer_names=buffer_names,
                    model_class=type(model).__name__, dynamic=dynamic)
    genome.unused = [n for n, _ in model.named_parameters(remove_duplicate=False) if n not in used]
    return genome
