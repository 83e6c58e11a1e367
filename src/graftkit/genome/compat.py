"""Are these checkpoints the same computation? The check ``graft merge`` runs before it
reads a tensor, and the name maps it uses when the models spell parameters differently."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from graftkit.genome.checkpoint import CheckpointGenome, checkpoint_genome
from graftkit.genome.diff import GenomeDiff, diff


@dataclass
class CompatReport:
    """``param_maps[i]``: model i's tensor names -> the first model's (identity for model 0)."""

    paths: list[str]
    signatures: list[str]
    compatible: bool
    param_maps: list[dict[str, str]] = field(default_factory=list)
    diffs: list[GenomeDiff | None] = field(default_factory=list)
    genomes: list[CheckpointGenome] = field(default_factory=list)

    def describe(self) -> str:
        if self.compatible:
            renamed = sum(1 for m in self.param_maps for k, v in m.items() if k != v)
            note = f"; {renamed} parameter names differ and are mapped by canonical id" if renamed else ""
            return f"{len(self.paths)} models compute the same graph (signature {self.signatures[0]}){note}"
        lines = []
        for path, sig, d in zip(self.paths[1:], self.signatures[1:], self.diffs[1:]):
            if d is not None and not d.equal:
                lines.append(f"{path} differs from {self.paths[0]}:\n" + d.describe(Path(self.paths[0]).name, Path(path).name))
        return "models are not compatible:\n" + "\n".join(lines)


def check_models(paths: list[str | Path], *, use_cache: bool = True) -> CompatReport:
    """Compare the genome signatures of the checkpoints at ``paths`` (cached per checkpoint)."""
    genomes = [checkpoint_genome(p, use_cache=use_cache) for p in paths]
    sigs = [g.signature for g in genomes]
    compatible = all(s == sigs[0] for s in sigs)
    diffs: list[GenomeDiff | None] = []
    maps: list[dict[str, str]] = []
    for g in genomes:
        if g.signature == sigs[0]:
            diffs.append(None)
            maps.append(_map(g.param_names, genomes[0].param_names))
        else:  # only now are the full graphs read (from the cache)
            diffs.append(diff(genomes[0].genome, g.genome))
            maps.append({})
    return CompatReport([str(p) for p in paths], sigs, compatible, maps, diffs, genomes)


def _map(a: dict[int, list[str]], b: dict[int, list[str]]) -> dict[str, str]:
    out = {}
    for pid, names in a.items():
        target = b.get(pid)
        if target:
            for name in names:
                out[name] = target[0]
    return out


def verify_planner(planner) -> None:
    """The genome check of ``graft merge`` (called by ``merge.plan.build_plan`` before any
    tensor is read): refuse models whose graphs differ, and give the planner, per source,
    the names that differ from the reference model's but share its canonical ids.

    Only whole-model merges (``models:``) are checked: ``slices``/``modules`` assemble
    layers, so depths differ by design; so do vocabularies when a tokenizer is merged.
    """
    from graftkit.errors import GraftError

    if not planner.config.models or len(planner.sources) < 2:
        return
    vocab = {s.label: s.vocab_size for s in planner.sources if s.vocab_size}
    if len(set(vocab.values())) > 1:
        planner.warnings.append(f"vocabulary sizes differ ({vocab}): graph signatures not compared")
        return
    paths = []
    for s in planner.sources:
        folder = getattr(s.checkpoint, "folder", None)
        if s.checkpoint.config is None or folder is None:
            planner.warnings.append(f"{s.label} has no config.json: graph signature not checked")
            return
        paths.append(folder)
    if len({str(p) for p in paths}) < 2:
        return
    try:
        report = check_models(paths)
    except GraftError as exc:
        planner.warnings.append(f"graph signatures not checked: {exc}")
        return
    except Exception as exc:  # a model transformers cannot build on meta must not block a merge by names
        planner.warnings.append(f"graph signatures not checked ({type(exc).__name__}: {exc})")
        return
    if not report.compatible:
        planner.problem(report.describe() + "\n(pass --no-verify to merge by tensor names anyway)")
        return
    ref = planner.index.get(planner.reference_ref(), 0)
    ref_to_first = report.param_maps[ref]
    for i, names in enumerate(report.param_maps):
        first_to_i = {v: k for k, v in names.items()}
        renamed = {r: first_to_i[f] for r, f in ref_to_first.items() if f in first_to_i and first_to_i[f] != r}
        if renamed:
            planner.name_maps[i] = renamed
