"""What the hybrid parts are doing: gate statistics, memory usage, a health report.

``gate_statistics`` runs texts (optionally grouped into categories) through the model and
summarizes g per layer (mean, std, min, max) and per category. ``memory_heatmap`` draws
how much attention each memory slot received (layers x slots) as a PNG. ``health_report``
checks the things that silently go wrong: NaN or Inf parameters, gates saturated at 0 or
1, dead memory slots, a base parameter that became trainable, and the drift of the
hybrid's logits from the frozen base on the given texts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch


def _gates(model: Any) -> dict[int, Any]:
    return {int(i): b.gate for i, b in model.branches.items()}


def gate_statistics(model: Any, tokenizer: Any, texts: Sequence[str] | Mapping[str, Sequence[str]],
                    max_length: int = 256) -> dict[str, Any]:
    """{"layers": {i: {mean, std, min, max}}, "categories": {cat: {i: mean}}} over all tokens."""
    groups = dict(texts) if isinstance(texts, Mapping) else {"all": list(texts)}
    gates = _gates(model)
    per_cat: dict[str, dict[int, list[torch.Tensor]]] = {c: {i: [] for i in gates} for c in groups}
    for g in gates.values():
        g.record = True
    try:
        with torch.no_grad():
            for cat, items in groups.items():
                for text in items:
                    ids = tokenizer(text, return_tensors="pt", truncation=True, max_length=max_length).input_ids
                    model(input_ids=ids)
                    for i, g in gates.items():
                        per_cat[cat][i].append(g.last.flatten())
    finally:
        for g in gates.values():
            g.record = False
            g.last = None
    layers = {}
    for i in gates:
        values = torch.cat([v for cat in per_cat.values() for v in cat[i]])
        layers[i] = {"mean": float(values.mean()), "std": float(values.std()) if len(values) > 1 else 0.0,
                     "min": float(values.min()), "max": float(values.max())}
    categories = {c: {i: float(torch.cat(v).mean()) for i, v in d.items()} for c, d in per_cat.items()}
    return {"layers": layers, "categories": categories}


def memory_usage(model: Any, tokenizer: Any, texts: Sequence[str], max_length: int = 256) -> dict[int, torch.Tensor]:
    """Attention mass per memory slot, per layer with a memory bank, summed over ``texts``."""
    banks = {int(i): b.memory for i, b in model.branches.items() if b.memory is not None}
    for bank in banks.values():
        bank.usage.zero_()
        bank.track_usage = True
    try:
        with torch.no_grad():
            for text in texts:
                model(input_ids=tokenizer(text, return_tensors="pt", truncation=True, max_length=max_length).input_ids)
    finally:
        for bank in banks.values():
            bank.track_usage = False
    return {i: bank.usage.clone() for i, bank in banks.items()}


def memory_heatmap(usage: Mapping[int, torch.Tensor], path: str | Path) -> Path:
    """A layers x slots heatmap of the share of attention each slot received (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not usage:
        from graftkit.errors import HybridError

        raise HybridError("the model has no memory banks to draw", hint="build it with HybridConfig(memory=MemoryConfig())")
    layers = sorted(usage)
    grid = torch.stack([usage[i] / usage[i].sum().clamp_min(1e-12) for i in layers]).numpy()
    side = max(1, int(math.sqrt(grid.shape[1])))
    fig, ax = plt.subplots(figsize=(10, 1 + 0.5 * len(layers)))
    im = ax.imshow(grid, aspect="auto", cmap="viridis", interpolation="nearest")
    ax.set_yticks(range(len(layers)), [f"layer {i}" for i in layers])
    ax.set_xlabel(f"memory slot ({grid.shape[1]} slots; product keys: {side}x{side} when square)")
    ax.set_title("share of memory attention per slot")
    fig.colorbar(im, ax=ax)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def health_report(model: Any, tokenizer: Any | None = None, texts: Sequence[str] = (), max_length: int = 128) -> dict[str, Any]:
    """Checks with a verdict each; ``healthy`` is True only when every check passed."""
    checks: dict[str, dict[str, Any]] = {}
    bad = [n for n, p in model.branches.named_parameters() if not torch.isfinite(p).all()]
    checks["finite_parameters"] = {"ok": not bad, "detail": bad[:5]}
    leaked = [n for n, p in model.base.named_parameters() if p.requires_grad and ".branch." not in n]
    checks["base_frozen"] = {"ok": not leaked, "detail": leaked[:5]}
    counts = model.parameter_counts()
    checks["trainable_fraction"] = {"ok": True, "detail": counts}
    if tokenizer is not None and texts:
        stats = gate_statistics(model, tokenizer, list(texts), max_length)
        saturated = [i for i, s in stats["layers"].items() if s["mean"] < 1e-4 or s["mean"] > 1 - 1e-4]
        checks["gates_not_saturated"] = {"ok": not saturated, "detail": {"saturated_layers": saturated, **stats}}
        usage = memory_usage(model, tokenizer, list(texts), max_length)
        dead = {i: float((u == 0).float().mean()) for i, u in usage.items()}
        checks["memory_slots_used"] = {"ok": all(d < 0.9 for d in dead.values()), "detail": {"dead_fraction": dead}}
        checks["drift_from_base"] = {"ok": True, "detail": logit_drift(model, tokenizer, texts, max_length)}
    return {"healthy": all(c["ok"] for c in checks.values()), "checks": checks}


def logit_drift(model: Any, tokenizer: Any, texts: Sequence[str], max_length: int = 128) -> dict[str, float]:
    """Mean KL(base || hybrid) per token and max |logit difference|, gates switched off for the base."""
    kls, diffs = [], []
    with torch.no_grad():
        for text in texts:
            ids = tokenizer(text, return_tensors="pt", truncation=True, max_length=max_length).input_ids
            hybrid = model(input_ids=ids).logits.float()
            with bypass_branches(model):
                base = model(input_ids=ids).logits.float()
            kls.append(float(torch.nn.functional.kl_div(hybrid.log_softmax(-1), base.log_softmax(-1), log_target=True,
                                                        reduction="batchmean") / ids.shape[1]))
            diffs.append(float((hybrid - base).abs().max()))
    return {"kl_per_token": sum(kls) / len(kls), "max_abs_logit_diff": max(diffs)}


class bypass_branches:
    """Context manager: every hybrid layer returns its attention output unchanged (the base model)."""

    def __init__(self, model: Any) -> None:
        self.layers = [m for m in model.base.modules() if type(m).__name__ == "HybridAttention"]

    def __enter__(self) -> None:
        for m in self.layers:
            m.bypass = True

    def __exit__(self, *exc: object) -> None:
        for m in self.layers:
            m.bypass = False


PROBE_TEXTS: dict[str, list[str]] = {
    "math": ["What is 37 times 41? Let me compute: 37 * 41 = 1517.", "If x + 5 = 12, then x equals 7."],
    "factual": ["The capital of France is Paris.", "Water boils at 100 degrees Celsius at sea level."],
    "creative": ["Once upon a time, a small dragon learned to sing.", "The moon whispered secrets to the sleeping sea."],
    "code": ["def add(a, b):\n    return a + b", "for i in range(10):\n    print(i * i)"],
}
