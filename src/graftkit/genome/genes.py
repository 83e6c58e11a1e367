"""Genes: recurring blocks of a canonical graph, identified by the hash of their own
canonical encoding, so one block computation has one id in every model.

Two kinds of candidates are cut out of a genome:
- ``module``: the nodes a module's forward created (transformer layer, attention,
  MLP, norm...). Module paths only choose where to cut; the id comes from the nodes.
- ``residual``: ``x + f(x)``, an add whose one operand is upstream of the other, cut
  structurally (every node between the two, plus the add).
A block's encoding renumbers its nodes from 0: values from outside become ``input``
nodes, parameters become local parameter nodes in order of first use.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graftkit.genome.encoding import encode_nodes
from graftkit.genome.graph import Genome, GNode


@dataclass
class Occurrence:
    model: str
    kind: str  # module | residual
    module: str  # reporting: module path (residual: the branch's module)
    module_class: str
    nodes: list[int]  # canonical node positions in the model's genome
    params: list[int]  # canonical parameter ids in the block's own order
    param_names: list[list[str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "kind": self.kind, "module": self.module, "class": self.module_class,
                "params": [f"P{p}" for p in self.params], "param_names": self.param_names,
                "nodes": len(self.nodes)}


@dataclass
class Gene:
    id: str
    kind: str
    encoding: bytes
    node_count: int
    param_count: int
    occurrences: list[Occurrence] = field(default_factory=list)

    @property
    def label(self) -> str:
        names = Counter(o.module_class for o in self.occurrences)
        return names.most_common(1)[0][0] if names else self.kind

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "label": self.label, "nodes": self.node_count, "params": self.param_count,
                "encoding": base64.b64encode(self.encoding).decode(),
                "occurrences": [o.to_json() for o in self.occurrences]}


def block_encoding(genome: Genome, members: list[int]) -> tuple[bytes, list[int], int]:
    """Encoding of the block made of ``members`` (canonical positions, sorted), its
    parameter ids in local order, and its local node count."""
    member_set = set(members)
    local: list[GNode] = []
    where: dict[int, int] = {}
    params: list[int] = []
    n_inputs = 0

    def ref(r: int) -> int:
        nonlocal n_inputs
        if r in where:
            return where[r]
        src = genome.nodes[r]
        if src.kind in ("param", "buffer"):
            index = sum(1 for n in local if n.kind == src.kind)
            if src.kind == "param":
                params.append(src.index)
            local.append(GNode(src.kind, "", (), src.shape, src.dtype, index))
        else:
            local.append(GNode("input", "", (), src.shape, src.dtype, n_inputs))
            n_inputs += 1
        where[r] = len(local) - 1
        return where[r]

    def remap(args: Any) -> tuple:
        out = []
        for a in args:
            if a[0] == "r":
                out.append(("r", ref(a[1])))
            elif a[0] == "l":
                out.append(("l", remap(a[1])))
            else:
                out.append(a)
        return tuple(out)

    for i in members:
        node = genome.nodes[i]
        args = remap(node.args)
        local.append(GNode(node.kind, node.op, args, node.shape, node.dtype, -1, node.value))
        where[i] = len(local) - 1
    used_outside = set(genome.outputs) & member_set
    for j, node in enumerate(genome.nodes):
        if j in member_set:
            continue
        for r in _refs(node.args):
            if r in member_set:
                used_outside.add(r)
    outputs = [where[i] for i in sorted(used_outside)]
    return encode_nodes(local, outputs, genome.dynamic), params, len(local)


def _refs(args: Any) -> list[int]:
    out = []
    for a in args:
        if a[0] == "r":
            out.append(a[1])
        elif a[0] == "l":
            out.extend(_refs(a[1]))
    return out


def gene_id(encoding: bytes) -> str:
    return "g" + base64.b32encode(hashlib.sha256(encoding).digest()).decode().lower()[:16]


def _module_blocks(genome: Genome) -> dict[str, tuple[str, list[int]]]:
    blocks: dict[str, tuple[str, list[int]]] = {}
    for i, node in enumerate(genome.nodes):
        if node.kind not in ("op", "const"):
            continue
        for path, cls in node.stack:
            if path:
                blocks.setdefault(path, (cls, []))[1].append(i)
    return {p: (c, m) for p, (c, m) in blocks.items() if any(genome.nodes[i].kind == "op" for i in m)}


def _residual_blocks(genome: Genome) -> list[list[int]]:
    users: dict[int, list[int]] = {}
    for j, node in enumerate(genome.nodes):
        for r in _refs(node.args):
            users.setdefault(r, []).append(j)
    blocks = []
    for k, node in enumerate(genome.nodes):
        if node.op != "aten.add.Tensor" or len(node.args) < 2:
            continue
        a, b = node.args[0], node.args[1]
        if a[0] != "r" or b[0] != "r":
            continue
        for x, y in ((a[1], b[1]), (b[1], a[1])):
            below = _descendants(users, x, k)
            if y in below:
                upstream = _ancestors(genome, y, x)
                span = sorted((upstream & below) | {y, k})
                if len(span) >= 3:
                    blocks.append(span)
                break
    return blocks


def _descendants(users: dict[int, list[int]], start: int, limit: int) -> set[int]:
    seen, stack = set(), [start]
    while stack:
        for u in users.get(stack.pop(), []):
            if u < limit and u not in seen:
                seen.add(u)
                stack.append(u)
    return seen


def _ancestors(genome: Genome, start: int, floor: int) -> set[int]:
    seen, stack = set(), [start]
    while stack:
        for r in _refs(genome.nodes[stack.pop()].args):
            if r > floor and r not in seen:
                seen.add(r)
                stack.append(r)
    return seen


def find_genes(genome: Genome, model: str = "model") -> list[tuple[str, Gene, Occurrence]]:
    """Every module block and residual block of ``genome`` with its gene id."""
    found = []
    for path, (cls, members) in _module_blocks(genome).items():
        found.append(_make(genome, model, "module", path, cls, members))
    for span in _residual_blocks(genome):
        ops = [genome.nodes[i] for i in span if genome.nodes[i].kind == "op"]
        paths = Counter(path for n in ops for path, _ in n.stack if path)
        # the deepest module that holds at least half of the branch: "layers.0.self_attn"
        held = [p for p, c in paths.items() if 2 * c >= len(ops)]
        branch = max(held, key=lambda p: (p.count("."), p)) if held else ""
        found.append(_make(genome, model, "residual", branch, "Residual", span))
    return found


def _make(genome: Genome, model: str, kind: str, path: str, cls: str, members: list[int]):
    encoding, params, count = block_encoding(genome, members)
    gid = gene_id(encoding)
    occurrence = Occurrence(model, kind, path, cls, members, params,
                            [genome.param_names.get(p, []) for p in params])
    return gid, Gene(gid, kind, encoding, count, len(params)), occurrence


_LAYER = re.compile(r"^(.*)\.(\d+)$")


def layer_stack(genome: Genome, model: str = "model") -> list[tuple[str, Occurrence]]:
    """The repeated layers (the longest ``prefix.N`` module list), in order, with gene ids."""
    blocks = _module_blocks(genome)
    groups: dict[str, list[tuple[int, str]]] = {}
    for path in blocks:
        m = _LAYER.match(path)
        if m:
            groups.setdefault(m.group(1), []).append((int(m.group(2)), path))
    if not groups:
        return []
    parent = max(groups, key=lambda p: (len(groups[p]), -len(p)))
    out = []
    for _, path in sorted(groups[parent]):
        cls, members = blocks[path]
        gid, _, occurrence = _make(genome, model, "module", path, cls, members)
        out.append((gid, occurrence))
    return out


class GeneRegistry:
    """Gene id -> encoding and occurrences, across any number of models (``registry.json``)."""

    def __init__(self) -> None:
        self.genes: dict[str, Gene] = {}

    def add(self, genome: Genome, model: str) -> list[str]:
        """Record every gene of ``genome`` under the label ``model``; returns their ids."""
        ids = []
        for gid, gene, occurrence in find_genes(genome, model):
            self.genes.setdefault(gid, gene).occurrences.append(occurrence)
            ids.append(gid)
        return ids

    def recurring(self, model: str | None = None) -> list[Gene]:
        """Genes seen more than once (in ``model``, or anywhere)."""
        def count(g: Gene) -> int:
            return sum(1 for o in g.occurrences if model is None or o.model == model)
        return sorted((g for g in self.genes.values() if count(g) > 1), key=lambda g: -count(g))

    def to_json(self) -> dict[str, Any]:
        return {"format": "graftkit-genes/1", "genes": {gid: g.to_json() for gid, g in sorted(self.genes.items())}}

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_json(), indent=1))
        return path

    @classmethod
    def load(cls, path: str | Path) -> GeneRegistry:
        data = json.loads(Path(path).read_text())
        reg = cls()
        for gid, g in data["genes"].items():
            gene = Gene(gid, g["kind"], base64.b64decode(g["encoding"]), g["nodes"], g["params"])
            for o in g["occurrences"]:
                gene.occurrences.append(Occurrence(o["model"], o["kind"], o["module"], o["class"], [],
                                                   [int(p[1:]) for p in o["params"]], o.get("param_names", [])))
            reg.genes[gid] = gene
        return reg
