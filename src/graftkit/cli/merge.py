"""`graft merge CONFIG OUT`, `graft merge validate CONFIG`, `graft merge examples DIR`.

`graft merge` is a command group whose default command is `run`: when the first word
after `merge` is not a subcommand name, `run` is assumed, so mergekit users type
`graft merge recipe.yaml out/` exactly as they typed `mergekit-yaml recipe.yaml out/`.
"""

from __future__ import annotations

from pathlib import Path

import typer
from typer.core import TyperGroup


class _RunByDefault(TyperGroup):
    """A group that treats `graft merge A B` as `graft merge run A B`."""

    def parse_args(self, ctx, args):  # type: ignore[no-untyped-def]
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


merge_app = typer.Typer(
    cls=_RunByDefault,
    help=(
        "Merge models with a mergekit YAML config (every mergekit method, plus fisher and regmean).\n\n"
        "Examples:\n\n"
        "  graft merge recipe.yaml out/merged          (validate, merge, check)\n\n"
        "  graft merge recipe.yaml out/merged --dry-run (print the plan only)\n\n"
        "  graft merge validate recipe.yaml            (every problem, no tensor read)\n\n"
        "  graft merge examples recipes/               (an example config per method)"
    ),
    no_args_is_help=True,
)


@merge_app.command("run")
def run_command(
    config: Path = typer.Argument(..., help="mergekit-style YAML config."),
    out: Path = typer.Argument(..., help="Output folder (written atomically)."),
    dtype: str = typer.Option(None, "--dtype", help="Output dtype (float32, float16, bfloat16); overrides out_dtype."),
    shard_size: str = typer.Option("5GB", "--shard-size", help="Largest safetensors shard, e.g. 2GB or 500MB."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random methods (dare, della...): same seed, same output."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate and print the plan; read no tensor, write nothing."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it exists (only once the new one is complete)."),
    allow_missing: bool = typer.Option(False, "--allow-missing",
                                       help="Skip input tensors the output cannot hold instead of failing."),
    nan: str = typer.Option("warn", "--nan", help="What a NaN/inf in an input does: warn or fail."),
    no_check: bool = typer.Option(False, "--no-check", help="Skip comparing the output with its inputs afterwards."),
    no_verify: bool = typer.Option(False, "--no-verify",
                                   help="Skip the graph-signature check (graftkit.genome) of the input models."),
) -> None:
    """Merge the models of CONFIG into OUT: validate, stream tensor by tensor, check the result.

    OUT gets the weights (sharded safetensors), config and tokenizer, README.md (model card
    with the check results) and graftkit_merge.yaml (the config).

    Example: graft merge recipe.yaml out/merged --dtype bfloat16
    """
    from graftkit.merge import merge, validate
    from graftkit.progress import console

    if dry_run:
        plan = validate(config, allow_missing=allow_missing, dtype=dtype, verify=not no_verify)
        console.print(plan.describe(), markup=False, highlight=False)
        console.print("dry run: valid, nothing written", markup=False)
        return
    result = merge(config, out, overwrite=overwrite, seed=seed, shard_size=shard_size, dtype=dtype, nan=nan,
                   check=not no_check, allow_missing=allow_missing, verify=not no_verify)
    for w in result.warnings:
        console.print(f"warning: {w}", markup=False, highlight=False)
    if result.nan_tensors:
        console.print(f"warning: NaN/inf in {len(result.nan_tensors)} input tensor(s): "
                      f"{', '.join(result.nan_tensors[:5])}", markup=False, highlight=False)
    console.print(f"wrote {result.tensors} tensors ({result.bytes / 1e6:.1f} MB) to {result.output} "
                  f"in {result.seconds:.1f} s", markup=False, highlight=False)
    if result.check is not None:
        console.print(result.check.text(), markup=False, highlight=False)


@merge_app.command("validate")
def validate_command(
    config: Path = typer.Argument(..., help="mergekit-style YAML config."),
    allow_missing: bool = typer.Option(False, "--allow-missing", help="Do not count tensors that would be skipped."),
) -> None:
    """Check CONFIG against the models' headers and report every problem at once (no tensor is read).

    Example: graft merge validate recipe.yaml
    """
    from graftkit.merge import validate
    from graftkit.progress import console

    plan = validate(config, allow_missing=allow_missing)
    console.print(plan.describe(limit=0), markup=False, highlight=False)
    console.print(f"{config}: valid ({len(plan.tasks)} output tensors)", markup=False, highlight=False)


@merge_app.command("examples")
def examples_command(
    folder: Path = typer.Argument(..., help="Folder to write one example YAML per method into."),
) -> None:
    """Write a commented example config for every merge method into FOLDER.

    Example: graft merge examples recipes/ && graft merge validate recipes/ties.yaml
    """
    from graftkit.merge.methods import METHODS
    from graftkit.merge.methods.examples import example_config
    from graftkit.progress import console

    folder.mkdir(parents=True, exist_ok=True)
    for name in METHODS:
        (folder / f"{name}.yaml").write_text(example_config(name), encoding="utf-8")
    console.print(f"wrote {len(METHODS)} example configs to {folder}", markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(merge_app, name="merge")
