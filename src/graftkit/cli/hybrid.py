"""`graft hybrid train|eval|generate|stats`: gated SSM branches on a frozen decoder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from graftkit.progress import console

hybrid_app = typer.Typer(
    no_args_is_help=True,
    help=(
        "Hybrid models: chosen decoder layers of a frozen model get a selective-SSM branch (and optionally a "
        "memory bank), blended with attention by a learned gate; only the branches train.\n\n"
        "Example: graft hybrid train SmolLM2-135M-Instruct out/hy --layers 10,20 --steps 200 && "
        "graft hybrid eval out/hy && graft hybrid generate out/hy 'What is 37*41?' --tools"
    ),
)


def _layers(spec: str, num_layers: int | None = None) -> list[int]:
    from graftkit.errors import HybridError

    try:
        return [int(x) for x in spec.split(",") if x.strip()]
    except ValueError:
        raise HybridError(f"--layers {spec!r} is not a comma-separated list of integers", hint="e.g. --layers 0,5,10") from None


def _load(source: str) -> tuple[Any, Any, bool]:
    """(model, tokenizer, is_hybrid) from a hybrid folder, or a plain base (zoo name or HF folder)."""
    from graftkit.hybrid.wrapper import CONFIG_FILE, HybridModel, load_base

    path = Path(source)
    if (path / CONFIG_FILE).is_file():
        model = HybridModel.load(path)
        _, tokenizer = load_base(model.base_source) if model.base_source else (None, None)
        return model, tokenizer, True
    model, tokenizer = load_base(source)
    return model, tokenizer, False


@hybrid_app.command("train")
def train(
    base: str = typer.Argument(..., help="Base causal LM: a zoo name (SmolLM2-135M-Instruct, gemma-3-270m) or an HF folder."),
    out: Path = typer.Argument(..., help="Output folder: hybrid_config.json + hybrid.safetensors (branches only)."),
    layers: str = typer.Option("0", "--layers", help="Comma-separated decoder layer indices that get an SSM branch."),
    data: str = typer.Option("tiny_shakespeare", "--data", help="Language-modelling dataset of graftkit.data."),
    steps: int = typer.Option(100, "--steps"),
    seq_len: int = typer.Option(256, "--seq-len"),
    batch_size: int = typer.Option(4, "--batch-size"),
    lr: float = typer.Option(1e-3, "--lr"),
    warmup_steps: int = typer.Option(0, "--warmup-steps", help="Linear lr warmup over the first N steps (lr * (i+1)/N), then constant lr; steadies a fresh branch's first updates."),
    ssm: str = typer.Option("ssd", "--ssm", help="ssd (Mamba-2 style, one decay per head: the fastest scan, the default), selective (Mamba-style, one decay per channel and state) or s4d (diagonal, time-invariant)."),
    d_state: int = typer.Option(16, "--d-state"),
    memory_slots: int = typer.Option(0, "--memory-slots", help="Memory bank slots per layer (0: no memory)."),
    product_keys: bool = typer.Option(False, "--product-keys", help="Product-key memory (slots must be a square)."),
    gate_bias: float = typer.Option(-2.0, "--gate-bias", help="Initial gate logit: g = sigmoid(bias) at init."),
    seed: int = typer.Option(0, "--seed"),
    overwrite: bool = typer.Option(False, "--overwrite"),
) -> None:
    """Wrap BASE, train the branches on --data, save them. Example: graft hybrid train SmolLM2-135M-Instruct out/hy --layers 10,20"""
    import torch

    from graftkit.data import load_dataset
    from graftkit.errors import HybridError
    from graftkit.hybrid import HybridConfig, HybridModel, MemoryConfig, SSMConfig, load_base
    from graftkit.hybrid.trainer import TrainSettings, train_hybrid

    if out.exists() and not overwrite:
        raise HybridError(f"{out} exists", hint="pass --overwrite or choose another folder")
    torch.manual_seed(seed)
    config = HybridConfig(layers=_layers(layers), ssm=SSMConfig(kind=ssm, d_state=d_state), gate_bias=gate_bias,
                          memory=MemoryConfig(slots=memory_slots, product_keys=product_keys) if memory_slots else None)
    config.ssm.validate()
    settings = TrainSettings(steps=steps, seq_len=seq_len, batch_size=batch_size, lr=lr, seed=seed,
                             warmup_steps=warmup_steps)
    settings.validate()
    text = load_dataset(data).train.text
    model, tokenizer = load_base(base)
    hybrid = HybridModel(model, config, base_source=base)
    result = train_hybrid(hybrid, text, tokenizer, settings, save_to=out)
    console.print(f"trained {result.trainable:,} of {result.total:,} parameters ({100 * result.trainable_fraction:.2f}%); "
                  f"loss {result.losses[0]:.3f} -> {sum(result.losses[-10:]) / len(result.losses[-10:]):.3f}; saved {out}")


@hybrid_app.command("eval")
def evaluate(
    model_dir: Path = typer.Argument(..., help="A folder written by `graft hybrid train`."),
    data: str = typer.Option("tiny_shakespeare", "--data"),
    split: str = typer.Option("validation", "--split"),
    max_tokens: int = typer.Option(20000, "--max-tokens", help="Cap on evaluated tokens (CPU time grows with it)."),
    window: int = typer.Option(256, "--window"),
) -> None:
    """Held-out perplexity of the hybrid and of its base (branches bypassed), side by side."""
    from graftkit.data import load_dataset
    from graftkit.data.evaluate import perplexity
    from graftkit.hybrid.monitor import bypass_branches

    model, tokenizer, is_hybrid = _load(str(model_dir))
    text = getattr(load_dataset(data), split).text
    hy = perplexity(model, text, tokenizer, window=window, max_tokens=max_tokens, description="hybrid perplexity")
    line = {"hybrid_perplexity": hy.perplexity, "tokens": hy.n}
    if is_hybrid:
        with bypass_branches(model):
            line["base_perplexity"] = perplexity(model, text, tokenizer, window=window, max_tokens=max_tokens,
                                                 description="base perplexity").perplexity
    console.print_json(json.dumps(line))


@hybrid_app.command("generate")
def generate(
    source: str = typer.Argument(..., help="A hybrid folder, a zoo name or an HF folder."),
    prompt: str = typer.Argument(..., help="Prompt text."),
    tools: bool = typer.Option(False, "--tools", help="Run tool calls (<tool:NAME>ARG</tool>) through the built-in calculator server."),
    server: list[str] = typer.Option([], "--server", help="Extra MCP server command (stdio), repeatable."),
    max_new_tokens: int = typer.Option(64, "--max-new-tokens"),
    tool_timeout: float = typer.Option(10.0, "--tool-timeout", help="Seconds before a tool call counts as hung."),
) -> None:
    """Greedy generation; with --tools, tool calls in the text run through MCP and their results are injected."""
    from graftkit.hybrid.tools.client import CALCULATOR_COMMAND
    from graftkit.hybrid.tools.generate import generate_with_tools

    model, tokenizer, _ = _load(source)
    servers: list[Any] = ([CALCULATOR_COMMAND] if tools else []) + list(server)
    out = generate_with_tools(model, prompt, tokenizer, servers, max_new_tokens=max_new_tokens, tool_timeout=tool_timeout)
    console.print(prompt + out.text, markup=False, highlight=False)
    for call in out.calls:
        console.print(f"[dim]tool {call.name}({call.argument!r}) -> {'error: ' if call.error else ''}{call.result}[/]")


@hybrid_app.command("stats")
def stats(
    model_dir: Path = typer.Argument(..., help="A folder written by `graft hybrid train`."),
    texts: list[str] = typer.Option([], "--text", help="Probe text (repeatable); default: a few built-in ones per category."),
    heatmap: Path | None = typer.Option(None, "--heatmap", help="Write the memory-usage heatmap PNG here."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the full report as JSON here."),
) -> None:
    """Gate statistics per layer and category, memory usage and a health report."""
    from graftkit.hybrid.monitor import PROBE_TEXTS, gate_statistics, health_report, memory_heatmap, memory_usage

    model, tokenizer, _ = _load(str(model_dir))
    groups = {"given": texts} if texts else PROBE_TEXTS
    flat = [t for v in groups.values() for t in v]
    report = {"gates": gate_statistics(model, tokenizer, groups), "health": health_report(model, tokenizer, flat)}
    for i, s in report["gates"]["layers"].items():
        console.print(f"layer {i}: gate mean {s['mean']:.4f} std {s['std']:.4f} (min {s['min']:.4f}, max {s['max']:.4f})")
    for cat, layers in report["gates"]["categories"].items():
        console.print(f"  {cat}: " + ", ".join(f"L{i} {v:.4f}" for i, v in layers.items()))
    console.print(f"healthy: {report['health']['healthy']}; trainable fraction "
                  f"{100 * model.parameter_counts()['trainable_fraction']:.2f}%")
    if heatmap is not None:
        memory_heatmap(memory_usage(model, tokenizer, flat), heatmap)
        console.print(f"wrote {heatmap}")
    if json_out is not None:
        json_out.write_text(json.dumps(report, indent=2, default=str))


def register(app: typer.Typer) -> None:
    app.add_typer(hybrid_app, name="hybrid")
