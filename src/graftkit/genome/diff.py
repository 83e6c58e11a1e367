"""Where two genomes part ways: the first canonical node that differs, with the module
path (and parameter names) on each side and what differs, in words."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from graftkit.genome.graph import Genome, GNode, dim_expr, format_args, short_op


@dataclass
class GenomeDiff:
    """``index`` is None when the genomes are equal."""

    index: int | None
    left: GNode | None = None
    right: GNode | None = None
    left_where: str = ""
    right_where: str = ""
    differences: list[str] = field(default_factory=list)
    left_count: int = 0
    right_count: int = 0

    @property
    def equal(self) -> bool:
        return self.index is None

    def describe(self, left_label: str = "A", right_label: str = "B") -> str:
        if self.equal:
            return f"{left_label} and {right_label} compute the same graph ({self.left_count} nodes)"
        lines = [f"first difference at canonical node {self.index} "
                 f"({left_label}: {self.left_count} nodes, {right_label}: {self.right_count} nodes)"]
        for label, node, where in ((left_label, self.left, self.left_where), (right_label, self.right, self.right_where)):
            text = node.describe() if node is not None else "<graph ended>"
            lines.append(f"  {label}: {text}" + (f"   at {where}" if where else ""))
        lines += [f"  differs: {d}" for d in self.differences]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "equal": self.equal,
            "index": self.index,
            "left": self.left.describe() if self.left else None,
            "right": self.right.describe() if self.right else None,
            "left_module": self.left_where,
            "right_module": self.right_where,
            "differences": self.differences,
        }


def where(genome: Genome, node: GNode) -> str:
    """The module path of a node, or the parameter's names for a parameter."""
    if node.kind == "param":
        return ", ".join(genome.param_names.get(node.index, []))
    if node.kind == "buffer":
        return ", ".join(genome.buffer_names.get(node.index, []))
    if node.module:
        return f"{node.module} ({node.module_class})"
    return "<root>" if node.kind == "op" else ""


def _shape(node: GNode) -> str:
    return "(" + ", ".join(dim_expr(d) for d in node.shape) + ")"


def _node_differences(a: GNode, b: GNode) -> list[str]:
    out = []
    if a.kind != b.kind:
        out.append(f"kind: {a.kind} vs {b.kind}")
    if a.op != b.op:
        out.append(f"op: {short_op(a.op)} vs {short_op(b.op)}")
    if a.shape != b.shape:
        out.append(f"shape: {_shape(a)} vs {_shape(b)}")
    if a.dtype != b.dtype:
        out.append(f"dtype: {a.dtype} vs {b.dtype}")
    if a.args != b.args and a.op == b.op:
        if len(a.args) != len(b.args):
            out.append(f"arguments: ({format_args(a.args)}) vs ({format_args(b.args)})")
        for i, (x, y) in enumerate(zip(a.args, b.args)):
            if x == y:
                continue
            if x[0] == "r" and y[0] == "r":
                out.append(f"wiring: argument {i} is node %{x[1]} vs %{y[1]}")
            else:
                out.append(f"argument {i}: {format_args((x,))} vs {format_args((y,))}")
    if a.kind == "const" and a.value != b.value:
        out.append("constant values differ")
    if a.kind == "input" and a.index != b.index:
        out.append(f"input position: {a.index} vs {b.index}")
    return out


def diff(a: Genome, b: Genome) -> GenomeDiff:
    """The first canonical node where ``a`` and ``b`` differ (None when equal)."""
    for i, (x, y) in enumerate(zip(a.nodes, b.nodes)):
        found = _node_differences(x, y)
        if found:
            return GenomeDiff(i, x, y, where(a, x), where(b, y), found, len(a.nodes), len(b.nodes))
    n = min(len(a.nodes), len(b.nodes))
    if len(a.nodes) != len(b.nodes):
        x = a.nodes[n] if n < len(a.nodes) else None
        y = b.nodes[n] if n < len(b.nodes) else None
        return GenomeDiff(n, x, y, where(a, x) if x else "", where(b, y) if y else "",
                          [f"length: {len(a.nodes)} vs {len(b.nodes)} nodes"], len(a.nodes), len(b.nodes))
    if a.outputs != b.outputs or a.dynamic != b.dynamic:
        return GenomeDiff(n, None, None, "", "", [f"outputs: {a.outputs} vs {b.outputs}"], len(a.nodes), len(b.nodes))
    return GenomeDiff(None, left_count=len(a.nodes), right_count=len(b.nodes))
