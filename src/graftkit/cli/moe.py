"""`graft moe CONFIG OUT`: a Mixtral-style mixture of experts from llama/mistral models (mergekit-moe YAML)."""

from __future__ import annotations

from pathlib import Path

import typer


def moe_command(
    config: Path = typer.Argument(..., help="mergekit-moe style YAML: base_model, gate_mode, experts."),
    out: Path = typer.Argument(..., help="Output folder (written atomically)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it exists."),
    seed: int = typer.Option(0, "--seed", help="Seed of gate_mode: random."),
    shard_size: str = typer.Option("5GB", "--shard-size", help="Largest safetensors shard."),
    no_check: bool = typer.Option(False, "--no-check", help="Skip loading the result and generating."),
) -> None:
    """Build a Mixtral-style MoE: attention and embeddings from base_model, one expert MLP per model per layer,
    routers initialized from the experts' prompts (gate_mode hidden | cheap_embed | random).

    Example config:

      base_model: models/base
      gate_mode: hidden
      dtype: bfloat16
      experts_per_token: 2
      experts:
        - source_model: models/coder
          positive_prompts: ["Write a Python function"]
        - source_model: models/writer
          positive_prompts: ["Write a short story"]

    Example: graft moe moe.yaml out/moe
    """
    from graftkit.merge.moe import assemble_moe
    from graftkit.progress import console

    result = assemble_moe(config, out, overwrite=overwrite, seed=seed, shard_size=shard_size, check=not no_check)
    console.print(f"wrote a {result.experts}-expert MoE ({result.layers} layers, {result.tensors} tensors) to "
                  f"{result.output}\ncheck: {result.check}", markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    app.command("moe")(moe_command)
