"""Assemble a model from blocks of several models, verified gene by gene before a single
byte is written.

The spec (YAML) names the models, the base (its config, tokenizer, embeddings and
head unless overridden) and the output layer stack as ranges of source layers::

    models: {A: ./expert-a, B: ./expert-b}
    base: A
    layers:
      - {model: A, range: [0, 6]}
      - {model: B, range: [6, 12]}
    embeddings: A      # optional (default: base)
    head: B            # optional (default: base)

The output architecture is the base config with the new layer count; it is traced, and
every output layer must carry the same gene as the source layer placed there, and the
embeddings and head parts the same genes as the base's. Tensors are then mapped by
their position inside the gene, so sources may name their parameters differently.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graftkit.errors import ArchitectureError, ConfigError, ValidationError
from graftkit.genome.checkpoint import CheckpointGenome, checkpoint_genome
from graftkit.genome.genes import block_encoding, gene_id, layer_stack
from graftkit.genome.graph import Genome

_LAYER_KEYS = ("num_hidden_layers", "n_layer", "num_layers")


@dataclass
class TransplantPlan:
    """Output tensor name -> (source model, source tensor name), and the output config."""

    config: dict[str, Any]
    base: str
    tensors: dict[str, tuple[str, str]] = field(default_factory=dict)
    layer_sources: list[tuple[str, int]] = field(default_factory=list)
    genes: list[str] = field(default_factory=list)


def load_spec(path: str | Path) -> dict[str, Any]:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"transplant spec {path} not found", hint="write a YAML file with models, base and layers")
    try:
        spec = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    problems = []
    if not isinstance(spec, dict):
        raise ConfigError(f"{path}: the spec must be a mapping with models, base and layers")
    unknown = set(spec) - {"models", "base", "layers", "embeddings", "head"}
    if unknown:
        problems.append(f"unknown keys {sorted(unknown)} (allowed: models, base, layers, embeddings, head)")
    models = spec.get("models")
    if not isinstance(models, dict) or not models:
        problems.append("'models' must map short names to model folders, e.g. {A: ./model-a}")
        models = {}
    spec["models"] = {k: str((path.parent / v).resolve()) if not Path(v).is_absolute() else v
                      for k, v in models.items()}
    base = spec.get("base") or (next(iter(models)) if models else None)
    spec["base"] = base
    for key in ("base", "embeddings", "head"):
        if spec.get(key) is not None and spec[key] not in models:
            problems.append(f"'{key}: {spec[key]}' is not one of the models {sorted(models)}")
    layers = spec.get("layers")
    if not isinstance(layers, list) or not layers:
        problems.append("'layers' must list slices like {model: A, range: [0, 6]}")
        layers = []
    for i, item in enumerate(layers):
        if not isinstance(item, dict) or item.get("model") not in models:
            problems.append(f"layers[{i}]: 'model' must be one of {sorted(models)}")
            continue
        rng = item.get("range")
        if not (isinstance(rng, list) and len(rng) == 2 and all(isinstance(x, int) for x in rng) and 0 <= rng[0] < rng[1]):
            problems.append(f"layers[{i}]: 'range' must be [start, end) with 0 <= start < end, got {rng!r}")
    if problems:
        raise ValidationError(problems, source=str(path))
    return spec


def _parts(genome: Genome, layers: list) -> tuple[list[int], list[int]]:
    """Canonical positions of the ops before the first layer (embeddings) and after the last (head)."""
    inside = {i for _, occ in layers for i in occ.nodes}
    first = min(inside) if inside else len(genome.nodes)
    last = max(inside) if inside else -1
    outside = [i for i, n in enumerate(genome.nodes) if i not in inside and n.kind in ("op", "const")]
    return [i for i in outside if i < first], [i for i in outside if i > last]


def _part_gene(genome: Genome, members: list[int]) -> tuple[str, list[int]]:
    if not members:
        return "", []
    encoding, params, _ = block_encoding(genome, members)
    return gene_id(encoding), params


def plan_transplant(spec: dict[str, Any]) -> TransplantPlan:
    """Check every block of the spec against the output architecture; raise before writing."""
    from graftkit.io import Checkpoint

    models: dict[str, str] = spec["models"]
    genomes: dict[str, CheckpointGenome] = {k: checkpoint_genome(v) for k, v in models.items()}
    stacks = {k: layer_stack(g.genome, k) for k, g in genomes.items()}
    sources: list[tuple[str, int]] = []
    problems = []
    for item in spec["layers"]:
        start, end = item["range"]
        have = len(stacks[item["model"]])
        if end > have:
            problems.append(f"{item['model']} has {have} layers; range {item['range']} asks for layer {end - 1}")
        sources += [(item["model"], j) for j in range(start, min(end, have))]
    if problems:
        raise ValidationError(problems, source="transplant spec")

    base = spec["base"]
    with Checkpoint.open(models[base]) as ck:
        config = dict(ck.config or {})
        key = next((k for k in _LAYER_KEYS if k in config), None)
        if key is None:
            raise ArchitectureError(f"{models[base]}/config.json has no layer count ({', '.join(_LAYER_KEYS)})")
        config[key] = len(sources)
        if isinstance(config.get("layer_types"), list):
            config["layer_types"] = [_layer_type(models[m], j) for m, j in sources]
    target = _target_genome(config, genomes[base].model_class)
    target_layers = layer_stack(target, "output")
    if len(target_layers) != len(sources):
        raise ArchitectureError(f"the output architecture traced {len(target_layers)} layers, expected {len(sources)}")

    plan = TransplantPlan(config=config, base=base)
    for i, ((model, j), (want, out_occ)) in enumerate(zip(sources, target_layers)):
        have, src_occ = stacks[model][j]
        if have != want:
            problems.append(
                f"output layer {i} <- {model} layer {j} ({src_occ.module}, {src_occ.module_class}, gene {have}) "
                f"does not compute what layer {i} of the output architecture computes ({out_occ.module_class}, gene {want})"
            )
            continue
        _map_params(plan, model, out_occ.params, target, src_occ.params, genomes[model].genome)
        plan.genes.append(have)
    plan.layer_sources = sources

    target_embed, target_head = _parts(target, target_layers)
    for part, members, choice in (("embeddings", target_embed, spec.get("embeddings") or base),
                                  ("head", target_head, spec.get("head") or base)):
        src = genomes[choice].genome
        src_embed, src_head = _parts(src, stacks[choice])
        src_members = src_embed if part == "embeddings" else src_head
        want, out_params = _part_gene(target, members)
        have, src_params = _part_gene(src, src_members)
        if want != have:
            problems.append(f"the {part} of {choice} (gene {have or 'none'}) do not fit the {part} of the output "
                            f"architecture from {base} (gene {want or 'none'})")
            continue
        _map_params(plan, choice, out_params, target, src_params, src)
    if problems:
        raise ValidationError(problems, source="transplant")
    return plan


def _layer_type(path: str, j: int) -> Any:
    config = json.loads((Path(path) / "config.json").read_text())
    return config["layer_types"][j]


def _target_genome(config: dict[str, Any], class_name: str) -> Genome:
    """The output architecture's genome, traced from its config (cached like a checkpoint's)."""
    from graftkit.genome.checkpoint import _hf_config, cache_key, read_cache, write_cache
    from graftkit.genome.decompose import trace
    from graftkit.genome.hf import meta_model

    key = cache_key(config, [("target", class_name)])
    if (hit := read_cache(key)) is not None:
        return hit.genome
    genome = trace(meta_model(_hf_config(config), class_name))
    write_cache(key, CheckpointGenome.of("<transplant target>", genome, class_name))
    return genome


def _map_params(plan: TransplantPlan, model: str, out_params: list[int], target: Genome,
                src_params: list[int], src: Genome) -> None:
    for out_id, src_id in zip(out_params, src_params):
        names = target.param_names.get(out_id, [])
        src_names = src.param_names.get(src_id, [])
        if names and src_names and names[0] not in plan.tensors:
            plan.tensors[names[0]] = (model, src_names[0])


def transplant(spec_path: str | Path, out: str | Path, *, overwrite: bool = False) -> TransplantPlan:
    """Verify the spec at ``spec_path`` and write the assembled model to ``out``."""
    from graftkit.io import Checkpoint, CheckpointWriter
    from graftkit.progress import track

    spec = load_spec(spec_path)
    plan = plan_transplant(spec)
    opened = {k: Checkpoint.open(v) for k, v in spec["models"].items()}
    try:
        for name, (model, src) in plan.tensors.items():
            if src not in opened[model]:
                raise ArchitectureError(f"{spec['models'][model]} has no tensor {src!r} (needed for {name})")
        with CheckpointWriter(out, overwrite=overwrite) as writer:
            writer.write_json("config.json", plan.config)
            for name, (model, src) in track(list(plan.tensors.items()), "transplant"):
                writer.write(name, opened[model][src])
            writer.copy_auxiliary(spec["models"][plan.base])
            writer.write_json("transplant.json", {
                "layers": [{"model": m, "layer": j, "gene": g} for (m, j), g in zip(plan.layer_sources, plan.genes)],
                "models": spec["models"], "base": plan.base,
                "embeddings": spec.get("embeddings") or plan.base, "head": spec.get("head") or plan.base,
            })
    finally:
        for ck in opened.values():
            ck.close()
    return plan
