"""`graft extract-lora` and `graft transfer fingerprint|generate|apply`.

Extraction turns a fine-tune into a PEFT LoRA against its base; transfer generates a
LoRA for another model (subspace mapping or label-free distillation), checks it on
the target, and applies it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

transfer_app = typer.Typer(
    help=(
        "Capability transfer between models as LoRA adapters.\n\n"
        "Examples:\n\n"
        "  graft transfer generate experts/sst2 paraphrase-MiniLM-L3-v2 out/l3-sst2 --method distill --texts sst2\n\n"
        "  graft transfer apply paraphrase-MiniLM-L3-v2 out/l3-sst2 out/l3-merged\n\n"
        "  graft transfer fingerprint experts/sst2 experts/trec --extractor fp.pt --png fp.png"
    ),
    no_args_is_help=True,
)


def extract_lora_command(
    finetuned: Path = typer.Argument(..., help="The fine-tuned model (HF folder or weight file)."),
    base: Path = typer.Argument(..., help="The base it was fine-tuned from (same architecture)."),
    out: Path = typer.Argument(..., help="Output PEFT adapter folder (adapter_config.json + adapter_model.safetensors)."),
    rank: int = typer.Option(16, "--rank", "-r", help="Largest rank per module."),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="Also drop singular values below this fraction of the largest (per module)."),
    embeddings: bool = typer.Option(False, "--embeddings", help="Also extract embedding matrices (PEFT lora_embedding_A/B)."),
    norms: bool = typer.Option(False, "--norms", help="Copy changed norm layers whole (PEFT modules_to_save)."),
    modules: Optional[list[str]] = typer.Option(None, "--module", "-m", help="Regex on module names to extract (repeatable); each must match."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it exists."),
) -> None:
    """Extract FINETUNED - BASE as a LoRA adapter: truncated SVD of each module's delta.

    The error of each module (||delta - BA|| / ||delta||) is reported; tensors the base
    lacks (a task head) are listed as skipped. Load the result with
    `PeftModel.from_pretrained(AutoModel.from_pretrained(BASE), OUT)`.

    Example: graft extract-lora experts/sst2 all-MiniLM-L6-v2 out/sst2-lora --rank 16
    """
    from graftkit.progress import console
    from graftkit.transfer.lora_extract import extract_lora
    from graftkit.zoo import get as zoo_get

    base_path = base if base.exists() else Path(zoo_get(str(base)))
    _, report = extract_lora(finetuned, base_path, out, rank=rank, threshold=threshold, embeddings=embeddings,
                             norms=norms, modules=modules, overwrite=overwrite)
    worst = max(report.modules, key=lambda m: m.relative_error)
    console.print(report.summary())
    console.print(f"worst module: {worst.name} rank {worst.rank} relative error {worst.relative_error:.4f}")
    for name, why in list(report.skipped.items())[:10]:
        console.print(f"skipped {name}: {why}")


def register(app: typer.Typer) -> None:
    app.command("extract-lora")(extract_lora_command)
    app.add_typer(transfer_app, name="transfer")
