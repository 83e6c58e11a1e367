"""After every merge: run the output and each input on the same probe tokens and compare.

A merge that writes every tensor can still be broken (wrong signs, a dropped head, NaN).
This check loads the output and then each input, one at a time, feeds them a few probe
sequences, and reports the cosine similarity and relative error of the final hidden
states (and of the logits, with top-1 agreement, for language models). A non-finite
output is an error; the numbers go to the console and into the model card.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from graftkit.errors import MergeError

if TYPE_CHECKING:
    from graftkit.merge.execute import MergeResult
    from graftkit.merge.plan import MergePlan

PROBE_TEXTS = [
    "The capital of France is Paris, and the capital of Italy is",
    "def add(a, b):\n    return a + b",
    "Merging neural networks averages their weights so that",
    "1, 2, 3, 4, 5, 6, 7, 8,",
]


@dataclass
class Comparison:
    label: str
    hidden_cosine: float
    hidden_rel_error: float
    logits_cosine: float | None = None
    top1_agreement: float | None = None


@dataclass
class CheckReport:
    probe: str  # how the probe tokens were made
    output_finite: bool
    comparisons: list[Comparison] = field(default_factory=list)
    seconds: float = 0.0

    def markdown(self) -> str:
        lines = [
            f"Probe: {self.probe}. Output finite: {'yes' if self.output_finite else '**NO**'}.",
            "",
            "| input | hidden cosine | hidden rel. error | logits cosine | top-1 agreement |",
            "|---|---|---|---|---|",
        ]
        for c in self.comparisons:
            lc = f"{c.logits_cosine:.4f}" if c.logits_cosine is not None else "-"
            ta = f"{c.top1_agreement:.3f}" if c.top1_agreement is not None else "-"
            lines.append(f"| `{c.label}` | {c.hidden_cosine:.4f} | {c.hidden_rel_error:.4f} | {lc} | {ta} |")
        return "\n".join(lines)

    def text(self) -> str:
        rows = [f"check ({self.probe}; {self.seconds:.1f} s): output finite: {self.output_finite}"]
        for c in self.comparisons:
            extra = ""
            if c.logits_cosine is not None:
                extra = f"  logits cos {c.logits_cosine:.4f}  top-1 agree {c.top1_agreement:.3f}"
            rows.append(f"  vs {c.label}: hidden cos {c.hidden_cosine:.4f}  rel err {c.hidden_rel_error:.4f}{extra}")
        return "\n".join(rows)


def _is_lm(config: dict | None) -> bool:
    archs = (config or {}).get("architectures") or []
    return any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs)


def _load(folder: Path, lm: bool, lora: Any = None) -> torch.nn.Module:
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    auto = transformers.AutoModelForCausalLM if lm else transformers.AutoModel
    model = auto.from_pretrained(str(folder), dtype=torch.float32)
    if lora is not None:
        lora.add_to_module(model)
    return model.eval()


@torch.no_grad()
def _run(model: torch.nn.Module, ids: torch.Tensor, lm: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    out = model(input_ids=ids, attention_mask=torch.ones_like(ids), output_hidden_states=True)
    hidden = out.hidden_states[-1] if getattr(out, "hidden_states", None) is not None else out.last_hidden_state
    return hidden.float(), (out.logits.float() if lm else None)


def _probe_ids(plan: "MergePlan", output: Path, count: int) -> tuple[torch.Tensor, str]:
    """Token ids every model reads the same way: tokenized text when one vocabulary serves all, else random ids."""
    vocab = min(s.vocab_size or 2**31 for s in plan.sources)
    if plan.tokenizer is None:
        try:
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(str(output))
            rows = [tok(t, add_special_tokens=False)["input_ids"][:16] for t in PROBE_TEXTS[:count]]
            length = min(len(r) for r in rows)
            if length >= 4 and all(max(r) < vocab for r in rows):
                return torch.tensor([r[:length] for r in rows]), f"{len(rows)} tokenized sentences x {length} tokens"
        except Exception:  # no tokenizer in the folder: fall back to random ids
            pass
    gen = torch.Generator().manual_seed(0)
    if plan.tokenizer is not None:
        common = plan.tokenizer.common_ids()
        pick = torch.randint(0, len(common), (count, 16), generator=gen)
        return common[pick], f"{count} random sequences x 16 tokens known to every input"
    return torch.randint(0, max(2, vocab), (count, 16), generator=gen), f"{count} random sequences x 16 tokens"


def _compare(label: str, h_out, l_out, h_in, l_in) -> Comparison:
    cos = torch.nn.functional.cosine_similarity(h_out, h_in, dim=-1).mean().item()
    rel = ((h_out - h_in).norm() / h_in.norm().clamp_min(1e-12)).item()
    comp = Comparison(label, cos, rel)
    if l_out is not None and l_in is not None and l_out.shape == l_in.shape:
        comp.logits_cosine = torch.nn.functional.cosine_similarity(l_out, l_in, dim=-1).mean().item()
        comp.top1_agreement = (l_out.argmax(-1) == l_in.argmax(-1)).float().mean().item()
    return comp


def check_merge(plan: "MergePlan", result: "MergeResult", probes: int = 4) -> CheckReport:
    """Compare the merged model in ``result.output`` with every input; also rewrites the card's check section."""
    import time

    from graftkit.merge.card import with_check

    start = time.perf_counter()
    output = Path(result.output)
    config = plan.out_config
    lm = _is_lm(config)
    ids, how = _probe_ids(plan, output, max(1, probes))
    try:
        merged = _load(output, lm)
        h_out, l_out = _run(merged, ids, lm)
    except Exception as exc:
        raise MergeError(f"the merged model in {output} does not load or run with transformers: {exc}",
                         hint="the folder was written; inspect config.json and the tensor names") from exc
    del merged
    finite = bool(torch.isfinite(h_out).all()) and (l_out is None or bool(torch.isfinite(l_out).all()))
    report = CheckReport(probe=how, output_finite=finite)
    for i, src in enumerate(plan.sources):
        if src.checkpoint.folder is None:
            continue
        model = _load(src.checkpoint.folder, lm, src.lora)
        h_in, l_in = _run(model, ids if plan.tokenizer is None else plan.tokenizer.to_model_ids(ids, i), lm)
        del model
        if h_in.shape != h_out.shape:
            continue
        report.comparisons.append(_compare(src.label, h_out, l_out, h_in, l_in))
    report.seconds = time.perf_counter() - start
    card = output / "README.md"
    if card.is_file():
        card.write_text(with_check(card.read_text(encoding="utf-8"), report), encoding="utf-8")
    if not finite:
        raise MergeError(f"the merged model in {output} produces NaN or infinite outputs on probe tokens",
                         hint="check the inputs for NaN (--nan fail) and the method's parameters")
    return report
