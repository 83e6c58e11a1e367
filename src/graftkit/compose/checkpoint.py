"""Trained adapters and routers on disk: one safetensors file plus the MoL config that shaped them.

A checkpoint folder holds ``mol_config.json`` (the config and its fingerprint) and
``mol_weights.safetensors`` (adapters, routers and any task head; the experts are not
copied, the config names them). Loading compares the fingerprint in the safetensors
header with the runtime's before any tensor is read, so a checkpoint trained for other
experts, layers or adapter kinds fails with a CompositionError that names both.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from torch import nn

from graftkit.errors import CompositionError
from graftkit.io.atomic import atomic_directory

if TYPE_CHECKING:
    from graftkit.compose.runtime import MoLRuntime

CONFIG_FILE = "mol_config.json"
WEIGHTS_FILE = "mol_weights.safetensors"


def save_checkpoint(runtime: MoLRuntime, path: str | Path, extra: dict[str, nn.Module] | None = None,
                    overwrite: bool = True) -> Path:
    """Write the runtime's adapters and routers (and ``extra`` modules, e.g. a task head) atomically."""
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {f"runtime.{k}": v.detach().contiguous().cpu() for k, v in runtime.state_dict().items()}
    for prefix, module in (extra or {}).items():
        tensors.update({f"{prefix}.{k}": v.detach().contiguous().cpu() for k, v in module.state_dict().items()})
    meta = {"format": "graftkit-mol", "fingerprint": runtime.config.fingerprint(),
            "models": ",".join(runtime.config.models), "extra": ",".join(extra or {})}
    with atomic_directory(path, overwrite=overwrite) as tmp:
        save_file(tensors, str(tmp / WEIGHTS_FILE), metadata=meta)
        config = {**runtime.config.to_dict(), "fingerprint": runtime.config.fingerprint()}
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return path


def read_metadata(path: str | Path) -> dict[str, str]:
    """The safetensors header metadata of a checkpoint folder (no tensor read)."""
    from safetensors import safe_open

    file = Path(path) / WEIGHTS_FILE
    if not file.is_file():
        raise CompositionError(f"{path} is not a MoL checkpoint (no {WEIGHTS_FILE})",
                               hint="give a folder written by MoLTrainer.save_checkpoint or `graft fuse train`")
    with safe_open(str(file), framework="pt") as f:
        meta = f.metadata() or {}
    if meta.get("format") != "graftkit-mol":
        raise CompositionError(f"{file} was not written by graftkit's MoL runtime", hint="give a `graft fuse train` output")
    return meta


def read_config(path: str | Path) -> dict:
    file = Path(path) / CONFIG_FILE
    if not file.is_file():
        raise CompositionError(f"{path} has no {CONFIG_FILE}", hint="give a folder written by `graft fuse train`")
    return json.loads(file.read_text(encoding="utf-8"))


def load_checkpoint(runtime: MoLRuntime, path: str | Path, extra: dict[str, nn.Module] | None = None) -> None:
    """Load adapters, routers and ``extra`` modules into ``runtime``; checks the fingerprint first."""
    from safetensors.torch import load_file

    meta = read_metadata(path)
    if meta.get("fingerprint") != runtime.config.fingerprint():
        raise CompositionError(
            f"checkpoint {path} was trained for another MoL configuration (models {meta.get('models', '?')}, "
            f"fingerprint {meta.get('fingerprint')}) than this runtime (models {','.join(runtime.config.models)}, "
            f"fingerprint {runtime.config.fingerprint()})",
            hint=f"build the runtime from the checkpoint's own {CONFIG_FILE} (MoLRuntime.from_checkpoint) or retrain")
    missing = sorted(set(extra or {}) - set(filter(None, meta.get("extra", "").split(","))))
    if missing:
        raise CompositionError(f"checkpoint {path} holds no {missing}", hint="it was saved without that module")
    tensors = load_file(str(Path(path) / WEIGHTS_FILE))
    runtime.load_state_dict({k[len("runtime."):]: v for k, v in tensors.items() if k.startswith("runtime.")})
    for prefix, module in (extra or {}).items():
        module.load_state_dict({k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + ".")})
