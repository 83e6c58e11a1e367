"""Generator (a): map a source LoRA (or task vector) into the target through aligned activation subspaces.

LoRA-X in spirit. A source module's delta ``B_s A_s`` acts on the source's inputs
``x_s`` and writes into its outputs. On the same texts we record, for each source
module and the target module paired with it (same position within its layer, layer at
the same relative depth), the inputs and outputs pooled per text, and fit two ridge
stitching maps: ``x_s ~ M_in x_t`` and ``y_t ~ M_out y_s`` (least-squares stitching,
Bansal et al. 2021; widths may differ). The target's factors are then
``A_t = A_s M_in`` and ``B_t = M_out B_s``: same rank, no training, no labels.
"""

from __future__ import annotations

import torch
from torch import nn

from graftkit.errors import TransferError
from graftkit.progress import track
from graftkit.transfer.generators.common import Encoder, layer_linears, resolve_modules, ridge
from graftkit.transfer.peft_export import Adapter, LoRAFactors


def pair_modules(source: nn.Module, target: nn.Module, target_names: list[str]) -> dict[str, str]:
    """target module -> source module at the same relative depth and the same position in its layer."""
    s_layers, t_layers = layer_linears(source), layer_linears(target)
    if not s_layers:
        raise TransferError("the source has no Linear modules inside numbered layers", hint="use the distill generator")
    s_idx, t_idx = sorted(s_layers), sorted(t_layers)
    pairs = {}
    for t_layer in t_idx:
        depth = t_idx.index(t_layer) / max(1, len(t_idx) - 1)
        s_layer = s_idx[round(depth * (len(s_idx) - 1))]
        for pos, name in enumerate(t_layers[t_layer]):
            if name in target_names and pos < len(s_layers[s_layer]):
                pairs[name] = s_layers[s_layer][pos]
    return pairs


@torch.no_grad()
def _record(enc: Encoder, names: list[str], texts: list[str], batch_size: int = 32) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per module, inputs and outputs averaged over each text's tokens."""
    modules = dict(enc.model.named_modules())
    store: dict[str, tuple[list, list]] = {n: ([], []) for n in names}
    mask_holder: dict[str, torch.Tensor] = {}

    def hook(name):
        def fn(_m, inp, out):
            m = mask_holder["mask"].unsqueeze(-1).to(out.dtype)
            denom = m.sum(1).clamp_min(1)
            store[name][0].append((inp[0] * m).sum(1) / denom)
            store[name][1].append((out * m).sum(1) / denom)
        return fn

    handles = [modules[n].register_forward_hook(hook(n)) for n in names]
    try:
        enc.model.eval()
        for i in range(0, len(texts), batch_size):
            b = enc.batch(texts[i:i + batch_size])
            mask_holder["mask"] = b["attention_mask"]
            enc.pooled(b)
    finally:
        for h in handles:
            h.remove()
    return {n: (torch.cat(a), torch.cat(o)) for n, (a, o) in store.items()}


class SubspaceGenerator:
    """Transfer a source LoRA through ridge stitching maps fitted on shared unlabeled texts."""

    name = "subspace"

    def __init__(self, alpha: float = 1e-4, scale: float = 1.0):
        self.alpha, self.scale = alpha, scale

    def generate(self, sources: list[Encoder], target: Encoder, texts: list[str], weights: list[float] | None = None,
                 modules: list[str] | None = None, source_adapters: list[Adapter] | None = None, rank: int | None = None,
                 **_: object) -> Adapter:
        if not source_adapters or len(source_adapters) != len(sources):
            raise TransferError("subspace transfer needs one source LoRA per source (extract it with `graft extract-lora`)",
                                hint="pass source_adapters=[extract_lora(expert, base, None)[0], ...]")
        if len(texts) < 16:
            raise TransferError(f"{len(texts)} texts are too few to fit the stitching maps", hint="pass at least 64 texts")
        weights = weights or [1.0 / len(sources)] * len(sources)
        min_rank = min(f.rank for a in source_adapters for f in a.loras.values())
        names = resolve_modules(target.model, modules, rank or min_rank)
        t_rec = None
        loras: dict[str, list[LoRAFactors]] = {}
        for source, adapter, w in zip(sources, source_adapters, weights):
            pairs = {t: s for t, s in pair_modules(source.model, target.model, names).items() if s in adapter.loras}
            if not pairs:
                raise TransferError(f"no module of source {source.name} with a LoRA pairs with a target module",
                                    hint="extract the source LoRA for the layers' Linear modules")
            s_rec = _record(source, sorted(set(pairs.values())), texts)
            t_rec = t_rec or _record(target, names, texts)
            for t_name in track(list(pairs), f"map {source.name}"):
                s_name = pairs[t_name]
                xs, ys = s_rec[s_name]
                xt, yt = t_rec[t_name]
                m_in = ridge(xt - xt.mean(0), xs - xs.mean(0), self.alpha)      # (in_t, in_s): x_s ~ x_t m_in
                m_out = ridge(ys - ys.mean(0), yt - yt.mean(0), self.alpha)     # (out_s, out_t): y_t ~ y_s m_out
                f = adapter.loras[s_name]
                A = f.A.float() @ m_in.T                                          # (r, in_t)
                B = m_out.T @ f.B.float() * (w * self.scale)                      # (out_t, r)
                loras.setdefault(t_name, []).append(LoRAFactors(A=A, B=B))
        merged = {n: LoRAFactors(A=torch.cat([f.A for f in fs]), B=torch.cat([f.B for f in fs], 1)) for n, fs in loras.items()}
        return Adapter(loras=merged, meta={"made_by": "graftkit transfer subspace", "sources": [s.name for s in sources],
                                           "weights": weights, "ridge_alpha": self.alpha, "texts": len(texts)})
