"""`graft transplant SPEC OUT`: assemble a model from layers, embeddings and heads of
several models, verified by gene signatures before anything is written."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("transplant")
    def transplant_command(
        spec: Path = typer.Argument(..., help="YAML spec: models, base, layers (ranges), embeddings, head."),
        out: Path = typer.Argument(..., help="Output HF folder (written atomically)."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT once the new folder is complete."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Verify and print the plan; write nothing."),
    ) -> None:
        """Build a model from blocks of others where their genes match, e.g. layers 0-5 of A and 6-11 of B, or the encoder of one expert with the head of another:

        \b
            models: {A: ./expert-a, B: ./expert-b}
            base: A      # config, tokenizer, embeddings, head
            layers:
              - {model: A, range: [0, 6]}
              - {model: B, range: [6, 12]}
            head: B

        Every output layer must carry the same gene (canonical block hash) as the output architecture's layer there, and embeddings/head the same genes as the base's; a mismatch is refused before anything is written, naming the blocks. The result loads with transformers' from_pretrained.

        Example: graft transplant spec.yaml ./franken
        """
        from graftkit.genome.transplant import load_spec, plan_transplant, transplant
        from graftkit.progress import status

        if dry_run:
            plan = plan_transplant(load_spec(spec))
        else:
            plan = transplant(spec, out, overwrite=overwrite)
        for i, ((model, j), gene) in enumerate(zip(plan.layer_sources, plan.genes)):
            typer.echo(f"layer {i:3d} <- {model} layer {j} (gene {gene})")
        typer.echo(f"{len(plan.tensors)} tensors " + ("verified (dry run: nothing written)" if dry_run else f"written to {out}"))
        status("every block matched its gene")
