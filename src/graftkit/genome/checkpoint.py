"""Genomes of checkpoints on disk, traced from config alone and cached.

The model is built from ``config.json`` on the meta device (no weight is read); the
cache key is the config plus the tensor header (names, shapes, dtypes), so a cached
signature is valid exactly as long as neither changes. Cache folder:
``$GRAFTKIT_CACHE/genome`` or ``~/.cache/graftkit/genome``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graftkit.errors import ArchitectureError
from graftkit.genome.graph import FORMAT_VERSION, Genome


def cache_dir() -> Path:
    base = os.environ.get("GRAFTKIT_CACHE")
    root = Path(base) if base else Path.home() / ".cache" / "graftkit"
    return root / "genome"


@dataclass
class CheckpointGenome:
    """A checkpoint's signature and parameter names by canonical id (as the checkpoint spells
    them); the full genome (nodes) is loaded from the cache only when asked for."""

    path: str
    signature: str
    param_names: dict[int, list[str]]
    model_class: str
    missing: list[str] = field(default_factory=list)  # model parameters the checkpoint lacks
    extra: list[str] = field(default_factory=list)  # checkpoint tensors the model does not use
    cached: bool = False
    _genome: Genome | None = None
    _genome_file: Path | None = None

    @classmethod
    def of(cls, path: str, genome: Genome, model_class: str, missing=(), extra=()) -> CheckpointGenome:
        return cls(path, genome.signature, genome.param_names, model_class, list(missing), list(extra),
                   _genome=genome)

    @property
    def genome(self) -> Genome:
        if self._genome is None:
            self._genome = Genome.from_json(json.loads(self._genome_file.read_text()))
        return self._genome

    def head(self) -> dict[str, Any]:
        return {"path": self.path, "signature": self.signature, "model_class": self.model_class,
                "missing": self.missing, "extra": self.extra,
                "param_names": {str(k): v for k, v in self.param_names.items()}}

    def to_json(self) -> dict[str, Any]:
        return {**self.head(), "genome": self.genome.to_json()}


def _header(ck: Any) -> list[tuple[str, tuple, str]]:
    return sorted((n, tuple(ck.shape(n)), str(ck.dtype(n))) for n in ck.names())


def cache_key(config: dict[str, Any], header: list) -> str:
    from importlib.metadata import version

    blob = json.dumps([FORMAT_VERSION, version("torch"), version("transformers"),
                       {k: v for k, v in config.items() if k not in ("_name_or_path", "transformers_version")},
                       header], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _hf_config(config: dict[str, Any]) -> Any:
    from transformers import AutoConfig

    model_type = config.get("model_type")
    if not model_type:
        raise ArchitectureError("config.json has no model_type", hint="a transformers config is needed to trace")
    cfg = AutoConfig.for_model(model_type)
    return cfg.__class__.from_dict({k: v for k, v in config.items() if k != "model_type"})


def _candidates(config: dict[str, Any]) -> list[str]:
    names = list(config.get("architectures") or [])
    return names + [n for n in ("AutoModel",) if n not in names]


def build_for_checkpoint(ck: Any) -> tuple[Any, dict[str, str], list[str], list[str]]:
    """The meta model whose parameters best match the checkpoint's tensors.

    Returns (model, model name -> checkpoint name, missing, extra).
    """
    from graftkit.genome.hf import meta_model

    config = ck.config
    if config is None:
        raise ArchitectureError(f"{ck} has no config.json", hint="genome signatures need the model's config")
    hf_config = _hf_config(config)
    names = set(ck.names())
    best = None
    for cls in _candidates(config):
        try:
            model = meta_model(hf_config, "AutoModel" if cls == "AutoModel" else cls)
        except Exception:  # a class this transformers lacks: try the next candidate
            continue
        mapping, missing = _match_names(model, names)
        score = (len(missing), cls == "AutoModel")
        if best is None or score < best[0]:
            best = (score, model, mapping, missing)
        if not missing:
            break
    if best is None:
        raise ArchitectureError(f"no transformers class can be built from the config of {ck}",
                                hint="check config.json's model_type and architectures")
    _, model, mapping, missing = best
    extra = sorted(names - set(mapping.values()))
    return model, mapping, missing, extra


def _match_names(model: Any, names: set[str]) -> tuple[dict[str, str], list[str]]:
    """Model parameter name -> checkpoint tensor name (exact, or with the base prefix added/removed)."""
    prefix = getattr(model, "base_model_prefix", "") or ""
    mapping, missing = {}, []
    groups: dict[int, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        groups.setdefault(id(p), []).append(name)
    for aliases in groups.values():
        found = False
        for name in aliases:
            for cand in (name, f"{prefix}.{name}", name[len(prefix) + 1:] if prefix and name.startswith(prefix + ".") else None):
                if cand and cand in names:
                    mapping[name] = cand
                    found = True
                    break
        if not found:
            missing.extend(aliases[:1])
    return mapping, missing


def checkpoint_genome(path: str | Path, *, use_cache: bool = True) -> CheckpointGenome:
    """The genome of the checkpoint at ``path`` (cached by config + tensor header)."""
    from graftkit.io import Checkpoint

    with Checkpoint.open(path) as ck:
        config = ck.config or {}
        key = cache_key(config, _header(ck))
        if use_cache and (hit := read_cache(key)) is not None:
            hit.path = str(path)
            return hit
        from graftkit.genome.decompose import trace

        model, mapping, missing, extra = build_for_checkpoint(ck)
        # the graph depends on the config and class only: a copy with other tensor names
        # (another prefix, another dtype on disk) reuses it and only maps its names
        graph_key = cache_key(config, [("graph", type(model).__name__)])
        graph = read_cache(graph_key) if use_cache else None
        if graph is not None:
            genome = graph.genome
        else:
            from graftkit.progress import status

            status(f"tracing {type(model).__name__} of {path} (no weights read; cached afterwards)")
            genome = trace(model)
            if use_cache:
                write_cache(graph_key, CheckpointGenome.of("<graph>", genome, type(model).__name__))
    genome.param_names = {pid: [mapping[n] for n in names if n in mapping] or names
                          for pid, names in genome.param_names.items()}
    result = CheckpointGenome.of(str(path), genome, type(model).__name__, missing, extra)
    if use_cache:
        write_cache(key, result)
    return result


def read_cache(key: str) -> CheckpointGenome | None:
    """The cached entry for ``key`` (its small head only), or None."""
    head, full = cache_dir() / f"{key}.json", cache_dir() / f"{key}.genome.json"
    if not (head.is_file() and full.is_file()):
        return None
    try:
        data = json.loads(head.read_text())
        return CheckpointGenome(data["path"], data["signature"],
                                {int(k): v for k, v in data["param_names"].items()}, data["model_class"],
                                data["missing"], data["extra"], cached=True, _genome_file=full)
    except (ValueError, KeyError):  # a damaged entry is traced again
        return None


def write_cache(key: str, result: CheckpointGenome) -> None:
    """Write the full genome, then the head that makes the entry visible."""
    try:
        _atomic_json(cache_dir() / f"{key}.genome.json", result.genome.to_json())
        _atomic_json(cache_dir() / f"{key}.json", result.head())
    except OSError:  # a read-only cache only costs speed
        pass


def _atomic_json(file: Path, data: Any) -> None:
    file.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=file.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, separators=(",", ":"))
    os.replace(tmp, file)
