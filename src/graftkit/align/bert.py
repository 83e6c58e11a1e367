"""Permutation spec of the bert family (BERT, MiniLM, RoBERTa naming): residual stream, heads, FFN units.

One group ``R`` is the residual stream: every embedding table, every LayerNorm and the
input side of every projection that reads it (LayerNorm is unchanged by reordering its
features). Per layer, ``L{i}.attn`` holds the heads (q/k dims and v/o dims free) and
``L{i}.ffn`` the intermediate units. The pooler's and the classifier's outputs are the
model's outputs and stay fixed; ``last_hidden_state`` comes out in the permuted basis
(that is the point of aligning B to A: its features then line up with A's).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from graftkit.align.spec import (
    AxisRef,
    Group,
    HeadGroup,
    PermutationSpec,
    axes_from_rules,
    transformer_sites,
)


def bert_spec(names: Iterable[str], config: dict[str, Any], residual: bool = True) -> PermutationSpec:
    """The spec of a bert-family state dict ``names`` (any prefix, e.g. ``bert.``)."""
    names = list(names)
    hidden = config["hidden_size"]
    heads = config["num_attention_heads"]
    layers = config["num_hidden_layers"]
    R = AxisRef("R") if residual else None
    groups: dict[str, Group | HeadGroup] = {}
    if residual:
        groups["R"] = Group("R", hidden)
    for i in range(layers):
        groups[f"L{i}.attn"] = HeadGroup(f"L{i}.attn", heads, heads, hidden // heads, rotary=False)
        groups[f"L{i}.ffn"] = Group(f"L{i}.ffn", config["intermediate_size"])

    def att(role: str):
        return lambda m: (AxisRef(f"L{m['i']}.attn", role), R)

    def att_bias(role: str):
        return lambda m: (AxisRef(f"L{m['i']}.attn", role),)

    P = r"(?P<p>(?:\w+\.)?)"
    L = P + r"encoder\.layer\.(?P<i>\d+)\."
    rules = [
        (P + r"embeddings\.(word|position|token_type)_embeddings\.weight", lambda m: (None, R)),
        (P + r"embeddings\.LayerNorm\.(weight|bias)", lambda m: (R,)),
        (L + r"attention\.self\.query\.weight", att("q")),
        (L + r"attention\.self\.query\.bias", att_bias("q")),
        (L + r"attention\.self\.key\.weight", att("k")),
        (L + r"attention\.self\.key\.bias", att_bias("k")),
        (L + r"attention\.self\.value\.weight", att("v")),
        (L + r"attention\.self\.value\.bias", att_bias("v")),
        (L + r"attention\.output\.dense\.weight", lambda m: (R, AxisRef(f"L{m['i']}.attn", "o"))),
        (L + r"(attention\.output\.dense\.bias|attention\.output\.LayerNorm\.(weight|bias)"
             r"|output\.dense\.bias|output\.LayerNorm\.(weight|bias))", lambda m: (R,)),
        (L + r"intermediate\.dense\.weight", lambda m: (AxisRef(f"L{m['i']}.ffn"), R)),
        (L + r"intermediate\.dense\.bias", lambda m: (AxisRef(f"L{m['i']}.ffn"),)),
        (L + r"output\.dense\.weight", lambda m: (R, AxisRef(f"L{m['i']}.ffn"))),
        (P + r"pooler\.dense\.weight", lambda m: (None, R)),
        (P + r"pooler\.dense\.bias", lambda m: (None,)),
        (r"(classifier|cls\.predictions\.decoder|qa_outputs)\.bias|cls\.predictions\.bias", lambda m: (None,)),
        (r"classifier\.weight|qa_outputs\.weight", lambda m: (None, None)),
        (r"cls\.predictions\.transform\.dense\.weight", lambda m: (None, R)),
        (r"cls\.predictions\.transform\.(dense\.bias|LayerNorm\.(weight|bias))", lambda m: (None,)),
        (r"cls\.predictions\.decoder\.weight", lambda m: (None, None)),
    ]
    axes = axes_from_rules(names, rules, "bert")
    prefix = next((n[: -len("embeddings.word_embeddings.weight")] for n in names
                   if n.endswith("embeddings.word_embeddings.weight")), "")
    sites = transformer_sites(f"{prefix}embeddings", f"{prefix}encoder.layer", layers, "ffn", "intermediate",
                              "attention.self.query", "attention.self.key", "attention.self.value", residual)
    return PermutationSpec(groups=groups, axes=axes, sites=sites, family="bert")
