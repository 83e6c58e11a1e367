"""`graft inspect MODEL [--against B] [--json]`: a model's computation graph, signature,
parameter ids and genes, or where two models part ways."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def _resolve(model: str) -> str:
    """A path as given, or a zoo model's cached folder."""
    if Path(model).exists():
        return model
    from graftkit import zoo
    from graftkit.errors import MissingPathError

    try:
        return str(zoo.get(model, install=False))
    except Exception as exc:  # not a zoo name either
        raise MissingPathError(f"{model} is neither a model folder nor a cached zoo model",
                               hint="pass an HF folder or a name from `graft zoo list`") from exc


def _summary(cg, arch) -> dict:
    from graftkit.genome.genes import GeneRegistry, layer_stack

    genome = cg.genome
    registry = GeneRegistry()
    registry.add(genome, "model")
    layers = layer_stack(genome)
    return {
        "path": cg.path,
        "model_class": cg.model_class,
        "model_type": getattr(arch, "model_type", None),
        "hidden_size": getattr(arch, "hidden_size", None),
        "num_layers": getattr(arch, "num_layers", None),
        "signature": genome.signature,
        "strength": genome.strength,
        "nodes": len(genome.nodes),
        "ops": sum(1 for n in genome.nodes if n.kind == "op"),
        "symbolic_batch_and_sequence": genome.dynamic,
        "parameters": genome.param_table(),
        "unused_parameters": genome.unused,
        "checkpoint_missing": cg.missing,
        "checkpoint_extra": cg.extra,
        "layers": [{"module": occ.module, "gene": gid} for gid, occ in layers],
        "genes": [
            {"id": g.id, "kind": g.kind, "label": g.label, "count": len(g.occurrences), "nodes": g.node_count,
             "params": g.param_count, "modules": [o.module for o in g.occurrences][:4]}
            for g in sorted(registry.genes.values(), key=lambda g: (-len(g.occurrences), -g.node_count))
        ],
        "cached": cg.cached,
    }


def _print(summary: dict, show_params: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 120))
    console.print(f"[bold]{summary['path']}[/]  {summary['model_class']} ({summary['model_type']}, "
                  f"hidden {summary['hidden_size']} x {summary['num_layers']} layers)")
    console.print(f"signature  [bold]{summary['signature']}[/]  ({summary['strength']}, {summary['nodes']} canonical "
                  f"nodes, {summary['ops']} ops, batch/sequence symbolic: {summary['symbolic_batch_and_sequence']})")
    layer_genes = [l["gene"] for l in summary["layers"]]
    if layer_genes:
        runs, start = [], 0
        for i in range(1, len(layer_genes) + 1):
            if i == len(layer_genes) or layer_genes[i] != layer_genes[start]:
                runs.append(f"layers {start}-{i - 1}: {layer_genes[start]}")
                start = i
        console.print("layer stack  " + "; ".join(runs))
    genes = Table(title="genes (recurring blocks by canonical hash)")
    for col in ("gene", "kind", "block", "count", "nodes", "params", "e.g."):
        genes.add_column(col)
    for g in summary["genes"][:25]:
        genes.add_row(g["id"], g["kind"], g["label"], str(g["count"]), str(g["nodes"]), str(g["params"]),
                      g["modules"][0] if g["modules"] else "")
    console.print(genes)
    if show_params:
        table = Table(title="parameters by canonical id")
        for col in ("name", "id", "shape", "dtype"):
            table.add_column(col)
        for row in summary["parameters"]:
            table.add_row(row["name"], row["id"], str(tuple(row["shape"])), row["dtype"])
        console.print(table)
    for key, label in (("checkpoint_missing", "model parameters absent from the checkpoint"),
                       ("unused_parameters", "parameters the forward pass never reads")):
        if summary[key]:
            console.print(f"{label}: {', '.join(summary[key][:8])}" + (" ..." if len(summary[key]) > 8 else ""))


def register(app: typer.Typer) -> None:
    @app.command("inspect")
    def inspect_command(
        model: str = typer.Argument(..., help="HF model folder (or a cached zoo name)."),
        against: str = typer.Option(None, "--against", help="A second model: report the first node where they differ."),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
        params: bool = typer.Option(True, "--params/--no-params", help="Print the parameter table."),
        registry: Path = typer.Option(None, "--registry", help="Also write the genes to this registry.json."),
        no_cache: bool = typer.Option(False, "--no-cache", help="Trace again even if a cached genome exists."),
        structural: bool = typer.Option(False, "--structural",
                                        help="Only the weaker structural signature (module types and parameter "
                                             "shapes, not the wiring), for models that cannot be traced."),
    ) -> None:
        """Trace MODEL to its canonical ATen op graph (from config.json on the meta device: no weight is read) and show its signature, parameter ids and genes.

        Two models with the same signature compute the same thing up to names, so their weights can be merged by canonical id. With --against, prints the first canonical node where the two differ, with the module on each side; exits 1 when they differ.

        Examples: graft inspect ./my-llama ; graft inspect ./a --against ./b ; graft inspect ./a --json
        """  # noqa: E501
        from graftkit.errors import TraceError
        from graftkit.genome.checkpoint import checkpoint_genome
        from graftkit.genome.diff import diff
        from graftkit.io import Checkpoint

        path = _resolve(model)
        if structural:
            from graftkit.genome.checkpoint import build_for_checkpoint
            from graftkit.genome.structural import structural_genome

            with Checkpoint.open(path) as ck:
                meta, _, _, _ = build_for_checkpoint(ck)
            found = structural_genome(meta)
            if as_json:
                typer.echo(json.dumps({"path": path, "signature": found.signature, "strength": found.strength}))
            else:
                typer.echo(f"{path}: {found.signature}  ({found.strength})")
            return
        try:
            cg = checkpoint_genome(path, use_cache=not no_cache)
        except TraceError as exc:
            fallback = getattr(exc, "fallback", None)
            if fallback is not None:
                typer.echo(f"structural signature ({fallback.strength}): {fallback.signature}", err=True)
            raise
        with Checkpoint.open(path) as ck:
            summary = _summary(cg, ck.architecture)
        if registry is not None:
            from graftkit.genome.genes import GeneRegistry

            reg = GeneRegistry.load(registry) if registry.is_file() else GeneRegistry()
            reg.add(cg.genome, Path(path).name)
            reg.save(registry)
        different = False
        if against is not None:
            other_path = _resolve(against)
            other = checkpoint_genome(other_path, use_cache=not no_cache)
            d = diff(cg.genome, other.genome)
            different = not d.equal
            summary["against"] = {"path": other_path, "signature": other.signature, "diff": d.to_json(),
                                  "text": d.describe(Path(path).name, Path(other_path).name)}
        if as_json:
            typer.echo(json.dumps(summary, indent=1))
        elif against is not None:
            typer.echo(f"{path}: {summary['signature']}\n{summary['against']['path']}: {summary['against']['signature']}")
            typer.echo(summary["against"]["text"])
        else:
            _print(summary, params)
        if different:
            # SystemExit, not typer.Exit: the status must survive the non-standalone click call in main()
            raise SystemExit(1)
