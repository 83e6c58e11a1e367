"""`graft similarity A B --data sst2`: layer-by-layer similarity of two text models."""

from __future__ import annotations

from pathlib import Path

import typer

from graftkit.errors import DataError


def _texts(data: str, split: str) -> list[str]:
    """Sentences of a named dataset split, or the lines of a text file."""
    path = Path(data).expanduser()
    if path.is_file():
        lines = [line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines()]
        return [line for line in lines if line]
    from graftkit.data import load_dataset

    dataset = load_dataset(data)
    if dataset.kind not in ("text-classification", "text-pair-classification"):
        raise DataError(f"dataset {data!r} is {dataset.kind}, similarity of text models needs sentences",
                        hint="use a text dataset such as sst2, or a .txt file with one sentence per line")
    if split not in dataset.splits:
        raise DataError(f"dataset {data!r} has no split {split!r}",
                        hint=f"choose one of: {', '.join(dataset.splits)}")
    return list(dataset.splits[split].texts or [])


def register(app: typer.Typer) -> None:
    @app.command("similarity")
    def similarity(
        model_a: str = typer.Argument(..., help="HF model folder or zoo name (rows of the matrix)."),
        model_b: str = typer.Argument(..., help="HF model folder or zoo name (columns); may equal A."),
        data: str = typer.Option("sst2", "--data", "-d", help="Dataset name (graft data) or a .txt file, one sentence per line."),
        split: str = typer.Option("test", "--split", help="Dataset split to draw sentences from."),
        metric: str = typer.Option("linear_cka", "--metric", "-m",
                                   help="linear_cka, rbf_cka, debiased_cka, minibatch_cka, cca, svcca, pwcca, rsa, rsa_pearson, procrustes."),
        n: int = typer.Option(500, "--n", help="Number of sentences (sampled with --seed)."),
        pooling: str = typer.Option("mean", "--pooling", help="Token pooling: mean, first, last, or all (same tokenizer only)."),
        batch_size: int = typer.Option(32, "--batch-size", help="Sentences per forward pass."),
        max_length: int = typer.Option(128, "--max-length", help="Tokens kept per sentence."),
        seed: int = typer.Option(0, "--seed", help="Seed of the sentence sample."),
        out: Path = typer.Option(None, "--out", "-o", help="Output folder (default: similarity-A-vs-B)."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace the output folder if it exists."),
    ) -> None:
        """Compare every layer of model A with every layer of model B on the same sentences.

        Both models read the same sentences; each transformer block's output is pooled
        over tokens and compared with a similarity metric (linear CKA by default: 1 =
        the same representation up to rotation and scale). Works across widths and
        depths (MiniLM 384x6 vs mpnet 768x12). Writes OUT/similarity.json (matrix,
        layer names, best match per layer, timings) and OUT/heatmap.png.

        Example: graft similarity all-MiniLM-L6-v2 paraphrase-MiniLM-L3-v2 --data sst2 --n 500
        """
        from graftkit.io.atomic import atomic_directory
        from graftkit.similarity.matrix import layer_similarity
        from graftkit.similarity.metrics import get_metric

        get_metric(metric)  # fail on a typo before loading anything
        texts = _texts(data, split)
        target = out or Path(f"similarity-{Path(model_a).name}-vs-{Path(model_b).name}")
        if target.exists() and not overwrite:
            raise DataError(f"output folder {target} already exists", hint="pass --overwrite or another --out")
        result = layer_similarity(model_a, model_b, texts, metric, n=n, pooling=pooling,
                                  batch_size=batch_size, max_length=max_length, seed=seed)
        result.details["data"] = {"dataset": data, "split": split}
        with atomic_directory(target, overwrite=overwrite) as tmp:
            result.save_json(tmp / "similarity.json")
            result.save_heatmap(tmp / "heatmap.png")
        typer.echo(f"{result.metric} of {result.model_a} ({len(result.layers_a)} layers) vs "
                   f"{result.model_b} ({len(result.layers_b)} layers) on {result.n} sentences of {data}:")
        for layer, row in zip(result.layers_a, result.matrix):
            j = int(row.argmax())
            typer.echo(f"  {layer:>12} -> {result.layers_b[j]:<12} {float(row[j]):.3f}")
        typer.echo(f"wrote {target}/similarity.json and {target}/heatmap.png")
