"""LoRA extraction: the delta of a fine-tune, truncated per module by SVD, as a PEFT adapter.

For each 2-D weight the delta ``finetuned - base`` is factored exactly (full SVD in
float32) and cut at ``rank`` or, with ``threshold``, at the singular values below
``threshold * largest`` (whichever is smaller). The Eckart-Young theorem makes this
the lowest Frobenius error any rank-r factorisation can reach, which is what the
comparison with ``mergekit-extract-lora`` measures. Names of the fine-tune are matched
to the base by suffix, so an ``*ForSequenceClassification`` expert extracts against
its plain ``*Model`` base; tensors the base lacks (a task head) are reported, not
silently dropped.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from graftkit.errors import TransferError
from graftkit.io import Checkpoint
from graftkit.progress import track
from graftkit.transfer.peft_export import Adapter, LoRAFactors, write_peft_adapter

EMBEDDING = re.compile(r"(embed|wte|wpe|lm_head|shared)", re.IGNORECASE)
NORM = re.compile(r"(norm|ln_|layernorm)", re.IGNORECASE)


@dataclass
class ModuleReport:
    name: str
    shape: tuple[int, int]
    rank: int
    relative_error: float  # ||delta - BA||_F / ||delta||_F


@dataclass
class ExtractReport:
    out: str
    modules: list[ModuleReport] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # tensor -> why
    seconds: float = 0.0

    @property
    def mean_relative_error(self) -> float:
        return sum(m.relative_error for m in self.modules) / max(1, len(self.modules))

    def summary(self) -> str:
        return (f"{len(self.modules)} modules extracted to {self.out} (mean relative error "
                f"{self.mean_relative_error:.4f}), {len(self.replaced)} tensors copied whole, "
                f"{len(self.skipped)} skipped, {self.seconds:.1f} s")


def match_names(finetuned: Checkpoint, base: Checkpoint) -> tuple[dict[str, str], list[str]]:
    """``base name -> finetuned name`` by exact name or unique dotted suffix; and fine-tune names left over."""
    ft_names = finetuned.names()
    by_suffix: dict[str, list[str]] = {}
    for n in ft_names:
        parts = n.split(".")
        for i in range(len(parts)):
            by_suffix.setdefault(".".join(parts[i:]), []).append(n)
    mapping: dict[str, str] = {}
    for b in base.names():
        cands = [b] if b in ft_names else by_suffix.get(b, [])
        if len(cands) == 1:
            mapping[b] = cands[0]
    used = set(mapping.values())
    return mapping, [n for n in ft_names if n not in used]


def _check_architectures(finetuned: Checkpoint, base: Checkpoint, ft_path: str, base_path: str) -> None:
    a, b = finetuned.architecture.model_type, base.architecture.model_type
    if a and b and a != b:
        raise TransferError(f"{ft_path} is a {a!r} model but base {base_path} is {b!r}",
                            hint="extract a LoRA against the exact base the model was fine-tuned from")


def _svd_factors(delta: torch.Tensor, rank: int, threshold: float | None) -> tuple[torch.Tensor, torch.Tensor, int, float]:
    u, s, vh = torch.linalg.svd(delta, full_matrices=False)
    r = rank
    if threshold is not None and s.numel() and s[0] > 0:
        r = min(r, int((s >= threshold * s[0]).sum()))
    r = max(1, r)
    total = float(s.pow(2).sum())
    err = (float(s[r:].pow(2).sum()) / total) ** 0.5 if total > 0 else 0.0
    return u[:, :r] * s[:r], vh[:r], r, err


def extract_lora(
    finetuned: str | Path,
    base: str | Path,
    out: str | Path | None,
    rank: int = 16,
    threshold: float | None = None,
    embeddings: bool = False,
    norms: bool = False,
    modules: list[str] | None = None,
    min_change: float = 0.0,
    overwrite: bool = False,
) -> tuple[Adapter, ExtractReport]:
    """Extract ``finetuned - base`` as a rank-``rank`` LoRA and (unless ``out`` is None) write it as a PEFT folder.

    ``modules``: regexes on base module names to restrict the targets (a name that
    matches nothing is an error). ``embeddings`` adds embedding matrices; ``norms``
    copies changed 1-D norm weights whole (PEFT ``modules_to_save``). Everything is
    validated before the first SVD; nothing is written on error.
    """
    if rank < 1:
        raise TransferError(f"rank {rank} must be at least 1", hint="pass --rank 8 or another positive number")
    if threshold is not None and not 0 <= threshold < 1:
        raise TransferError(f"threshold {threshold} must be in [0, 1)", hint="e.g. --threshold 0.01 keeps singular values above 1% of the largest")
    ft, bs = Checkpoint.open(finetuned), Checkpoint.open(base)
    _check_architectures(ft, bs, str(finetuned), str(base))
    mapping, leftover = match_names(ft, bs)
    if not mapping:
        raise TransferError(f"no tensor of {base} matches one of {finetuned}",
                            hint="the two checkpoints come from different architectures; pass the model's own base")
    targets: list[str] = []
    replaced: list[str] = []
    for name in mapping:
        shape_b, shape_f = bs.shape(name), ft.shape(mapping[name])
        if tuple(shape_b) != tuple(shape_f):
            raise TransferError(f"tensor {name!r} is {tuple(shape_f)} in {finetuned} but {tuple(shape_b)} in {base}",
                                hint="the fine-tune's base has another size; extract against its true base")
        if not name.endswith(".weight") or not bs.dtype(name).is_floating_point:
            continue
        module = name[: -len(".weight")]
        if len(shape_b) == 2:
            if EMBEDDING.search(module) and not embeddings:
                continue
            if modules and not any(re.search(p, module) for p in modules):
                continue
            targets.append(name)
        elif len(shape_b) == 1 and norms and NORM.search(module):
            replaced.append(name)
    if modules:
        for p in modules:
            if not any(re.search(p, t[: -len(".weight")]) for t in targets):
                raise TransferError(f"target module {p!r} matches no 2-D weight of {base}",
                                    hint=f"module names look like {targets[0][:-7] if targets else bs.names()[0]!r}")
    if not targets:
        raise TransferError(f"no module of {base} to extract", hint="drop --modules filters or pass --embeddings")
    # A module named in ``modules`` must hold the rank; otherwise small modules (token-type
    # embeddings) are clamped to their full rank, and only a rank no module can hold is an error.
    limits = {name: min(bs.shape(name)) for name in targets}
    named = [n for n in targets if modules] if modules else []
    for name in named or [max(limits, key=limits.get)]:
        if rank > limits[name]:
            raise TransferError(
                f"rank {rank} is larger than module {name[:-7]!r} allows ({tuple(bs.shape(name))}: at most {limits[name]})",
                hint=f"pass --rank {limits[name]} or less, or exclude the module with --modules")
    report = ExtractReport(out=str(out) if out is not None else "")
    start = time.perf_counter()
    loras: dict[str, LoRAFactors] = {}
    for name in track(targets, "extract LoRA"):
        delta = ft[mapping[name]].float() - bs[name].float()
        module = name[: -len(".weight")]
        if float(delta.abs().max()) <= min_change:
            report.skipped[name] = "unchanged"
            continue
        kind = "embedding" if EMBEDDING.search(module) else "linear"
        if kind == "embedding":
            b, a, r, err = _svd_factors(delta.T, min(rank, min(delta.shape)), threshold)
        else:
            b, a, r, err = _svd_factors(delta, min(rank, min(delta.shape)), threshold)
        loras[module] = LoRAFactors(A=a.contiguous(), B=b.contiguous(), kind=kind)
        report.modules.append(ModuleReport(module, tuple(delta.shape), r, err))
    # PEFT's modules_to_save replaces whole modules: a changed norm brings all its parameters.
    full: dict[str, torch.Tensor] = {}
    changed = {n.rsplit(".", 1)[0] for n in replaced if not torch.equal(ft[mapping[n]].float(), bs[n].float())}
    for module in sorted(changed):
        for name in (n for n in mapping if n.rsplit(".", 1)[0] == module):
            full[name] = ft[mapping[name]].float().clone()
            report.replaced.append(name)
    for n in leftover:
        report.skipped[n] = "not in the base (task head or extra tensor)"
    report.seconds = time.perf_counter() - start
    if not loras:
        raise TransferError(f"{finetuned} does not differ from {base} in any extracted module",
                            hint="check that FINETUNED and BASE are not the same model")
    adapter = Adapter(loras=loras, replaced=full, base=str(base),
                      meta={"made_by": "graftkit extract-lora", "finetuned": str(finetuned), "rank": rank,
                            "threshold": threshold, "mean_relative_error": report.mean_relative_error})
    if out is not None:
        write_peft_adapter(adapter, out, base_model_name_or_path=str(base), overwrite=overwrite)
    return adapter, report
