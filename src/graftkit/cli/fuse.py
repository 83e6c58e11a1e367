"""`graft fuse CONFIG OUT`, `graft fuse train`, `graft fuse eval`, `graft fuse export`, `graft push`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

from graftkit.errors import CompositionError, DataError
from graftkit.progress import console


class _FuseGroup(TyperGroup):
    """`graft fuse CONFIG OUT` means `graft fuse build CONFIG OUT`; named subcommands win."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["build", *args]
        return super().parse_args(ctx, args)


fuse_app = typer.Typer(
    cls=_FuseGroup,
    no_args_is_help=True,
    help=(
        "Fuse models at run time: layers of several models become experts behind adapters and a router (MoL).\n\n"
        "graft fuse CONFIG OUT builds and checks the fused model; `graft fuse train` trains its adapters and routers "
        "(experts stay frozen); `graft fuse eval` scores it; `graft fuse export` writes a static HF model when the "
        "experts share one architecture.\n\nExample: graft fuse fuse.yaml out/fused && "
        "graft fuse train out/fused out/trained --data tiny_shakespeare --steps 200"
    ),
)


def _runtime(source: str) -> Any:
    """A runtime from a YAML config or a checkpoint folder (adapters loaded)."""
    from graftkit.compose import MoLRuntime
    from graftkit.compose.checkpoint import CONFIG_FILE

    path = Path(source)
    if path.is_dir():
        if not (path / CONFIG_FILE).is_file():
            raise CompositionError(f"{path} holds no {CONFIG_FILE}", hint="give a MoL YAML config or a `graft fuse` output folder")
        return MoLRuntime.from_checkpoint(path)
    return MoLRuntime(path if path.suffix in (".yaml", ".yml") else source)


def _probe(runtime: Any, texts: list[str]) -> dict[str, Any]:
    """What the fused model actually does on a few sentences: per-layer change of the hidden state, routing."""
    import torch

    tok = runtime.tokenizer
    if tok is None:
        raise CompositionError("the embedding model has no tokenizer to probe with", hint="use model folders with tokenizer files")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    enc = tok(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")
    with torch.no_grad():
        out = runtime(enc["input_ids"], enc["attention_mask"], return_router_stats=True, output_hidden_states=True)
    h = out.hidden_states
    change = [float((h[i + 1] - h[i]).norm() / h[i].norm().clamp_min(1e-12)) for i in range(len(h) - 1)]
    identity = [i for i, c in enumerate(change) if c < 1e-6]
    if identity:
        raise CompositionError(f"fused layers {identity} returned their input unchanged on the probe sentences",
                               hint="this is a bug; run with --debug and report it with the config")
    return {"relative_change_per_layer": [round(c, 4) for c in change], "router": out.router_stats,
            "finite": bool(torch.isfinite(out.last_hidden_state).all())}


_PROBES = ["The quick brown fox jumps over the lazy dog.", "Fusion layers must change the hidden state."]


@fuse_app.command("build")
def build(
    config: Path = typer.Argument(..., help="MoL YAML config (models, layers, adapter_type, router_type)."),
    out: Path = typer.Argument(..., help="Output folder: mol_config.json + mol_weights.safetensors (identity adapters)."),
    calibrate: bool = typer.Option(False, "--calibrate", help="Least-squares init of adapters between different widths from probe sentences."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it exists."),
) -> None:
    """Build a fused model from CONFIG, check it on probe sentences, save it to OUT.

    Validation reads configs and tokenizer files only (layers located, indices in range,
    tokenizers compatible) before any weights load. The check runs two sentences through
    the fused model and fails if a fused layer returns its input unchanged.

    Example: graft fuse fuse.yaml out/fused
    """
    import json

    if out.exists() and not overwrite:
        raise CompositionError(f"{out} exists", hint="pass --overwrite or choose another folder")
    runtime = _runtime(str(config))
    console.print(runtime.describe())
    if calibrate:
        tok = runtime.tokenizer
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        enc = tok(_PROBES * 4, padding=True, return_tensors="pt")
        residuals = runtime.calibrate(enc["input_ids"], enc["attention_mask"])
        console.print(f"least-squares adapter init, relative residuals: {residuals}")
    report = _probe(runtime, _PROBES)
    runtime.save_checkpoint(out)
    (out / "probe.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    console.print(f"fused layers change the hidden state by {report['relative_change_per_layer']} (relative); saved {out}")


def _load_data(name: str, split: str, n: int | None, seed: int) -> Any:
    import random

    from graftkit.data import load_dataset

    dataset = load_dataset(name)
    part = getattr(dataset, split, None)
    if part is None:
        raise DataError(f"dataset {name!r} has no {split!r} split", hint="use train, validation or test")
    if part.text is not None:
        return dataset, part if n is None else type(part)(part.name, text=part.text[:n])
    if n is not None and n < len(part):
        part = part.subset(sorted(random.Random(seed).sample(range(len(part)), n)))
    return dataset, part


@fuse_app.command("train")
def train(
    source: str = typer.Argument(..., help="MoL YAML config or a `graft fuse` output folder."),
    out: Path = typer.Argument(..., help="Folder for the trained checkpoint."),
    data: str = typer.Option(..., "--data", "-d", help="Dataset (graft data): language modelling -> next-token loss, classification -> task head."),
    n: int = typer.Option(None, "--n", help="Examples (characters for running text) used for training."),
    steps: int = typer.Option(None, "--steps", help="Stop after this many optimizer steps."),
    epochs: int = typer.Option(1, "--epochs"),
    batch_size: int = typer.Option(8, "--batch-size"),
    max_length: int = typer.Option(128, "--max-length"),
    adapter_lr: float = typer.Option(1e-3, "--adapter-lr", help="Learning rate of the adapters."),
    router_lr: float = typer.Option(1e-4, "--router-lr", help="Learning rate of the routers (usually smaller)."),
    gradient_checkpointing: bool = typer.Option(False, "--gradient-checkpointing", help="Recompute fused layers in backward (less memory)."),
    eval_n: int = typer.Option(200, "--eval-n", help="Validation examples (characters for text) scored after training."),
    seed: int = typer.Option(0, "--seed"),
    overwrite: bool = typer.Option(False, "--overwrite"),
) -> None:
    """Train the adapters and routers of a fused model (experts frozen) and save a safetensors checkpoint.

    Example: graft fuse train out/fused out/trained --data sst2 --n 2000 --steps 300
    """
    import json

    from graftkit.compose import MoLTrainer, TrainingConfig

    if out.exists() and not overwrite:
        raise CompositionError(f"{out} exists", hint="pass --overwrite or choose another folder")
    runtime = _runtime(source)
    dataset, part = _load_data(data, "train", n, seed)
    config = TrainingConfig(adapter_lr=adapter_lr, router_lr=router_lr, batch_size=batch_size, max_length=max_length,
                            epochs=epochs, max_steps=steps, gradient_checkpointing=gradient_checkpointing, seed=seed)
    classify = part.text is None
    trainer = MoLTrainer(runtime, config, num_labels=len(dataset.label_names) if classify else None)
    history = trainer.train_classification(part) if classify else trainer.train_lm(part)
    _, valid = _load_data(data, "validation", eval_n, seed)
    result = trainer.evaluate(valid)
    trainer.save_checkpoint(out)
    (out / "training.json").write_text(json.dumps({"data": data, "steps": len(history), "final_loss": history[-1]["loss"],
                                                   "validation": result.to_dict()}, indent=2) + "\n", encoding="utf-8")
    console.print(f"trained {len(history)} steps (last loss {history[-1]['loss']:.4f}); validation: {result}; saved {out}")


@fuse_app.command("eval")
def evaluate(
    source: str = typer.Argument(..., help="A `graft fuse` / `graft fuse train` output folder or a MoL YAML config."),
    data: str = typer.Option(..., "--data", "-d", help="Dataset: running text -> perplexity; labelled -> accuracy (needs a trained task head)."),
    split: str = typer.Option("validation", "--split"),
    n: int = typer.Option(500, "--n", help="Examples (characters for text) scored."),
) -> None:
    """Score a fused model with graftkit's evaluators, exactly as its experts are scored.

    Example: graft fuse eval out/trained --data tiny_shakespeare --n 20000
    """
    from graftkit.compose import MoLTrainer

    runtime = _runtime(source)
    dataset, part = _load_data(data, split, n, 0)
    head = part.text is None and Path(source).is_dir()
    trainer = MoLTrainer(runtime, num_labels=len(dataset.label_names) if head else None)
    if head:
        trainer.load_checkpoint(source)
    console.print(f"{data} {split}: {trainer.evaluate(part)}")


@fuse_app.command("export")
def export(
    source: str = typer.Argument(..., help="A `graft fuse` output folder (same-architecture experts)."),
    out: Path = typer.Argument(..., help="Output HF model folder."),
    align: bool = typer.Option(False, "--align", help="Permute each expert onto the embedding model's neurons first (independently trained experts)."),
    overwrite: bool = typer.Option(False, "--overwrite"),
) -> None:
    """Write a fused model of same-architecture experts as one static HF model (weights averaged per layer by router weight).

    Reports what the static model loses against the runtime (max logit difference, KL) and
    which trained adapters could not be exported.

    Example: graft fuse export out/trained out/static
    """
    from graftkit.compose.export import export_static

    runtime = _runtime(source)
    tok = runtime.tokenizer
    enc = None
    if tok is not None:
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        enc = tok(_PROBES, padding=True, return_tensors="pt")
    report = export_static(runtime, out, input_ids=None if enc is None else enc["input_ids"],
                           attention_mask=None if enc is None else enc["attention_mask"], align=align, overwrite=overwrite)
    console.print(report.describe())


def register(app: typer.Typer) -> None:
    app.add_typer(fuse_app, name="fuse")

    @app.command("push")
    def push_cmd(
        folder: Path = typer.Argument(..., help="Model folder to publish (an export or a fuse checkpoint)."),
        target: str = typer.Argument(..., help="Hub repo id (user/name), file:///path or a local path (a git repository)."),
        message: str = typer.Option("Upload with graftkit", "--message", "-m"),
        private: bool = typer.Option(False, "--private", help="Create the Hub repository as private."),
        endpoint: str = typer.Option(None, "--endpoint", help="Hub endpoint (default: huggingface.co or $HF_ENDPOINT)."),
    ) -> None:
        """Publish a model folder to the Hugging Face Hub (huggingface_hub's HfApi) or commit it into a local git repository.

        Example: graft push out/static me/fused-smollm   |   graft push out/static file:///srv/models/fused
        """
        from graftkit.compose.push import push

        result = push(folder, target, message=message, private=private, endpoint=endpoint)
        console.print(f"pushed {len(result.files)} files to {result.target} ({result.revision})")
