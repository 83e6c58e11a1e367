"""Permutation specs: which weight axes share one permutation (Git Re-Basin's idea, in torch).

A hidden unit can be renamed without changing what a network computes, provided every
weight axis that indexes that unit is reordered the same way. A ``PermutationSpec`` says
which axes these are: each tensor name maps to one ``AxisRef`` (or ``None``) per axis,
and each ``AxisRef`` names a group and the role of that axis in the group.

Two kinds of groups:

- ``Group``: ``size`` units, any permutation of them is allowed (MLP hidden units, conv
  channels, the transformer residual stream). Role ``""`` is the plain axis; role
  ``"x16"`` is an axis made of 16 consecutive entries per unit (a flattened conv map).
- ``HeadGroup``: the attention of one transformer layer. Whole key/value heads can be
  reordered (their query heads follow), the query heads sharing one key/value head can be
  reordered among themselves, and the dimensions inside a head can be reordered: one
  permutation shared by q and k (their dot product is unchanged) and one shared by v and
  o. With rotary position embeddings the q/k dimensions are pinned (``rotary=True``):
  rotary pairs dimension i with i + d/2 at a frequency that depends on i, so no
  reordering of them commutes with the rotation; heads and v/o dimensions stay free.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch

from graftkit.errors import AlignmentError

HEAD_ROLES = ("q", "k", "v", "o")


@dataclass(frozen=True)
class AxisRef:
    """One axis of one tensor: the group it belongs to and its role in that group."""

    group: str
    role: str = ""

    def expand(self) -> int:
        """For a plain group, how many consecutive entries each unit occupies on this axis."""
        return int(self.role[1:]) if self.role.startswith("x") else 1


@dataclass(frozen=True)
class Group:
    """``size`` interchangeable units."""

    name: str
    size: int


@dataclass(frozen=True)
class HeadGroup:
    """The heads of one attention layer (see the module docstring)."""

    name: str
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rotary: bool = False

    @property
    def group_size(self) -> int:
        return self.num_heads // self.num_kv_heads

    def width(self, role: str) -> int:
        heads = self.num_heads if role in ("q", "o") else self.num_kv_heads
        return heads * self.head_dim


@dataclass
class HeadPermutation:
    """A reordering of one ``HeadGroup``; every field is indexed by the *new* position.

    ``kv[g]``: old kv head placed at g; ``q[g, j]``: old position (within the group) of the
    query head placed at (g, j); ``qk[g]`` / ``vo[g]``: old dimension order inside head g.
    """

    kv: torch.Tensor
    q: torch.Tensor
    qk: torch.Tensor
    vo: torch.Tensor

    def index(self, group: HeadGroup, role: str) -> torch.Tensor:
        """Index vector of a whole axis (``new = old[index]``) for role q, k, v or o."""
        d = group.head_dim
        if role in ("k", "v"):
            dims = self.qk if role == "k" else self.vo
            return (self.kv[:, None] * d + dims).reshape(-1)
        r = group.group_size
        old_heads = self.kv[:, None] * r + self.q  # (kv, r) old query head index
        dims = self.qk if role == "q" else self.vo  # (kv, d), shared by the group's query heads
        idx = old_heads[:, :, None] * d + dims[:, None, :]
        return idx.reshape(-1)

    def equal(self, other: HeadPermutation) -> bool:
        return all(torch.equal(a, b) for a, b in
                   ((self.kv, other.kv), (self.q, other.q), (self.qk, other.qk), (self.vo, other.vo)))


PermValue = torch.Tensor | HeadPermutation
Permutation = dict[str, PermValue]


@dataclass
class PermutationSpec:
    """Groups, and for every tensor of a model which group each of its axes belongs to.

    ``sites`` optionally maps a group to the module paths whose outputs carry that group
    on their last (or, for conv maps, channel) dimension: activation matching reads
    activations there (keys ``group`` or ``group:role``; a head group's roles without a
    site are matched by the others). ``repair_sites`` maps a group to the module whose output REPAIR
    rescales (a Linear, Conv or norm layer with a per-unit weight and bias).
    """

    groups: dict[str, Group | HeadGroup]
    axes: dict[str, tuple[AxisRef | None, ...]]
    sites: dict[str, list[str]] = field(default_factory=dict)
    family: str = ""
    repair_sites: dict[str, str] = field(default_factory=dict)

    def group_axes(self) -> dict[str, list[tuple[str, int, AxisRef]]]:
        """Group name -> every (tensor, axis, ref) that the group reorders."""
        out: dict[str, list[tuple[str, int, AxisRef]]] = defaultdict(list)
        for name, refs in self.axes.items():
            for axis, ref in enumerate(refs):
                if ref is not None:
                    out[ref.group].append((name, axis, ref))
        return dict(out)

    def validate(self, params: dict[str, torch.Tensor], label: str = "model") -> None:
        """Check that ``params`` has exactly the spec's tensors with fitting shapes."""
        missing = [n for n in self.axes if n not in params]
        extra = [n for n in params if n not in self.axes]
        if missing or extra:
            what = f"missing {missing[:3]}" if missing else f"not covered by the spec {extra[:3]}"
            raise AlignmentError(
                f"{label}: tensors {what} for the {self.family or 'given'} permutation spec",
                hint="build the spec from this model (graftkit.align.spec_for(model)) and align "
                "only models of the same architecture",
            )
        for name, refs in self.axes.items():
            shape = tuple(params[name].shape)
            if len(shape) != len(refs):
                raise AlignmentError(
                    f"{label}: tensor {name} has {len(shape)} axes, the spec expects {len(refs)}",
                    hint="build the spec from this model",
                )
            for axis, ref in enumerate(refs):
                if ref is None:
                    continue
                expected = axis_width(self.groups[ref.group], ref)
                if shape[axis] != expected:
                    raise AlignmentError(
                        f"{label}: tensor {name} axis {axis} has size {shape[axis]}, "
                        f"group {ref.group} expects {expected}",
                        hint="models of different widths need optimal-transport fusion "
                        "(graftkit.align.ot_fuse), not permutation matching",
                    )


def axis_width(group: Group | HeadGroup, ref: AxisRef) -> int:
    if isinstance(group, HeadGroup):
        return group.width(ref.role)
    return group.size * ref.expand()


def axis_index(group: Group | HeadGroup, value: PermValue, ref: AxisRef) -> torch.Tensor:
    """The index vector a permutation value induces on one axis (``new = old[index]``)."""
    if isinstance(group, HeadGroup):
        assert isinstance(value, HeadPermutation)
        return value.index(group, ref.role)
    assert isinstance(value, torch.Tensor)
    k = ref.expand()
    if k == 1:
        return value
    return (value[:, None] * k + torch.arange(k)).reshape(-1)


def identity(spec: PermutationSpec) -> Permutation:
    """The permutation that changes nothing."""
    out: Permutation = {}
    for name, g in spec.groups.items():
        if isinstance(g, HeadGroup):
            out[name] = HeadPermutation(
                kv=torch.arange(g.num_kv_heads),
                q=torch.arange(g.group_size).repeat(g.num_kv_heads, 1),
                qk=torch.arange(g.head_dim).repeat(g.num_kv_heads, 1),
                vo=torch.arange(g.head_dim).repeat(g.num_kv_heads, 1),
            )
        else:
            out[name] = torch.arange(g.size)
    return out


def random_permutation(spec: PermutationSpec, seed: int = 0) -> Permutation:
    """A uniformly random allowed permutation (q/k dims stay fixed under rotary)."""
    gen = torch.Generator().manual_seed(seed)
    out: Permutation = {}
    for name, g in spec.groups.items():
        if isinstance(g, HeadGroup):
            def rows(n: int, count: int, fixed: bool = False) -> torch.Tensor:
                if fixed:
                    return torch.arange(n).repeat(count, 1)
                return torch.stack([torch.randperm(n, generator=gen) for _ in range(count)])

            out[name] = HeadPermutation(
                kv=torch.randperm(g.num_kv_heads, generator=gen),
                q=rows(g.group_size, g.num_kv_heads),
                qk=rows(g.head_dim, g.num_kv_heads, fixed=g.rotary),
                vo=rows(g.head_dim, g.num_kv_heads),
            )
        else:
            out[name] = torch.randperm(g.size, generator=gen)
    return out


def recovered_fraction(spec: PermutationSpec, planted: Permutation, found: Permutation) -> dict[str, float]:
    """Per group, the fraction of positions where ``found`` undoes ``planted``.

    ``planted`` made B from A (B = A[planted]); ``found`` aligns B back to A
    (A' = B[found]); a perfect recovery composes to the identity on every axis role.
    """
    out = {}
    for name, g in spec.groups.items():
        roles = HEAD_ROLES if isinstance(g, HeadGroup) else ("",)
        hits = total = 0
        for role in roles:
            ref = AxisRef(name, role)
            composed = axis_index(g, planted[name], ref)[axis_index(g, found[name], ref)]
            hits += int((composed == torch.arange(composed.numel())).sum())
            total += composed.numel()
        out[name] = hits / total
    return out


def axes_from_rules(
    params: Iterable[str], rules: list[tuple[str, object]], family: str
) -> dict[str, tuple[AxisRef | None, ...]]:
    """Tensor name -> axis refs, from (regex, builder) rules; the first matching rule wins.

    A builder is a callable taking the regex match and returning the axis refs. A tensor
    that no rule matches is an error naming it: a silently unpermuted tensor would make
    the aligned model compute something else.
    """
    import re

    compiled = [(re.compile(pattern), build) for pattern, build in rules]
    axes: dict[str, tuple[AxisRef | None, ...]] = {}
    for name in params:
        for pattern, build in compiled:
            m = pattern.fullmatch(name)
            if m:
                axes[name] = build(m)  # type: ignore[operator]
                break
        else:
            raise AlignmentError(
                f"tensor {name} is not covered by the {family} permutation spec",
                hint="this architecture variant is not supported for permutation alignment; "
                "write a PermutationSpec by hand (graftkit.align.spec) or open an issue",
            )
    return axes


def transformer_sites(embeddings: str, layer_root: str, layers: int, ffn_group: str, ffn: str,
                      q: str, k: str, v: str, residual: bool) -> dict[str, list[str]]:
    """Where activation matching records each group of a transformer stack.

    ``embeddings`` and ``layer_root`` are module paths (``layer_root.{i}`` is block i);
    ``ffn``, ``q``, ``k``, ``v`` are paths inside a block. The residual group ``R`` is read
    at the embeddings and every block output, the attention groups at q/k/v, the FFN group
    at its first projection.
    """
    sites: dict[str, list[str]] = {}
    if residual:
        sites["R"] = [embeddings] + [f"{layer_root}.{i}" for i in range(layers)]
    for i in range(layers):
        base = f"{layer_root}.{i}."
        sites[f"L{i}.{ffn_group}"] = [base + ffn]
        sites[f"L{i}.attn:q"] = [base + q]
        sites[f"L{i}.attn:k"] = [base + k]
        sites[f"L{i}.attn:v"] = [base + v]
    return sites
