"""The MoL configuration: which models, which of their layers form each fused layer, and how they are joined.

YAML (the seed's MoLConfig, made explicit)::

    models:                       # zoo names or model folders; `name: path` to give a short name
      - SmolLM2-135M-Instruct
      - {name: poet, path: ./experts/shakespeare}
    embedding_model: SmolLM2-135M-Instruct   # embeddings from here (default: the first model)
    head_model: SmolLM2-135M-Instruct        # final norm + LM head from here (default: embedding_model)
    adapter_type: bottleneck                 # linear | bottleneck
    adapter: {rank: 16}
    router_type: token                       # pooled | token (the seed's simple | token_level also work)
    router: {top_k: 1}
    layers:                                  # one entry per fused layer: its (model, layer) experts
      - [[SmolLM2-135M-Instruct, 0], [poet, 0]]
      - [[SmolLM2-135M-Instruct, 1], [poet, 1]]
    # or instead of layers: `max_layers: 30` fuses layer i of every model for i < max_layers
    retokenize: false              # experts with another tokenizer: refused unless true (see docs/compose.md)
    links:                         # fusion units: after fused layer 1, attend to model poet's layer 5 output
      - {after_layer: 1, model: poet, layer: 5, kind: cross_attention, options: {heads: 4}}
    entropy_weight: 0.0            # router losses added by the trainer
    balance_weight: 0.01
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from graftkit.errors import ConfigError

_KEYS = {"models", "embedding_model", "head_model", "adapter_type", "adapter", "router_type", "router", "layers",
         "max_layers", "retokenize", "entropy_weight", "balance_weight", "links"}


@dataclass
class MoLConfig:
    models: dict[str, str]  # name -> source (zoo name or folder)
    layers: list[list[tuple[str, int]]]
    embedding_model: str = ""
    head_model: str = ""
    adapter_type: str = "linear"
    adapter: dict[str, Any] = field(default_factory=dict)
    router_type: str = "token"
    router: dict[str, Any] = field(default_factory=dict)
    retokenize: bool = False
    entropy_weight: float = 0.0
    balance_weight: float = 0.01
    links: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.models:
            raise ConfigError("MoL config: `models` is empty", hint="list at least one zoo name or model folder")
        first = next(iter(self.models))
        self.embedding_model = self.embedding_model or first
        self.head_model = self.head_model or self.embedding_model
        for key in ("embedding_model", "head_model"):
            if getattr(self, key) not in self.models:
                raise ConfigError(f"MoL config: {key} {getattr(self, key)!r} is not one of the models {list(self.models)}",
                                  hint="name a model listed under `models`")
        if not self.layers:
            raise ConfigError("MoL config: no fused layers", hint="give `layers` or `max_layers`")
        for i, experts in enumerate(self.layers):
            if not experts:
                raise ConfigError(f"MoL config: fused layer {i} has no experts", hint="list [model, layer] pairs")
            for name, index in experts:
                if name not in self.models:
                    raise ConfigError(f"MoL config: fused layer {i} names model {name!r}, which is not under `models`",
                                      hint=f"use one of {list(self.models)}")
                if not isinstance(index, int) or isinstance(index, bool):
                    raise ConfigError(f"MoL config: fused layer {i}: layer index {index!r} of {name!r} is not an integer")

        for i, link in enumerate(self.links):
            missing = {"after_layer", "model", "layer"} - set(link)
            extra = set(link) - {"after_layer", "model", "layer", "kind", "options"}
            if missing or extra:
                raise ConfigError(f"MoL config: link {i} {link!r}: " + (f"missing {sorted(missing)}" if missing else f"unknown {sorted(extra)}"),
                                  hint="a link is {after_layer, model, layer, kind, options}")
            if link["model"] not in self.models:
                raise ConfigError(f"MoL config: link {i} names model {link['model']!r}, which is not under `models`")
            if not 0 <= int(link["after_layer"]) < len(self.layers):
                raise ConfigError(f"MoL config: link {i} after_layer {link['after_layer']} is not a fused layer (0..{len(self.layers) - 1})")
            link.setdefault("kind", "cross_attention")
            link.setdefault("options", {})

    def fingerprint(self) -> str:
        """What a trained checkpoint must match: everything that shapes the adapters and routers."""
        shape = {k: v for k, v in asdict(self).items() if k not in ("entropy_weight", "balance_weight")}
        return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["models"] = [{"name": n, "path": p} for n, p in self.models.items()]
        out["layers"] = [[list(e) for e in experts] for experts in self.layers]
        return out


def _models(raw: Any) -> dict[str, str]:
    if not isinstance(raw, list):
        raise ConfigError("MoL config: `models` must be a list", hint="e.g. models: [all-MiniLM-L6-v2, ./expert]")
    out: dict[str, str] = {}
    for item in raw:
        if isinstance(item, str):
            name, path = item, item
        elif isinstance(item, dict) and "path" in item:
            path = str(item["path"])
            name = str(item.get("name", path))
        else:
            raise ConfigError(f"MoL config: model entry {item!r} must be a string or {{name, path}}")
        if name in out:
            raise ConfigError(f"MoL config: model name {name!r} appears twice",
                              hint="give the second one its own `name:` (the same folder may appear under two names)")
        out[name] = path
    return out


def _layers(raw: Any) -> list[list[tuple[str, int]]]:
    if not isinstance(raw, list):
        raise ConfigError("MoL config: `layers` must be a list of fused layers, each a list of [model, layer] pairs")
    layers = []
    for i, entry in enumerate(raw):
        experts = entry.get("experts") if isinstance(entry, dict) else entry
        if not isinstance(experts, list) or not all(isinstance(e, (list, tuple)) and len(e) == 2 for e in experts):
            raise ConfigError(f"MoL config: fused layer {i} must be a list of [model, layer] pairs, got {entry!r}")
        layers.append([(str(m), e) for m, e in experts])
    return layers


def load_config(source: str | Path | dict[str, Any]) -> MoLConfig:
    """A MoLConfig from a YAML file, YAML text or a dict; ConfigError names the unknown or missing key."""
    import yaml

    if isinstance(source, dict):
        raw = source
    else:
        text = str(source)
        path = Path(text)
        if "\n" not in text and text.endswith((".yaml", ".yml")):
            if not path.is_file():
                raise ConfigError(f"MoL config {path} does not exist", hint="check the path")
            text = path.read_text(encoding="utf-8")
        raw = yaml.safe_load(text)
    if not isinstance(raw, dict):
        raise ConfigError("MoL config must be a mapping (models:, layers:, ...)")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise ConfigError(f"MoL config: unknown key(s) {unknown}", hint=f"allowed: {', '.join(sorted(_KEYS))}")
    models = _models(raw.get("models"))
    if "layers" in raw and "max_layers" in raw:
        raise ConfigError("MoL config: give `layers` or `max_layers`, not both")
    if "layers" in raw:
        layers = _layers(raw["layers"])
    elif "max_layers" in raw:
        n = raw["max_layers"]
        if not isinstance(n, int) or n < 1:
            raise ConfigError(f"MoL config: max_layers must be a positive integer, got {n!r}")
        layers = [[(name, i) for name in models] for i in range(n)]
    else:
        raise ConfigError("MoL config: no `layers` (or `max_layers`)", hint="list the fused layers' [model, layer] experts")
    return MoLConfig(
        models=models,
        layers=layers,
        embedding_model=str(raw.get("embedding_model", "")),
        head_model=str(raw.get("head_model", "")),
        adapter_type=str(raw.get("adapter_type", "linear")),
        adapter=dict(raw.get("adapter") or {}),
        router_type=str(raw.get("router_type", "token")),
        router=dict(raw.get("router") or {}),
        retokenize=bool(raw.get("retokenize", False)),
        entropy_weight=float(raw.get("entropy_weight", 0.0)),
        balance_weight=float(raw.get("balance_weight", 0.01)),
        links=[dict(link) for link in raw.get("links") or []],
    )
