"""The genome of a model: its canonical op graph with symbolic batch and sequence dims,
the canonical parameter ids, and the names each id has in this particular model.

A dim that differs between the two canonical trace sizes is symbolic and kept as the
pair of its values (batch 2 -> 3, sequence 5 -> 7); ``dim_expr`` prints it as ``B*S``.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from graftkit.genome.hf import TRACE_SIZES

FORMAT_VERSION = 1


@dataclass
class GNode:
    """One canonical node. ``index``: input position, parameter id or buffer id (-1 for others)."""

    kind: str
    op: str
    args: tuple
    shape: tuple  # int (static) or (v1, v2) (symbolic)
    dtype: str
    index: int = -1
    value: str = ""
    module: str = ""  # reporting only: the innermost module path when it was traced
    module_class: str = ""
    stack: tuple = ()  # reporting only: ((path, class), ...) outermost first

    def describe(self) -> str:
        shape = "(" + ", ".join(dim_expr(d) for d in self.shape) + ")"
        if self.kind == "op":
            return f"{short_op(self.op)}({format_args(self.args)}) -> {shape} {self.dtype}"
        if self.kind == "const":
            return f"const {shape} {self.dtype} values#{self.value[:8]}"
        label = {"param": "P", "buffer": "buffer ", "input": "input "}[self.kind]
        return f"{label}{self.index} {shape} {self.dtype}" if self.kind != "param" else f"param P{self.index} {shape} {self.dtype}"


@dataclass
class Genome:
    """A canonical op graph plus the names of this model's parameters by canonical id."""

    nodes: list[GNode]
    outputs: list[int]
    param_names: dict[int, list[str]] = field(default_factory=dict)
    buffer_names: dict[int, list[str]] = field(default_factory=dict)
    model_class: str = ""
    dynamic: bool = True  # False when the graph changed with the input size (dims then static)
    strength: str = "graph"  # "graph", or "structural" for the weaker fallback
    unused: list[str] = field(default_factory=list)  # parameters the forward pass never reads

    # -- identity ----------------------------------------------------------------------
    def encoding(self) -> bytes:
        from graftkit.genome.encoding import encode

        return encode(self)

    @property
    def signature(self) -> str:
        """Base64url of the SHA-256 of the canonical encoding, prefixed with the format."""
        if not hasattr(self, "_signature"):
            digest = hashlib.sha256(self.encoding()).digest()
            self._signature = f"gk{FORMAT_VERSION}-" + base64.urlsafe_b64encode(digest).decode().rstrip("=")
        return self._signature

    # -- parameters --------------------------------------------------------------------
    def param_nodes(self) -> list[GNode]:
        return [n for n in self.nodes if n.kind == "param"]

    def id_of(self) -> dict[str, int]:
        """Parameter name -> canonical id (tied names share an id)."""
        return {name: pid for pid, names in self.param_names.items() for name in names}

    def param_table(self) -> list[dict[str, Any]]:
        rows = []
        for n in self.param_nodes():
            for name in self.param_names.get(n.index, []):
                rows.append({"name": name, "id": f"P{n.index}", "shape": list(n.shape), "dtype": n.dtype})
        return rows

    # -- serialization -----------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "format": f"graftkit-genome/{FORMAT_VERSION}",
            "signature": self.signature,
            "model_class": self.model_class,
            "dynamic": self.dynamic,
            "strength": self.strength,
            "trace_sizes": [list(s) for s in TRACE_SIZES],
            "outputs": self.outputs,
            "param_names": {str(k): v for k, v in self.param_names.items()},
            "buffer_names": {str(k): v for k, v in self.buffer_names.items()},
            "unused": self.unused,
            "stacks": (stacks := _stack_table(self.nodes)),
            "nodes": [
                [n.kind, n.op, _jsonable(n.args), [list(d) if isinstance(d, tuple) else d for d in n.shape],
                 n.dtype, n.index, n.value, stacks_index[n.stack]]
                for stacks_index in [{tuple(tuple(x) for x in st): i for i, st in enumerate(stacks)}]
                for n in self.nodes
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Genome:
        nodes = []
        stacks = [tuple(tuple(x) for x in st) for st in data.get("stacks", [])]
        for kind, op, args, shape, dtype, index, value, stack in data["nodes"]:
            stack_t = stacks[stack] if isinstance(stack, int) else tuple(tuple(s) for s in stack)
            nodes.append(GNode(kind, op, _tupled(args), tuple(tuple(d) if isinstance(d, list) else d for d in shape),
                               dtype, index, value, stack_t[-1][0] if stack_t else "",
                               stack_t[-1][1] if stack_t else "", stack_t))
        genome = cls(
            nodes=nodes,
            outputs=list(data["outputs"]),
            param_names={int(k): v for k, v in data["param_names"].items()},
            buffer_names={int(k): v for k, v in data["buffer_names"].items()},
            model_class=data.get("model_class", ""),
            dynamic=data.get("dynamic", True),
            strength=data.get("strength", "graph"),
            unused=list(data.get("unused", [])),
        )
        return genome

    def dumps(self) -> str:
        return json.dumps(self.to_json(), separators=(",", ":"))


def _stack_table(nodes: list[GNode]) -> list[list[list[str]]]:
    """Each distinct module stack once (nodes refer to it by position): keeps the JSON small."""
    seen: dict[tuple, int] = {}
    for n in nodes:
        seen.setdefault(n.stack, len(seen))
    return [[list(x) for x in st] for st in seen]


def _jsonable(args: Any) -> Any:
    return [_jsonable(a) if isinstance(a, tuple) else a for a in args]


def _tupled(args: Any) -> Any:
    return tuple(_tupled(a) if isinstance(a, list) else a for a in args)


def short_op(op: str) -> str:
    parts = op.split(".")
    if parts[0] == "aten" and len(parts) >= 2:
        return parts[1] if len(parts) == 2 or parts[2] == "default" else f"{parts[1]}.{parts[2]}"
    return op


def format_args(args: Any) -> str:
    out = []
    for a in args:
        tag = a[0]
        if tag == "r":
            out.append(f"%{a[1]}")
        elif tag in ("i", "f", "b", "s", "d"):
            out.append(str(a[1]))
        elif tag == "n":
            out.append("None")
        elif tag == "y":
            out.append(dim_expr((a[1], a[2])))
        elif tag == "l":
            out.append("[" + format_args(a[1]) + "]")
    return ", ".join(out)


def dim_expr(dim: Any) -> str:
    """A symbolic dim as an expression in B (batch) and S (sequence) when one fits."""
    if not isinstance(dim, tuple):
        return str(dim)
    (b1, s1), (b2, s2) = TRACE_SIZES
    v1, v2 = dim
    ratio = Fraction(v2, v1) if v1 else None
    for i in range(4):
        for j in range(4):
            if (i or j) and ratio == Fraction(b2, b1) ** i * Fraction(s2, s1) ** j:
                c = Fraction(v1, b1**i * s1**j)
                if c.denominator == 1:
                    terms = (["B"] * i) + (["S"] * j)
                    prefix = [str(c.numerator)] if c != 1 else []
                    return "*".join(prefix + terms)
    for name, (x1, x2) in (("S", (s1, s2)), ("B", (b1, b2))):
        slope = Fraction(v2 - v1, x2 - x1)
        if slope.denominator == 1 and slope != 0:
            c = v1 - slope * x1
            coef = "" if slope == 1 else f"{slope}*"
            return f"{coef}{name}{'+' if c > 0 else '-'}{abs(c)}" if c else f"{coef}{name}"
    return f"{v1}|{v2}"
