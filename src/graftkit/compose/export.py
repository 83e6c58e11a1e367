"""Static export: a fused runtime of same-architecture experts written as one ordinary HF model folder.

Fused layer i becomes output layer i, the weighted average (``graftkit.merge``, method
``linear``, one mergekit slice per layer) of its experts' layers, weighted by the router's
mean weight over calibration inputs (uniform without them). Embeddings, final norm and head
come from the embedding model. Optionally each expert is first permuted onto the embedding
model's neurons (``graftkit.align`` weight matching), which matters for experts trained
independently rather than fine-tuned from one base.

What cannot be exported is reported, not hidden: adapters that are no longer the identity
(a standard layer has no slot for them) and the gap between averaging weights and mixing
outputs. ``ExportReport`` holds the largest logit difference and the KL divergence between
the exported model and the runtime on the calibration inputs.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from graftkit.compose.runtime import MoLRuntime
from graftkit.errors import CompositionError

_SHAPE_KEYS = ("model_type", "hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads",
               "n_embd", "n_head", "vocab_size", "head_dim")


@dataclass
class ExportReport:
    output: Path
    layer_weights: list[dict[str, float]]
    dropped_adapters: list[str] = field(default_factory=list)
    aligned: list[str] = field(default_factory=list)
    max_logit_diff: float | None = None
    kl_runtime_to_export: float | None = None

    def describe(self) -> str:
        lines = [f"exported {len(self.layer_weights)} layers to {self.output}"]
        if self.aligned:
            lines.append(f"  aligned to the embedding model first: {', '.join(self.aligned)}")
        if self.dropped_adapters:
            lines.append(f"  NOT exported (trained adapters have no slot in a standard layer): {len(self.dropped_adapters)} adapters")
        if self.max_logit_diff is not None:
            lines.append(f"  vs the runtime on calibration inputs: max |logit diff| {self.max_logit_diff:.4g}, "
                         f"KL(runtime || export) {self.kl_runtime_to_export:.4g} nats/token")
        return "\n".join(lines)


def _is_identity(adapter: torch.nn.Module) -> bool:
    if hasattr(adapter, "up"):  # bottleneck
        return adapter.proj is None and not adapter.up.weight.any() and not adapter.up.bias.any()
    w = adapter.proj.weight
    same = w.shape[0] == w.shape[1] and torch.equal(w, torch.eye(w.shape[0]))
    return same and (adapter.proj.bias is None or not adapter.proj.bias.any())


def check_exportable(runtime: MoLRuntime) -> None:
    """CompositionError unless every expert has the embedding model's architecture (configs only)."""
    cfg = runtime.config
    ref = runtime.experts[cfg.embedding_model].config.to_dict()
    for name in runtime.used_experts():
        other = runtime.experts[name].config.to_dict()
        diff = [k for k in _SHAPE_KEYS if ref.get(k) != other.get(k)]
        if diff:
            raise CompositionError(
                f"cannot export statically: expert {name!r} differs from embedding model {cfg.embedding_model!r} in {diff}",
                hint="static export averages weights, so experts need one architecture; keep heterogeneous fusions as a runtime (save_checkpoint)")
    if runtime.retokenized:
        raise CompositionError(f"cannot export statically: experts {sorted(runtime.retokenized)} use other tokenizers",
                               hint="keep this fusion as a runtime")


def _layer_weights(runtime: MoLRuntime, input_ids: torch.Tensor | None, mask: torch.Tensor | None) -> list[torch.Tensor]:
    if input_ids is None:
        return [torch.full((len(layer.experts),), 1.0 / len(layer.experts)) for layer in runtime.layers]
    weights: list[torch.Tensor] = []
    hooks = [layer.router.register_forward_hook(
        lambda mod, args, out: weights.append(_mean_weight(out.weights, mask))) for layer in runtime.layers]
    try:
        with torch.no_grad():
            runtime(input_ids, mask)
    finally:
        for h in hooks:
            h.remove()
    return weights


def _mean_weight(w: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    m = torch.ones(w.shape[:2]) if mask is None else mask.to(w.dtype)
    return (w * m.unsqueeze(-1)).sum((0, 1)) / m.sum().clamp_min(1)


def _folders(runtime: MoLRuntime, tmp: Path, align: bool) -> tuple[dict[str, Path], list[str]]:
    """Each used expert as a folder (built-in modules saved; aligned experts permuted and saved)."""
    folders, aligned = {}, []
    emb_name = runtime.config.embedding_model
    for name in runtime.used_experts():
        expert = runtime.experts[name]
        if align and name != emb_name:
            from graftkit.align import permute_model, spec_for, state_tensors, weight_matching

            anchor = runtime.experts[emb_name].model
            model = expert.model
            spec = spec_for(anchor)
            result = weight_matching(spec, state_tensors(anchor), state_tensors(model))
            permuted = permute_model(model, spec, result.perm)
            folders[name] = tmp / name
            permuted.save_pretrained(folders[name])
            aligned.append(name)
        elif expert.folder is None:
            folders[name] = tmp / name
            expert.model.save_pretrained(folders[name])
        else:
            folders[name] = expert.folder
    return folders, aligned


def _write_with_embedding_parts(merged: Path, embedding: Path, out: Path, overwrite: bool) -> None:
    """Copy the merged folder, taking every tensor outside the layer stack (embeddings, norm, head) from the embedding model.

    mergekit's slice semantics take those from the first slice's first source, which need not
    be the runtime's embedding model.
    """
    from graftkit.io import Checkpoint, CheckpointWriter

    src, emb = Checkpoint.open(merged), Checkpoint.open(embedding)
    with CheckpointWriter(out, overwrite=overwrite) as writer:
        for name in src.names():
            writer.write(name, emb[name] if src.layer_of(name) is None and name in emb else src[name])
        writer.copy_auxiliary(merged)


def export_static(runtime: MoLRuntime, out: str | Path, *, input_ids: torch.Tensor | None = None,
                  attention_mask: torch.Tensor | None = None, align: bool = False, overwrite: bool = False) -> ExportReport:
    """Write the fused model as an HF folder through graftkit.merge and compare it with the runtime."""
    from graftkit.merge import merge

    check_exportable(runtime)
    out = Path(out)
    dropped = [f"layer{i}.{m}:{k}" for i, layer in enumerate(runtime.layers) for e, (m, k) in enumerate(layer.experts)
               if not (_is_identity(layer.adapters_in[e]) and _is_identity(layer.adapters_out[e]))]
    weights = _layer_weights(runtime, input_ids, attention_mask)
    with tempfile.TemporaryDirectory(prefix="graft-export-") as tmp:
        folders, aligned = _folders(runtime, Path(tmp), align)
        emb = str(folders[runtime.config.embedding_model])
        slices = []
        for layer, w in zip(runtime.layers, weights):
            sources = [{"model": str(folders[m]), "layer_range": [k, k + 1], "parameters": {"weight": float(w[e])}}
                       for e, (m, k) in enumerate(layer.experts) if float(w[e]) > 0]
            slices.append({"sources": sources})
        config: dict[str, Any] = {"merge_method": "linear", "base_model": emb, "slices": slices, "dtype": "float32",
                                  "parameters": {"normalize": True}}
        merged = Path(tmp) / "merged"
        merge(config, merged, check=False)
        _write_with_embedding_parts(merged, Path(emb), out, overwrite)
    report = ExportReport(output=out, layer_weights=[
        {f"{m}:{k}": round(float(w[e]), 4) for e, (m, k) in enumerate(layer.experts)} for layer, w in zip(runtime.layers, weights)],
        dropped_adapters=dropped, aligned=aligned)
    if input_ids is not None and runtime.experts[runtime.config.head_model].info.causal:
        from transformers import AutoModelForCausalLM

        exported = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
        with torch.no_grad():
            ours = runtime(input_ids, attention_mask).logits.float()
            theirs = exported(input_ids=input_ids, attention_mask=attention_mask).logits.float()
        m = (torch.ones(input_ids.shape) if attention_mask is None else attention_mask.float()).bool()
        report.max_logit_diff = float((ours - theirs).abs()[m].max())
        kl = (ours.log_softmax(-1).exp() * (ours.log_softmax(-1) - theirs.log_softmax(-1))).sum(-1)
        report.kl_runtime_to_export = float(kl[m].mean())
    return report
