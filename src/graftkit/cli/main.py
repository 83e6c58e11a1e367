"""Entry point of `graft`.

Each command group lives in its own module under ``graftkit.cli`` and exposes
``register(app)``; this file only lists them, sets global options and turns a
``GraftError`` into one readable line and exit status 2.
"""

from __future__ import annotations

import importlib
import os
import sys

import typer
from rich.markup import escape

from graftkit.errors import GraftError
from graftkit.progress import console, set_quiet

# graftkit draws its own progress bars and reports; keep transformers' load reports and tqdm bars quiet.
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TQDM_DISABLE", "1")

# Modules that add commands to the app, in the order --help lists them.
COMMAND_MODULES: list[str] = [
    "graftkit.cli.demo",
    "graftkit.cli.zoo",
    "graftkit.cli.data",
    "graftkit.cli.merge",
    "graftkit.cli.moe",
    "graftkit.cli.inspect",
    "graftkit.cli.transplant",
    "graftkit.cli.similarity",
    "graftkit.cli.align",
    "graftkit.cli.fuse",
    "graftkit.cli.transfer",
    "graftkit.cli.hybrid",
    "graftkit.cli.evolve",
]

app = typer.Typer(
    name="graft",
    help=(
        "graftkit: combine neural networks. Merge models with mergekit-compatible YAML, "
        "inspect and compare their computation graphs, align neurons, fuse layers at run time, "
        "transfer capabilities as LoRA adapters and graft new layers onto frozen models.\n\n"
        "Start with `graft demo`, `graft zoo list` or `graft COMMAND --help`."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

_state = {"debug": False}


@app.callback()
def _global_options(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or status lines."),
) -> None:
    _state["debug"] = debug
    if quiet:
        set_quiet(True)


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; a GraftError becomes one line on stderr and exit status 2."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        code = app(args=argv, standalone_mode=False)  # click returns typer.Exit's code here
    except GraftError as exc:
        if debug:
            console.print_exception()
        console.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True, highlight=False, soft_wrap=True)
        return 2
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        console.print("aborted")
        return 130
    except KeyboardInterrupt:
        console.print("interrupted: nothing was left half-written")
        return 130
    except typer.TyperException as exc:  # usage errors: unknown command, bad option
        exc.show()
        return 2
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
