"""From a raw ATen trace to a canonical node list: the same list for every model that
computes the same thing, whatever its names, module nesting or statement order.

Steps, each a normalization that cannot change what the model computes:
1. arguments filled to the op's full schema (defaults explicit), devices dropped,
   negative ``dim`` arguments made positive;
2. no-op nodes removed: alias, detach, clone, same-dtype casts, reshapes to the same
   shape, identity permutes and expands, full slices, ``x * 1``, ``x + 0``; chains of
   reshapes collapsed into one ``reshape`` described by its output shape;
3. constant subgraphs (no parameter, buffer or input upstream: position ids, causal
   masks) evaluated on the CPU and replaced by one ``const`` node keyed by its values,
   so two ways of building the same mask are the same node;
4. dead nodes dropped and the rest ordered by a post-order depth-first walk from the
   outputs that visits arguments in schema order, with the operands of commutative ops
   sorted by a hash of their upstream structure.
"""

from __future__ import annotations

import hashlib
import math
import operator
import struct
from dataclasses import dataclass
from typing import Any

import torch

from graftkit.genome.tracing import ModuleStack, RawTrace

# Arguments are tagged tuples: ("r", ref) ("i", int) ("f", float) ("b", bool) ("n",)
# ("s", str) ("d", dtype) ("l", (items...)) ("y", v1, v2) for an int that is symbolic.
Arg = tuple

_IDENTITY_OPS = {
    "aten.alias.default", "aten.detach.default", "aten.clone.default", "aten.lift_fresh_copy.default",
    "aten.contiguous.default",
}
_RESHAPE_OPS = {
    "aten.view.default", "aten._unsafe_view.default", "aten.reshape.default", "aten.unsqueeze.default",
    "aten.squeeze.dim", "aten.squeeze.dims", "aten.squeeze.default", "aten.flatten.using_ints",
}
_COMMUTATIVE = {
    "aten.add.Tensor", "aten.mul.Tensor", "aten.maximum.default", "aten.minimum.default",
    "aten.eq.Tensor", "aten.ne.Tensor", "aten.logical_and.default", "aten.logical_or.default",
    "aten.bitwise_and.Tensor", "aten.bitwise_or.Tensor",
}
_NOT_FOLDABLE = (
    "rand", "bernoulli", "dropout", "uniform", "normal", "empty", "exponential", "multinomial",
)
_MAX_FOLD_ELEMENTS = 1 << 22


@dataclass
class CNode:
    """One node of a canonical graph at one trace size (see ``graph.GNode`` for the final form)."""

    kind: str  # input | param | buffer | const | op
    op: str
    args: tuple
    shape: tuple
    dtype: str
    role: Any  # input position, param/buffer name; None for ops
    value: str  # const: digest of the values
    module: ModuleStack


def dtype_name(dtype: Any) -> str:
    return str(dtype).replace("torch.", "")


def _meta(node: torch.fx.Node) -> tuple[tuple, str]:
    val = node.meta.get("val")
    if isinstance(val, torch.Tensor):
        return tuple(int(s) for s in val.shape), dtype_name(val.dtype)
    if isinstance(val, (tuple, list)):
        return (), "tuple"
    if isinstance(val, (int, float, bool)):
        return (), type(val).__name__
    return (), "none"


def _op_name(target: Any) -> str:
    if target is operator.getitem:
        return "getitem"
    return str(target) if hasattr(target, "_schema") else getattr(target, "__name__", str(target))


class _Builder:
    def __init__(self, raw: RawTrace) -> None:
        self.raw = raw
        self.nodes: dict[torch.fx.Node, CNode] = {}
        self.replace: dict[torch.fx.Node, torch.fx.Node] = {}
        self.reshape_src: dict[torch.fx.Node, torch.fx.Node] = {}
        self.const: set[torch.fx.Node] = set()
        self.values: dict[torch.fx.Node, Any] = {}

    # -- arguments -------------------------------------------------------------------
    def resolve(self, node: torch.fx.Node) -> torch.fx.Node:
        while node in self.replace:
            node = self.replace[node]
        return node

    def arg(self, value: Any, dim_rank: int | None = None) -> Arg:
        if isinstance(value, torch.fx.Node):
            return ("r", self.resolve(value))
        if isinstance(value, bool):
            return ("b", value)
        if isinstance(value, int):
            if dim_rank is not None and value < 0 and dim_rank > 0:
                value += dim_rank
            return ("i", int(value))
        if isinstance(value, float):
            return ("f", float(value))
        if value is None:
            return ("n",)
        if isinstance(value, torch.dtype):
            return ("d", dtype_name(value))
        if isinstance(value, (list, tuple)):
            return ("l", tuple(self.arg(v, dim_rank) for v in value))
        if isinstance(value, torch.device):
            return ("n",)
        return ("s", str(value))

    def schema_args(self, node: torch.fx.Node) -> list[tuple[str, Any]]:
        """(name, value) for every schema argument, defaults filled in."""
        target = node.target
        if not hasattr(target, "_schema"):
            return [(f"a{i}", a) for i, a in enumerate(node.args)]
        out = []
        for i, spec in enumerate(target._schema.arguments):
            if i < len(node.args) and not spec.kwarg_only:
                value = node.args[i]
            elif spec.name in node.kwargs:
                value = node.kwargs[spec.name]
            elif spec.has_default_value():
                value = spec.default_value
            else:
                value = None
            out.append((spec.name, value))
        return out

    # -- per node --------------------------------------------------------------------
    def add(self, node: torch.fx.Node) -> None:
        shape, dtype = _meta(node)
        module = self.raw.modules.get(node, ())
        if node.op == "placeholder":
            kind, role = self.raw.roles[node]
            self.nodes[node] = CNode(kind, "", (), shape, dtype, role, "", module)
            return
        op = _op_name(node.target)
        named = self.schema_args(node)
        first = next((v for _, v in named if isinstance(v, torch.fx.Node)), None)
        if first is None:
            lists = [v for _, v in named if isinstance(v, (list, tuple))]
            first = next((x for l in lists for x in l if isinstance(x, torch.fx.Node)), None)
        in_shape, in_dtype = _meta(self.resolve(first)) if first is not None else ((), "none")
        rank = len(in_shape)
        if self._is_noop(op, named, shape, dtype, in_shape, in_dtype, first):
            self.replace[node] = self.resolve(first)
            return
        if op in _RESHAPE_OPS:
            src = self.resolve(first)
            src = self.reshape_src.get(src, src)
            if _meta(src)[0] == shape:
                self.replace[node] = src
                return
            self.reshape_src[node] = src
            args: tuple = (("r", src),)
            op = "reshape"
        elif op == "aten.expand.default":
            args = (self.arg(first),)
        elif op == "aten.slice.Tensor":
            args = self._slice_args(named, in_shape)
        else:
            args = tuple(
                self.arg(v, rank if name in ("dim", "dims") else None)
                for name, v in named
                if name not in ("device", "pin_memory")
            )
        if op in _COMMUTATIVE and len(args) >= 2 and args[0][0] == "r" and args[1][0] == "r":
            if op != "aten.add.Tensor" or len(args) < 3 or args[2] in (("i", 1), ("f", 1.0)):
                args = ("commutative",) + args
        self.nodes[node] = CNode("op", op, args, shape, dtype, None, "", module)
        if self._foldable(node, op, args):
            self.const.add(node)

    def _is_noop(self, op, named, shape, dtype, in_shape, in_dtype, first) -> bool:
        if first is None or not isinstance(first, torch.fx.Node):
            return False
        same = shape == in_shape and dtype == in_dtype
        if op in _IDENTITY_OPS:
            return same
        if op == "aten._to_copy.default":
            return same
        if op in ("aten.expand.default", "aten.permute.default"):
            if op == "aten.permute.default":
                dims = dict(named).get("dims")
                return same and list(dims) == list(range(len(dims)))
            return same
        if op in ("aten.dropout.default", "aten.native_dropout.default"):
            return dict(named).get("train") is False
        values = dict(named)
        if op in ("aten.mul.Scalar", "aten.div.Scalar", "aten.mul.Tensor", "aten.div.Tensor"):
            other = values.get("other")
            return same and not isinstance(other, torch.fx.Node) and other == 1
        if op in ("aten.add.Scalar", "aten.sub.Scalar", "aten.add.Tensor", "aten.sub.Tensor"):
            other = values.get("other")
            return same and not isinstance(other, torch.fx.Node) and other == 0
        if op == "aten.slice.Tensor":
            dim = values.get("dim") or 0
            start, end, step = values.get("start"), values.get("end"), values.get("step") or 1
            size = in_shape[dim] if in_shape else 0
            return same and (start in (None, 0)) and (end is None or end >= size) and step == 1
        return False

    def _slice_args(self, named, in_shape) -> tuple:
        values = dict(named)
        rank = len(in_shape)
        dim = values.get("dim") or 0
        dim = dim + rank if dim < 0 else dim
        size = in_shape[dim]
        start = values.get("start") or 0
        end = size if values.get("end") is None else values.get("end")
        start = max(0, start + size if start < 0 else min(start, size))
        end = max(0, end + size if end < 0 else min(end, size))
        return (self.arg(values["self"]), ("i", dim), ("i", start), ("i", end), ("i", values.get("step") or 1))

    def _foldable(self, node, op, args) -> bool:
        refs = _refs(args)
        if any(r not in self.const for r in refs):
            return False
        if any(word in op for word in _NOT_FOLDABLE):
            return False
        val = node.meta.get("val")
        if isinstance(val, torch.Tensor) and val.numel() > _MAX_FOLD_ELEMENTS:
            return False
        return True

    # -- constants -------------------------------------------------------------------
    def evaluate(self, node: torch.fx.Node) -> Any:
        """The real value of a constant node, computed on the CPU from its original args."""
        stack = [node]
        while stack:
            current = stack[-1]
            if current in self.values:
                stack.pop()
                continue
            pending = [a for a in _fx_inputs(current) if a not in self.values]
            if pending:
                stack.extend(pending)
                continue
            stack.pop()
            args = torch.fx.node.map_arg(current.args, lambda n: self.values[n])
            kwargs = torch.fx.node.map_arg(current.kwargs, lambda n: self.values[n])
            kwargs = {k: (torch.device("cpu") if isinstance(v, torch.device) else v) for k, v in kwargs.items()}
            self.values[current] = current.target(*args, **kwargs)
        return self.values[node]


def _fx_inputs(node: torch.fx.Node) -> list[torch.fx.Node]:
    return list(node.all_input_nodes)


def _refs(args: Any) -> list:
    out = []
    for a in args:
        if isinstance(a, tuple) and a:
            if a[0] == "r":
                out.append(a[1])
            elif a[0] == "l":
                out.extend(_refs(a[1]))
    return out


def value_digest(value: Any) -> str:
    if not isinstance(value, torch.Tensor):
        return hashlib.sha256(repr(value).encode()).hexdigest()[:32]
    t = value.detach().to("cpu").contiguous()
    h = hashlib.sha256()
    h.update(f"{dtype_name(t.dtype)}{tuple(t.shape)}".encode())
    if t.dtype == torch.bool:
        t = t.to(torch.uint8)
    h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:32]


def _hash_args(args: Any, up: dict) -> Any:
    out = []
    for a in args:
        if not isinstance(a, tuple):
            out.append(a)
        elif a and a[0] == "r":
            out.append(up[a[1]])
        elif a and a[0] == "l":
            out.append(("l", _hash_args(a[1], up)))
        else:
            out.append(a)
    return tuple(out)


def _digest(obj: Any) -> bytes:
    return hashlib.blake2b(repr(obj).encode(), digest_size=16).digest()


def canonicalize(raw: RawTrace) -> tuple[list[CNode], list[int]]:
    """The canonical node list of one trace and the positions of its outputs."""
    b = _Builder(raw)
    for node in raw.graph.nodes:
        if node.op in ("placeholder", "call_function"):
            b.add(node)

    outputs = [b.resolve(o) for o in raw.outputs]
    # constants consumed by real ops (or returned) become const nodes with their values
    frontier: set[torch.fx.Node] = set()
    for node, c in b.nodes.items():
        if node in b.const:
            continue
        frontier.update(r for r in _refs(c.args) if r in b.const)
    frontier.update(o for o in outputs if o in b.const)
    for node in frontier:
        c = b.nodes[node]
        try:
            digest = value_digest(b.evaluate(node))
        except Exception:  # an op that cannot run on the CPU: keep it symbolic by structure
            digest = "unevaluated:" + c.op
        b.nodes[node] = CNode("const", "", (), c.shape, c.dtype, None, digest, c.module)

    # upstream structural hashes, in graph (topological) order
    # Keys must not depend on the trace size (both traces must order alike): shapes enter
    # as ranks (parameters, which are never symbolic, with their shapes), const values
    # and slice bounds are left out. Deeper operands (longer path from the inputs) first.
    up: dict[torch.fx.Node, tuple[int, bytes]] = {}
    for node, c in b.nodes.items():
        if node in b.const and node not in frontier:
            continue
        role = c.role if c.kind == "input" else None
        shape = c.shape if c.kind == "param" else len(c.shape)
        args = c.args[:2] if c.op == "aten.slice.Tensor" else c.args
        refs = _refs(c.args) if c.kind == "op" else []
        depth = 1 + max((-up[r][0] for r in refs), default=0) if refs else 0
        up[node] = (-depth, _digest((c.kind, c.op, _hash_args(args, up), shape, c.dtype, role)))

    def ordered_refs(c: CNode) -> list:
        args = c.args
        if args and args[0] == "commutative":
            first, second = args[1], args[2]
            if up[second[1]] < up[first[1]]:
                args = (second, first) + args[3:]
            else:
                args = args[1:]
            c.args = args
        return _refs(args)

    order: list[torch.fx.Node] = []
    seen: set[torch.fx.Node] = set()
    for out in outputs:
        stack: list[tuple[torch.fx.Node, int]] = [(out, 0)]
        while stack:
            node, i = stack.pop()
            if node in seen:
                continue
            c = b.nodes[node]
            refs = [] if c.kind == "const" else ordered_refs(c) if i == 0 else _refs(c.args)
            if i < len(refs):
                stack.append((node, i + 1))
                if refs[i] not in seen:
                    stack.append((refs[i], 0))
                continue
            seen.add(node)
            order.append(node)

    position = {n: i for i, n in enumerate(order)}

    def remap(args: Any) -> tuple:
        out = []
        for a in args:
            if a and a[0] == "r":
                out.append(("r", position[a[1]]))
            elif a and a[0] == "l":
                out.append(("l", remap(a[1])))
            else:
                out.append(a)
        return tuple(out)

    nodes = []
    for n in order:
        c = b.nodes[n]
        args = c.args[1:] if c.args and c.args[0] == "commutative" else c.args
        nodes.append(CNode(c.kind, c.op, remap(args), c.shape, c.dtype, c.role, c.value, c.module))
    return nodes, [position[o] for o in outputs]


def float_bits(value: float) -> int:
    """Floats compared by their exact bits (so 1e-5 and 1e-6 differ, -0.0 equals 0.0)."""
    if value == 0.0 or math.isnan(value):
        value = abs(value) if value == 0.0 else value
    return struct.unpack("<q", struct.pack("<d", value))[0]
