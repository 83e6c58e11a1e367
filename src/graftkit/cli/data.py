"""`graft finetune BASE --task TASK OUT` and `graft data list|show`.

Fine-tuning makes the task experts that merging, alignment and similarity work on;
`graft data` shows which datasets exist, where they are read from and what they hold.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

data_app = typer.Typer(
    help=(
        "Task datasets: the shared real ones (read from $GRAFTKIT_DATA or ../shared/datasets) and two "
        "synthetic ones that need no files.\n\n"
        "Examples:\n\n"
        "  graft data list\n\n"
        "  graft data show sst2"
    ),
    no_args_is_help=True,
)


@data_app.command("list")
def list_command(
    data: Optional[Path] = typer.Option(None, "--data", help="Data folder (default: $GRAFTKIT_DATA or ../shared/datasets)."),
) -> None:
    """List every dataset: name, kind, classes, and whether its files are present."""
    from rich.table import Table

    from graftkit.data import data_root, list_datasets
    from graftkit.errors import DataError
    from graftkit.progress import console

    try:
        root: Path | None = data_root(data)
    except DataError:
        root = None
    table = Table(title=f"datasets (data folder: {root or 'not found; set GRAFTKIT_DATA'})")
    for column in ("name", "kind", "description", "files"):
        table.add_column(column)
    for entry in list_datasets():
        if not entry.needs_files:
            present = "generated"
        else:
            present = "yes" if root is not None and entry.files_present(root) else "missing"
        table.add_row(entry.name, entry.kind, entry.description, present)
    console.print(table)


@data_app.command("show")
def show_command(
    name: str = typer.Argument(..., help="Dataset name, e.g. sst2, mnist, synthetic-topic."),
    examples: int = typer.Option(3, "--examples", "-n", help="How many training examples to print."),
    data: Optional[Path] = typer.Option(None, "--data", help="Data folder (default: $GRAFTKIT_DATA or ../shared/datasets)."),
) -> None:
    """Show a dataset's splits, label names, class counts and a few examples."""
    from graftkit.data import load_dataset
    from graftkit.progress import console

    ds = load_dataset(name, root=data)
    console.print(f"[bold]{ds.name}[/] ({ds.kind}): {ds.description}", highlight=False)
    for split_name, split in ds.splits.items():
        unit = "characters" if ds.kind == "language-modeling" else "examples"
        counts = ""
        if split.labels is not None and ds.label_names:
            counts = ", ".join(f"{ds.label_names[k]}={v}" for k, v in split.label_counts().items())
        console.print(f"  {split_name:<10} {len(split):>8} {unit}  {counts}", highlight=False)
    for note in ds.notes:
        console.print(f"  note: {note}", highlight=False)
    train = ds.splits.get("train") or next(iter(ds.splits.values()))
    if ds.kind == "language-modeling":
        console.print(repr(train.text[:300]), highlight=False)
    elif ds.kind == "image-classification":
        console.print(f"  images {tuple(train.images.shape)} float32 in [0, 1]", highlight=False)
    else:
        for i in range(min(examples, len(train))):
            pair = f" || {train.text_pairs[i]}" if train.text_pairs is not None else ""
            console.print(f"  [{ds.label_names[train.labels[i]]}] {train.texts[i]}{pair}", highlight=False, markup=False)


def finetune_command(
    base: str = typer.Argument(..., help="Base model: a folder, a zoo name (all-MiniLM-L6-v2, SmolLM2-135M-Instruct, ...) or vit-tiny / vit-small."),
    out: Path = typer.Argument(..., help="Output folder (written atomically; must not exist unless --overwrite)."),
    task: str = typer.Option(..., "--task", "-t", help="Dataset name (graft data list) or a .csv/.jsonl file with text,label columns."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Optimizer steps (default 300 text, 200 causal LM, 1500 ViT)."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Peak learning rate (linear warm-up then decay)."),
    max_length: Optional[int] = typer.Option(None, "--max-length", help="Tokens per example or LM window (default 64)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Examples per step (default 16 text, 8 causal LM, 64 ViT)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the head init, data order and LM windows."),
    val: Optional[int] = typer.Option(None, "--val", help="Validation examples (tokens for LM) scored at the end; 0 = all."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Torch threads (default: the idle cores now)."),
    data: Optional[Path] = typer.Option(None, "--data", help="Data folder (default: $GRAFTKIT_DATA or ../shared/datasets)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it exists (only once the new one is complete)."),
) -> None:
    """Fine-tune BASE on a task and save an HF-loadable expert with its validation score.

    An encoder gets a linear head (AutoModelForSequenceClassification loads OUT); a causal LM
    continues on text (tiny_shakespeare) or learns label words (sst2); vit-tiny trains from a
    config on images (mnist, fashion_mnist). OUT/graftkit_finetune.json records settings and score.

    Examples:

      graft finetune all-MiniLM-L6-v2 --task synthetic-sentiment experts/sentiment

      graft finetune all-MiniLM-L6-v2 --task sst2 experts/sst2 --steps 300 --seed 1

      graft finetune SmolLM2-135M-Instruct --task tiny_shakespeare experts/bard --steps 100

      graft finetune vit-tiny --task mnist experts/mnist-vit
    """
    from graftkit.data.finetune import FinetuneSettings, finetune
    from graftkit.progress import console

    settings = FinetuneSettings(steps=steps, lr=lr, batch_size=batch_size, max_length=max_length, seed=seed,
                                val_size=val, threads=threads)
    result = finetune(base, task, out, settings, overwrite=overwrite, data_root=data)
    console.print(result.summary(), highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
    app.command("finetune")(finetune_command)
