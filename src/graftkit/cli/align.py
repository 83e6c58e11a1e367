"""`graft align A B OUT` and `graft interpolate A B --data ...`: neuron alignment from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer


def _open_pair(path_a: Path, path_b: Path):
    from graftkit.errors import AlignmentError
    from graftkit.io import Checkpoint

    ck_a, ck_b = Checkpoint.open(path_a), Checkpoint.open(path_b)
    for ck, path in ((ck_a, path_a), (ck_b, path_b)):
        if ck.config is None:
            raise AlignmentError(f"{path} has no config.json", hint="pass HF model folders")
    type_a, type_b = ck_a.config.get("model_type"), ck_b.config.get("model_type")
    if type_a != type_b:
        raise AlignmentError(
            f"{path_a} is a {type_a} model and {path_b} a {type_b} model: permutation matching needs one architecture",
            hint="align two models of the same architecture and size",
        )
    return ck_a, ck_b


def _float_tensors(ck) -> dict[str, Any]:
    return {n: ck[n].float() for n in ck.names() if ck.dtype(n).is_floating_point}


def _text_batches(tokenizer, texts: list[str], size: int = 32, max_length: int = 128) -> list[dict]:
    return [dict(tokenizer(texts[i:i + size], padding=True, truncation=True, max_length=max_length,
                           return_tensors="pt")) for i in range(0, len(texts), size)]


def _load_texts(data: str, split: str, n: int) -> tuple[list[str], list[int] | None]:
    from graftkit.data import load_dataset
    from graftkit.errors import DataError

    ds = load_dataset(data)
    part = ds.split(split)
    if part.texts is None:
        raise DataError(f"dataset {data!r} has no texts", hint="choose a text dataset such as sst2")
    if part.text_pairs is not None:
        raise DataError(f"dataset {data!r} holds text pairs; graft interpolate takes single-text tasks",
                        hint="choose a single-text dataset such as sst2")
    return list(part.texts[:n]), (list(part.labels[:n]) if part.labels is not None else None)


def align_command(
    model_a: Path = typer.Argument(..., help="Reference model folder (its basis is kept)."),
    model_b: Path = typer.Argument(..., help="Model folder to permute into A's basis."),
    out: Path = typer.Argument(..., help="Output folder: B's weights in A's basis, B's config and tokenizer."),
    method: str = typer.Option("weight", "--method", help="weight (no data needed) or activation (needs --data)."),
    data: str = typer.Option(None, "--data", help="Dataset for activation matching, e.g. sst2."),
    n: int = typer.Option(256, "--n", help="Number of texts for activation matching."),
    keep_residual: bool = typer.Option(
        False, "--keep-residual", help="Leave the residual stream in place (hidden states keep B's basis)."),
    seed: int = typer.Option(0, "--seed", help="Seed of weight matching's random group order."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it exists."),
) -> None:
    """Permute B's neurons (residual stream, attention heads, MLP units) to line up with A's.

    The written model computes exactly what B computes (checked on random tokens after
    writing); only the order of its units changes, so that averaging it with A (or
    comparing features) pairs like with like. Supports the bert and llama families.

    Example: graft align experts/sst2-a experts/sst2-b experts/sst2-b-aligned
    """
    import torch

    from graftkit.align import apply_permutation, spec_from_config, state_tensors, weight_matching
    from graftkit.errors import AlignmentError, ConfigError
    from graftkit.io import CheckpointWriter
    from graftkit.progress import status

    if method not in ("weight", "activation"):
        raise ConfigError(f"unknown --method {method!r}", hint="use weight or activation")
    if method == "activation" and not data:
        raise ConfigError("--method activation needs --data (e.g. --data sst2)", hint="or use --method weight")
    ck_a, ck_b = _open_pair(model_a, model_b)
    pa, pb = _float_tensors(ck_a), _float_tensors(ck_b)
    spec = spec_from_config(pa, ck_a.config, residual=not keep_residual)
    if method == "weight":
        result = weight_matching(spec, pa, pb, seed=seed)
    else:
        from transformers import AutoModel, AutoTokenizer

        from graftkit.align.activation_matching import activation_matching

        if ck_a.folder is None:
            raise AlignmentError(f"{model_a} is not an HF folder", hint="activation matching loads the models")
        ma, mb = AutoModel.from_pretrained(model_a).eval(), AutoModel.from_pretrained(model_b).eval()
        spec_m = spec_from_config(state_tensors(ma), ck_a.config, residual=not keep_residual)
        texts, _ = _load_texts(data, "train", n)
        tok = AutoTokenizer.from_pretrained(model_a)
        result = activation_matching(spec_m, ma, mb, _text_batches(tok, texts))
    aligned = apply_permutation(spec, result.perm, pb)
    dist = lambda p: sum(float((pa[k] - p[k]).pow(2).sum()) for k in pa) ** 0.5  # noqa: E731
    before, after = dist(pb), dist(aligned)
    with CheckpointWriter(out, overwrite=overwrite) as writer:
        for name in ck_b.names():
            tensor = ck_b[name]
            writer.write(name, aligned[name].to(tensor.dtype) if name in aligned else tensor)
        if ck_b.folder is not None:
            writer.copy_auxiliary(ck_b.folder)
        report = {"reference": str(model_a), "aligned": str(model_b), "method": method,
                  "iterations": result.iterations, "converged": result.converged,
                  "seconds": round(result.seconds, 3), "distance_to_A_before": before,
                  "distance_to_A_after": after, "residual_permuted": not keep_residual}
        writer.write_json("alignment.json", report)
    diff = _check_function(model_b, out, spec, result.perm)
    status(
        f"aligned {model_b} to {model_a} by {method} matching ({result.iterations} sweep(s), {result.seconds:.2f} s): "
        f"weight distance to A {before:.3f} -> {after:.3f}; function check max |diff| "
        f"{'skipped (no loadable model)' if diff is None else f'{diff:.2e}'}; written to {out}"
    )
    if diff is not None and diff > 1e-3:
        raise AlignmentError(f"the aligned model in {out} does not compute what {model_b} computes (max diff {diff:.2e})",
                             hint="this is a bug in the permutation spec for this architecture; please report it")
    typer.echo(str(out))


def _check_function(model_b: Path, out: Path, spec, perm) -> float | None:
    """Max |output difference| between B and aligned B on random tokens (hidden states un-permuted)."""
    import torch
    import transformers
    from transformers import AutoModel

    transformers.logging.set_verbosity_error()  # load reports of head-less loads are expected here
    try:
        mb = AutoModel.from_pretrained(model_b).eval()
        mo = AutoModel.from_pretrained(out).eval()
    except Exception:  # noqa: BLE001 - a folder transformers cannot load is still a valid output
        return None
    vocab = mb.config.vocab_size
    ids = torch.randint(0, vocab, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        hb = mb(input_ids=ids).last_hidden_state
        ho = mo(input_ids=ids).last_hidden_state
    if "R" in perm:
        hb = hb[..., perm["R"]]
    return float((hb - ho).abs().max())


def interpolate_command(
    model_a: Path = typer.Argument(..., help="Model folder at alpha = 0 (a *ForSequenceClassification model)."),
    model_b: Path = typer.Argument(..., help="Model folder at alpha = 1."),
    data: str = typer.Option(..., "--data", help="Text classification dataset, e.g. sst2."),
    steps: int = typer.Option(11, "--steps", help="Number of evenly spaced alphas from 0 to 1."),
    split: str = typer.Option("validation", "--split", help="Split to evaluate on."),
    n: int = typer.Option(500, "--n", help="Evaluate on the first N examples."),
    align: str = typer.Option("none", "--align", help="Align B to A first: none, weight."),
    plot: Path = typer.Option(Path("interpolation.png"), "--plot", help="Where to write the PNG of the curve."),
    json_out: Path = typer.Option(None, "--json", help="Also write the numbers as JSON here."),
) -> None:
    """Loss and accuracy along the straight line from A to B, and the loss barrier.

    Barrier = max over alpha of L((1 - alpha) A + alpha B) - mean(L(A), L(B)); near zero
    means A and B sit in one linearly connected basin (so averaging them works).

    Example: graft interpolate experts/sst2-a experts/sst2-b --data sst2 --steps 11 --align weight
    """
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from graftkit.align import apply_permutation, spec_for, state_tensors, weight_matching
    from graftkit.align.interpolate import evaluate_classifier, interpolation_curve, plot_curves
    from graftkit.errors import ConfigError, DataError

    if align not in ("none", "weight"):
        raise ConfigError(f"unknown --align {align!r}", hint="use none or weight")
    _open_pair(model_a, model_b)
    texts, labels = _load_texts(data, split, n)
    if labels is None:
        raise DataError(f"split {split!r} of {data!r} has no labels", hint="choose a labelled split (--split)")
    ma = AutoModelForSequenceClassification.from_pretrained(model_a).eval()
    mb = AutoModelForSequenceClassification.from_pretrained(model_b).eval()
    num = ma.config.num_labels
    if max(labels) >= num:
        raise DataError(f"{data} has labels up to {max(labels)} but {model_a} predicts {num} classes",
                        hint="evaluate on the task the models were fine-tuned for")
    tok = AutoTokenizer.from_pretrained(model_a)
    enc = _text_batches(tok, texts)
    batches, start = [], 0
    for e in enc:
        size = e["input_ids"].shape[0]
        batches.append((e, torch.tensor(labels[start:start + size])))
        start += size
    if align == "weight":
        spec = spec_for(ma)
        result = weight_matching(spec, state_tensors(ma), state_tensors(mb))
        mb.load_state_dict(apply_permutation(spec, result.perm, state_tensors(mb)), strict=False)
    curve = interpolation_curve(ma, mb, lambda m: evaluate_classifier(m, batches), steps=steps,
                                label=f"align={align}")
    plot_curves([curve], plot, f"{model_a.name} -> {model_b.name} on {data} ({split}, {len(texts)} examples)")
    typer.echo(f"{'alpha':>6} {'loss':>8} {'accuracy':>9}")
    for a, loss, acc in zip(curve.alphas, curve.losses, curve.accuracies):
        typer.echo(f"{a:6.2f} {loss:8.4f} {acc:9.4f}")
    typer.echo(f"barrier {curve.barrier:.4f} (max loss {max(curve.losses):.4f} - mean endpoint loss "
               f"{0.5 * (curve.losses[0] + curve.losses[-1]):.4f}); plot: {plot}")
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps({"model_a": str(model_a), "model_b": str(model_b), "data": data,
                                        "split": split, "n": len(texts), **curve.to_dict()}, indent=2))


def register(app: typer.Typer) -> None:
    app.command("align")(align_command)
    app.command("interpolate")(interpolate_command)
