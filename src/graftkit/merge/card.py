"""The model card (README.md) written beside a merged model: what went in, how, and how it compares."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from graftkit.merge.plan import MergePlan

CHECK_MARKER = "## Check against the inputs"


def model_card(plan: "MergePlan", result: Any, config_text: str | None, check: Any = None) -> str:
    method = plan.method
    lines = [
        "---",
        "library_name: transformers",
        "tags:",
        "- graftkit",
        "- merge",
        "---",
        f"# {result.output.name}",
        "",
        f"Merged with graftkit (`graft merge`) using **{method.name}**"
        + (f" ({method.reference})." if method.reference else "."),
        "",
        "## Inputs",
        "",
    ]
    for i, src in enumerate(plan.sources):
        role = []
        if plan.config.base_model is not None and src.ref.ref == plan.config.base_model:
            role.append("base")
        if i == plan.reference:
            role.append("config and tokenizer from here")
        lora = f" with LoRA `{src.ref.ref.lora}`" if src.ref.ref.lora else ""
        lines.append(f"- `{src.ref.ref.model}`{lora}" + (f" ({', '.join(role)})" if role else ""))
    lines += [
        "",
        f"{result.tensors} tensors, {result.bytes / 1e6:.1f} MB, written in {result.seconds:.1f} s.",
        "",
    ]
    notes = list(result.warnings) + [f"skipped: {s}" for s in plan.skipped]
    notes += [f"NaN/inf in input: {n}" for n in result.nan_tensors]
    if notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    lines += ["## Configuration", "", "```yaml", (config_text or plan.config.to_yaml()).rstrip(), "```", ""]
    lines += [CHECK_MARKER, ""]
    lines.append(check.markdown() if check is not None else "Not run (`--no-check`).")
    lines.append("")
    return "\n".join(lines)


def with_check(card: str, check: Any) -> str:
    """``card`` with its check section replaced by ``check``'s report."""
    head = card.split(CHECK_MARKER)[0]
    return f"{head}{CHECK_MARKER}\n\n{check.markdown()}\n"
