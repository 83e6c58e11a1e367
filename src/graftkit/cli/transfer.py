"""`graft extract-lora` and `graft transfer fingerprint|generate|apply`.

Extraction turns a fine-tune into a PEFT LoRA against its base; transfer generates a
LoRA for another model (subspace mapping or label-free distillation), checks it on
the target, and applies it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

transfer_app = typer.Typer(
    help=(
        "Capability transfer between models as LoRA adapters.\n\n"
        "Examples:\n\n"
        "  graft transfer generate experts/sst2 paraphrase-MiniLM-L3-v2 out/l3-sst2 --method distill --texts sst2\n\n"
        "  graft transfer apply paraphrase-MiniLM-L3-v2 out/l3-sst2 out/l3-merged\n\n"
        "  graft transfer fingerprint sst2=experts/sst2@all-MiniLM-L6-v2 trec=experts/trec@all-MiniLM-L6-v2 --png fp.png"
    ),
    no_args_is_help=True,
)


def extract_lora_command(
    finetuned: Path = typer.Argument(..., help="The fine-tuned model (HF folder or weight file)."),
    base: Path = typer.Argument(..., help="The base it was fine-tuned from (same architecture)."),
    out: Path = typer.Argument(..., help="Output PEFT adapter folder (adapter_config.json + adapter_model.safetensors)."),
    rank: int = typer.Option(16, "--rank", "-r", help="Largest rank per module."),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="Also drop singular values below this fraction of the largest (per module)."),
    embeddings: bool = typer.Option(False, "--embeddings", help="Also extract embedding matrices (PEFT lora_embedding_A/B)."),
    norms: bool = typer.Option(False, "--norms", help="Copy changed norm layers whole (PEFT modules_to_save)."),
    modules: Optional[list[str]] = typer.Option(None, "--module", "-m", help="Regex on module names to extract (repeatable); each must match."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it exists."),
) -> None:
    """Extract FINETUNED - BASE as a LoRA adapter: truncated SVD of each module's delta.

    The error of each module (||delta - BA|| / ||delta||) is reported; tensors the base
    lacks (a task head) are listed as skipped. Load the result with
    `PeftModel.from_pretrained(AutoModel.from_pretrained(BASE), OUT)`.

    Example: graft extract-lora experts/sst2 all-MiniLM-L6-v2 out/sst2-lora --rank 16
    """
    from graftkit.progress import console
    from graftkit.transfer.lora_extract import extract_lora
    from graftkit.zoo import get as zoo_get

    base_path = base if base.exists() else Path(zoo_get(str(base)))
    _, report = extract_lora(finetuned, base_path, out, rank=rank, threshold=threshold, embeddings=embeddings,
                             norms=norms, modules=modules, overwrite=overwrite)
    worst = max(report.modules, key=lambda m: m.relative_error)
    console.print(report.summary())
    console.print(f"worst module: {worst.name} rank {worst.rank} relative error {worst.relative_error:.4f}")
    for name, why in list(report.skipped.items())[:10]:
        console.print(f"skipped {name}: {why}")


def _texts(spec: str, n: int, offset: int = 0) -> list[str]:
    """Unlabeled texts: a dataset name (training texts; labels are not read) or a .txt file, one text per line."""
    from graftkit.errors import TransferError

    path = Path(spec)
    if path.suffix == ".txt" and path.is_file():
        texts = [l.strip() for l in path.read_text().splitlines() if l.strip()]
    else:
        from graftkit.data import load_dataset

        texts = list(load_dataset(spec).train.texts)
    if len(texts) < offset + n:
        raise TransferError(f"{spec} holds {len(texts)} texts, {offset + n} needed", hint="lower --n-texts / --check-texts")
    return texts[offset:offset + n]


@transfer_app.command("generate")
def generate_command(
    source: list[str] = typer.Argument(..., help="Source expert(s) (HF folder of a fine-tune); several are fused."),
    target: str = typer.Option(..., "--target", "-t", help="Target model (HF folder or zoo name)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output PEFT adapter folder."),
    method: str = typer.Option("distill", "--method", help="distill (train the target's LoRA on unlabeled texts) or subspace (map the source LoRA)."),
    texts: str = typer.Option("sst2", "--texts", help="Unlabeled texts: a dataset name (labels never read) or a .txt file."),
    n_texts: int = typer.Option(256, "--n-texts", help="How many texts to generate from."),
    check_texts: int = typer.Option(64, "--check-texts", help="Held-out texts for the check (after the generation texts)."),
    rank: int = typer.Option(8, "--rank", "-r", help="LoRA rank (distill; subspace keeps the source LoRA's rank)."),
    steps: int = typer.Option(100, "--steps", help="Training steps (distill)."),
    source_base: Optional[str] = typer.Option(None, "--source-base", help="The sources' base model (subspace: the source LoRA is extracted against it)."),
    weights: Optional[list[float]] = typer.Option(None, "--weight", help="Fusion weight per source (repeatable; default equal)."),
    modules: Optional[list[str]] = typer.Option(None, "--module", "-m", help="Regex on target module names (repeatable; default every Linear of the layers)."),
    max_length: int = typer.Option(64, "--max-length", help="Tokens per text."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it exists."),
) -> None:
    """Generate a LoRA for TARGET that carries the SOURCE experts' capability, check it, write it.

    The check fits a readout from the target's features to the source's outputs on
    held-out texts, with and without the adapter, and prints both: nothing is reported
    as transferred without it.

    Example: graft transfer generate experts/sst2 -t paraphrase-MiniLM-L3-v2 -o out/l3-sst2 --method distill --texts sst2
    """
    from graftkit.errors import TransferError
    from graftkit.progress import console
    from graftkit.transfer.generators import Encoder, generate_and_check, get_generator

    if out.exists() and not overwrite:
        raise TransferError(f"output folder {out} already exists", hint="choose another path or pass --overwrite")
    if method == "subspace" and not source_base:
        raise TransferError("--method subspace needs --source-base (the model the sources were fine-tuned from)",
                            hint="e.g. --source-base all-MiniLM-L6-v2")
    settings = {"rank": rank, "steps": steps} if method == "distill" else {}
    generator = get_generator(method, **settings)
    sources = [Encoder.load(s, max_length=max_length) for s in source]
    tgt = Encoder.load(target, max_length=max_length)
    kwargs: dict = {"weights": weights, "modules": modules}
    if method == "subspace":
        from graftkit.transfer.lora_extract import extract_lora
        from graftkit.zoo import get as zoo_get

        base_path = Path(source_base) if Path(source_base).exists() else Path(zoo_get(source_base))
        kwargs["source_adapters"] = [extract_lora(s, base_path, None, rank=rank)[0] for s in source]
    train, check = _texts(texts, n_texts), _texts(texts, check_texts, offset=n_texts)
    _, report = generate_and_check(generator, sources, tgt, train, check, out=out, overwrite=overwrite, **kwargs)
    console.print(f"wrote {out}")
    console.print(f"check: {report.summary()}")
    if not report.improved:
        console.print("[yellow]the adapter did not bring the target closer to the source on held-out texts[/]")


@transfer_app.command("apply")
def apply_command(
    target: str = typer.Argument(..., help="Target model (HF folder or zoo name) the adapter was made for."),
    adapter: Path = typer.Argument(..., help="PEFT LoRA adapter folder."),
    out: Path = typer.Argument(..., help="Output model folder (the target with the delta merged in)."),
    scale: float = typer.Option(1.0, "--scale", help="Multiply the delta by this."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it exists."),
) -> None:
    """Merge an adapter into TARGET and save the result (checked first: a module the target lacks or of another
    shape is an error and nothing is written).

    Example: graft transfer apply paraphrase-MiniLM-L3-v2 out/l3-sst2 out/l3-sst2-merged
    """
    from graftkit.io.atomic import atomic_directory
    from graftkit.progress import console
    from graftkit.transfer.generators import Encoder
    from graftkit.transfer.peft_export import apply_adapter, check_adapter, read_peft_adapter

    ad = read_peft_adapter(adapter)
    tgt = Encoder.load(target)
    check_adapter(ad, tgt.model, source=str(adapter))
    before = {n: p.detach().clone() for n, p in tgt.model.named_parameters() if any(n.startswith(m) for m in ad.loras)}
    apply_adapter(tgt.model, ad, scale=scale)
    change = sum(float((p.detach() - before[n]).norm()) for n, p in tgt.model.named_parameters() if n in before)
    with atomic_directory(out, overwrite=overwrite) as tmp:
        tgt.model.save_pretrained(tmp)
        tgt.tokenizer.save_pretrained(tmp)
    console.print(f"wrote {out}: {len(ad.loras)} modules changed (total weight change {change:.4g})")


@transfer_app.command("fingerprint")
def fingerprint_command(
    models: list[str] = typer.Argument(..., help="LABEL=MODEL or LABEL=MODEL@BASE (label = the capability; BASE = the model it was fine-tuned from)."),
    texts: str = typer.Option("sst2", "--texts", help="Probe texts (dataset name or .txt), the same for every model; the first --anchors are the anchors."),
    n_texts: int = typer.Option(64, "--n-texts", help="How many probe texts (anchors included)."),
    anchors: int = typer.Option(32, "--anchors", help="Anchor texts (a trained extractor keeps its own count)."),
    extractor: Optional[Path] = typer.Option(None, "--extractor", help="A saved extractor; without it one is trained on these models."),
    save_extractor: Optional[Path] = typer.Option(None, "--save-extractor", help="Where to save the extractor trained here."),
    steps: int = typer.Option(100, "--steps", help="Training steps when no --extractor is given."),
    metric: str = typer.Option("cosine", "--metric", help="cosine, kl or pearson."),
    png: Optional[Path] = typer.Option(None, "--png", help="Write a similarity heat map here."),
) -> None:
    """Fingerprint models' capabilities (512-D) and print their pairwise similarity.

    Each model is run on the same probe texts; its fingerprint encodes how the texts sit
    relative to the anchor texts and, with @BASE, how the fine-tune changed that relative
    to its base model (what names the task rather than the model; give a BASE to every
    model or to none).

    Example: graft transfer fingerprint sst2=experts/sst2@all-MiniLM-L6-v2 trec=experts/trec@all-MiniLM-L6-v2 sst2=out/l3-merged@paraphrase-MiniLM-L3-v2 --png fp.png
    """
    import torch

    from graftkit.errors import TransferError
    from graftkit.progress import console
    from graftkit.transfer.extractor import CapabilityExtractor, ExtractorSettings, train_extractor
    from graftkit.transfer.generators import Encoder
    from graftkit.transfer.plot import plot_similarity, similarity_matrix

    specs = []
    for m in models:
        if "=" not in m:
            raise TransferError(f"{m!r} is not LABEL=MODEL[@BASE]", hint="e.g. sst2=experts/sst2@all-MiniLM-L6-v2")
        label, rest = m.split("=", 1)
        path, _, base = rest.partition("@")
        specs.append((label, path, base or None))
    with_base = {b is not None for _, _, b in specs}
    if len(with_base) > 1:
        raise TransferError("some models have an @BASE and others not", hint="give every model its base, or none")
    ex = CapabilityExtractor.load(extractor) if extractor is not None else None
    m_anchors = ex.settings.anchors if ex is not None else anchors
    if n_texts < m_anchors + 2:
        raise TransferError(f"--n-texts {n_texts} leaves fewer than 2 texts after {m_anchors} anchors",
                            hint=f"use --n-texts {m_anchors + 32} or fewer --anchors")
    probe = _texts(texts, n_texts)
    feats = [Encoder.load(path).features(probe) for _, path, _ in specs]
    bases: dict[str, torch.Tensor] = {}
    for _, _, b in specs:
        if b is not None and b not in bases:
            bases[b] = Encoder.load(b).features(probe)
    base_feats = [bases[b] if b is not None else None for _, _, b in specs]
    if ex is None:
        ex = CapabilityExtractor(ExtractorSettings(anchors=m_anchors, delta=True in with_base, layers=2, hidden=256, ff=1024))
        train_extractor(ex, [(f, l) + ((b,) if b is not None else ()) for f, (l, _, _), b in zip(feats, specs, base_feats)],
                        steps=steps)
        console.print("[yellow]extractor trained on these same models: similarities show fit, not generalization[/]")
        if save_extractor is not None:
            ex.save(save_extractor)
    fps = torch.stack([ex.fingerprint(f, b) for f, b in zip(feats, base_feats)])
    names = [f"{l}:{Path(p).name}" for l, p, _ in specs]
    m = similarity_matrix(fps, metric)
    for i, n in enumerate(names):
        console.print(n + "  " + " ".join(f"{float(v):.3f}" for v in m[i]))
    if png is not None:
        plot_similarity(fps, names, png, metric)
        console.print(f"wrote {png}")


def register(app: typer.Typer) -> None:
    app.command("extract-lora")(extract_lora_command)
    app.add_typer(transfer_app, name="transfer")
