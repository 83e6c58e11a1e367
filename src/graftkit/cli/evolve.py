"""`graft evolve CONFIG OUT`: search merge recipes with CMA-ES or random search, on Ray."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from graftkit.progress import console

EXAMPLE = """\
models: [experts/sst2, experts/agnews]      # the experts
base_model: all-MiniLM-L6-v2-folder         # needed by task_arithmetic / ties / dare_ties
method: ties                                # linear task_arithmetic ties dare_ties slerp fisher regmean
space: parameters                           # parameters | dataflow | both
layer_groups: 2                             # one value per group of layers (a mergekit gradient)
ranges: {weight: [0, 1], density: [0.1, 1]}
objective:                                  # validation splits only (force_test: true to override)
  kind: accuracy
  tasks: [{dataset: sst2, split: validation, examples: 200}]
  # each expert its own head: [{dataset: sst2, head: experts/sst2}, ...]
search: {optimizer: cma, budget: 48, popsize: 6, sigma: 0.25, seed: 0, workers: 2}
# RegMean from a hand-tuned start, each expert's Grams on its own task, alpha per layer group:
#   method: regmean
#   models: [{model: experts/sst2, statistics: {dataset: sst2, examples: 256}}, ...]
#   global_params: [alpha]
#   ranges: {weight: [0, 2], alpha: [0.5, 1]}
#   start: {weight: 1.0, alpha: 0.95}
"""


def evolve_command(
    config: Path = typer.Argument(..., help="evolve YAML (see the example below)"),
    out: Path = typer.Argument(..., help="folder for the state, best_recipe.yaml, progress.md, fitness.png, merged/"),
    resume: bool = typer.Option(False, "--resume", help="continue the search saved in OUT"),
    address: Optional[str] = typer.Option(None, "--address", help="join this Ray cluster (default: a local Ray on loopback)"),
    workers: Optional[int] = typer.Option(None, "--workers", help="Ray actors evaluating candidates (0 = in this process)"),
    budget: Optional[int] = typer.Option(None, "--budget", help="total evaluations (overrides search.budget)"),
    optimizer: Optional[str] = typer.Option(None, "--optimizer", help="cma or random"),
    no_merge: bool = typer.Option(False, "--no-merge", help="skip writing OUT/merged at the end"),
) -> None:
    """Evolve a merge recipe: each candidate is merged in memory on a Ray worker and scored on validation data.

    After every evaluation the search state is saved atomically (OUT/evolve_state.json), so a killed
    search continues with --resume; the best recipe so far is OUT/best_recipe.yaml, a valid
    `graft merge` config. At the end the best recipe is merged into OUT/merged.

    Example: graft evolve evolve.yaml out/evo --workers 2 --budget 48

    Example config:

    \b
    """
    from graftkit.evolve.run import evolve

    result = evolve(config, out, resume=resume, address=address, workers=workers, budget=budget,
                    optimizer=optimizer, final_merge=not no_merge)
    console.print(f"{len(result.history)} evaluations; best fitness {result.best.fitness:.4f} "
                  f"(evaluation {result.best.index})")
    console.print(f"best recipe: {result.out / 'best_recipe.yaml'}")
    if result.merged is not None:
        console.print(f"merged model: {result.merged}")


evolve_command.__doc__ = (evolve_command.__doc__ or "") + "".join(f"    {line}\n" for line in EXAMPLE.splitlines())


def register(app: typer.Typer) -> None:
    app.command("evolve")(evolve_command)
