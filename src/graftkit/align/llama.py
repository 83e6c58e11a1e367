"""Permutation spec of the llama family (Llama, Mistral, Qwen2 naming): residual, heads, MLP units.

The residual group ``R`` covers the token embeddings, every RMSNorm weight (RMSNorm is
unchanged by reordering features when its weight is reordered too), the input side of
q/k/v/gate/up, the output side of o/down, and the LM head's input. Per layer,
``L{i}.attn`` is a rotary ``HeadGroup``: key/value heads (with their query heads) and
the query heads within a key/value group can be reordered, and the v/o dimensions inside
a head; the q/k dimensions stay fixed because rotary embeddings rotate dimension pairs
(i, i + d/2) at frequencies that depend on i. ``L{i}.mlp`` is the gated MLP's units
(gate and up rows, down columns).
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


def llama_spec(names: Iterable[str], config: dict[str, Any], residual: bool = True) -> PermutationSpec:
    """The spec of a llama-family state dict ``names``."""
    names = list(names)
    hidden = config["hidden_size"]
    heads = config["num_attention_heads"]
    kv = config.get("num_key_value_heads") or heads
    head_dim = config.get("head_dim") or hidden // heads
    layers = config["num_hidden_layers"]
    R = AxisRef("R") if residual else None
    groups: dict[str, Group | HeadGroup] = {}
    if residual:
        groups["R"] = Group("R", hidden)
    for i in range(layers):
        groups[f"L{i}.attn"] = HeadGroup(f"L{i}.attn", heads, kv, head_dim, rotary=True)
        groups[f"L{i}.mlp"] = Group(f"L{i}.mlp", config["intermediate_size"])

    def proj(role: str):
        return lambda m: (AxisRef(f"L{m['i']}.attn", role), R)

    def bias(role: str):
        return lambda m: (AxisRef(f"L{m['i']}.attn", role),)

    L = r"(?:model\.)?layers\.(?P<i>\d+)\."
    rules = [
        (r"(?:model\.)?embed_tokens\.weight", lambda m: (None, R)),
        (r"lm_head\.weight|score\.weight", lambda m: (None, R)),
        (r"(?:model\.)?norm\.weight", lambda m: (R,)),
        (L + r"(input_layernorm|post_attention_layernorm)\.weight", lambda m: (R,)),
        (L + r"self_attn\.q_proj\.weight", proj("q")),
        (L + r"self_attn\.k_proj\.weight", proj("k")),
        (L + r"self_attn\.v_proj\.weight", proj("v")),
        (L + r"self_attn\.q_proj\.bias", bias("q")),
        (L + r"self_attn\.k_proj\.bias", bias("k")),
        (L + r"self_attn\.v_proj\.bias", bias("v")),
        (L + r"self_attn\.o_proj\.weight", lambda m: (R, AxisRef(f"L{m['i']}.attn", "o"))),
        (L + r"self_attn\.o_proj\.bias", lambda m: (R,)),
        (L + r"mlp\.(gate_proj|up_proj)\.weight", lambda m: (AxisRef(f"L{m['i']}.mlp"), R)),
        (L + r"mlp\.down_proj\.weight", lambda m: (R, AxisRef(f"L{m['i']}.mlp"))),
        (r"(?:model\.)?rotary_emb\.inv_freq", lambda m: (None,)),
    ]
    axes = axes_from_rules(names, rules, "llama")
    prefix = "model." if any(n.startswith("model.") for n in names) else ""
    sites = transformer_sites(f"{prefix}embed_tokens", f"{prefix}layers", layers, "mlp", "mlp.up_proj",
                              "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", residual)
    return PermutationSpec(groups=groups, axes=axes, sites=sites, family="llama")
