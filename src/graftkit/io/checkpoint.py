"""``Checkpoint``: a lazy, read-only view of a model's tensors, whatever format they are stored in.

Opening reads headers only (safetensors JSON headers, GGUF tensor tables, pickles whose
storages are memory-mapped); ``ck[name]`` reads one tensor. Every engine reads models
through this class, so formats are handled here once.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

import torch

from graftkit.errors import (
    CheckpointError,
    CorruptFileError,
    MissingPathError,
    NoWeightsError,
    TensorNotFoundError,
    UnsupportedFormatError,
)
from graftkit.io.architecture import ArchitectureInfo, architecture_from, read_config
from graftkit.io.info import TensorInfo

_FETCH_AGAIN = "the file is damaged or was cut off while copying or downloading; fetch it again"
# pickles that sit beside HF weights but are not weights
_NOT_WEIGHTS = {"training_args.bin", "optimizer.bin", "scheduler.bin"}


class _Shard(Protocol):
    path: Path
    format: str
    infos: dict[str, TensorInfo]

    def read(self, name: str) -> torch.Tensor: ...
    def close(self) -> None: ...


def _open_shard(path: Path) -> _Shard:
    """A reader for one weight file, chosen by its suffix."""
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from graftkit.io.safetensors_file import SafetensorsShard

        return SafetensorsShard(path)
    if suffix in (".bin", ".pt", ".pth"):
        from graftkit.io.torch_file import TorchShard

        return TorchShard(path)
    if suffix == ".gguf":
        from graftkit.io.gguf_file import GGUFShard

        return GGUFShard(path)
    raise UnsupportedFormatError(
        f"{path}: unknown weight file type {suffix or '(no suffix)'}",
        hint="graftkit reads .safetensors, .bin/.pt/.pth (PyTorch state dicts) and .gguf files, or an HF folder",
    )


def _read_index(index: Path) -> dict[str, Path]:
    """tensor name -> shard path, from a ``*.index.json`` (shards checked to exist)."""
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        if not isinstance(weight_map, dict):
            raise TypeError("weight_map is not an object")
    except json.JSONDecodeError as e:
        raise CorruptFileError(
            f"{index} is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}", hint=_FETCH_AGAIN
        ) from None
    except (OSError, UnicodeDecodeError, KeyError, TypeError) as e:
        raise CorruptFileError(f"{index} is not a weight index (needs a 'weight_map' object): {e}") from None
    located: dict[str, Path] = {}
    for name, file in weight_map.items():
        shard = index.parent / str(file)
        if not shard.is_file():
            raise MissingPathError(
                f"shard {shard} listed in {index} (for tensor {name!r}) does not exist",
                hint="download or copy the missing shard next to the index",
            )
        located[name] = shard
    return located


def _folder_weights(folder: Path) -> tuple[list[Path], dict[str, Path] | None]:
    """The weight files of an HF folder, and the index's name -> file map when there is one."""
    def pick(pattern: str) -> list[Path]:
        return sorted(p for p in folder.glob(pattern) if p.is_file() and p.name not in _NOT_WEIGHTS)

    for fmt in ("safetensors", "bin"):
        main_index = folder / ("model.safetensors.index.json" if fmt == "safetensors" else "pytorch_model.bin.index.json")
        indexes = [main_index] if main_index.is_file() else pick(f"*.{fmt}.index.json")
        if len(indexes) == 1:
            located = _read_index(indexes[0])
            return sorted(set(located.values())), located
        single = folder / ("model.safetensors" if fmt == "safetensors" else "pytorch_model.bin")
        if single.is_file():
            return [single], None
        files = pick(f"*.{fmt}")
        if files:
            return files, None
    ggufs = pick("*.gguf")
    if len(ggufs) > 1:
        raise UnsupportedFormatError(
            f"{folder} holds several GGUF files ({', '.join(p.name for p in ggufs)})",
            hint="pass the path of the one to read",
        )
    if ggufs:
        return ggufs, None
    found = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    raise NoWeightsError(
        f"{folder} holds no weight files (found: {', '.join(found[:20]) or 'nothing'}"
        f"{', ...' if len(found) > 20 else ''})",
        hint="expected model.safetensors, sharded model-0000i-of-0000N.safetensors with "
        "model.safetensors.index.json, pytorch_model.bin, or a .gguf file",
    )


class Checkpoint:
    """A lazy, read-only mapping from tensor names to tensors of one model.

    Use ``Checkpoint.open(path)``; close it (or use ``with``) to release the file handles.
    Tensors returned by ``ck[name]`` may share memory with the mapped file: treat them as
    read-only (clone before modifying in place).
    """

    def __init__(self, path: Path, shards: list[_Shard], located: dict[str, Path] | None,
                 folder: Path | None, config: dict[str, Any] | None) -> None:
        self.path = path
        self.folder = folder
        self.config = config
        self._shards = {s.path: s for s in shards}
        self._location: dict[str, _Shard] = {}
        if located is not None:
            for name, file in located.items():
                if name not in self._shards[file].infos:
                    raise CorruptFileError(f"{file} lacks tensor {name!r} that its index lists", hint=_FETCH_AGAIN)
            # file order (shard by shard, header order within), not the index's alphabetical order
            rank = {path: i for i, path in enumerate(self._shards)}
            position = {s.path: {n: k for k, n in enumerate(s.infos)} for s in shards}
            for name in sorted(located, key=lambda n: (rank[located[n]], position[located[n]][n])):
                self._location[name] = self._shards[located[name]]
        else:
            for shard in shards:
                for name in shard.infos:
                    if name in self._location:
                        raise CorruptFileError(
                            f"tensor {name!r} appears in both {self._location[name].path} and {shard.path}",
                            hint="keep only one copy of the weights in the folder",
                        )
                    self._location[name] = shard
        self._closed = False

    @classmethod
    def open(cls, path: str | Path) -> Checkpoint:
        """Open an HF folder (safetensors, sharded index, .bin, .gguf) or a single weight file."""
        path = Path(path).expanduser()
        if not path.exists():
            raise MissingPathError(f"{path} does not exist", hint="check the path (a folder or a weight file)")
        if path.is_dir():
            config_file = path / "config.json"
            config = read_config(config_file) if config_file.exists() else None
            files, located = _folder_weights(path)
            folder: Path | None = path
        else:
            config, folder, located, files = None, None, None, [path]
        shards: list[_Shard] = []
        try:
            for file in files:
                shards.append(_open_shard(file))
            return cls(path, shards, located, folder, config)
        except BaseException:
            for shard in shards:
                shard.close()
            raise

    # --- listing (no tensor data read) ---------------------------------------------------------

    def names(self) -> list[str]:
        """All tensor names, in file order."""
        return list(self._location)

    def info(self, name: str) -> TensorInfo:
        return self._shard(name).infos[name]

    def shape(self, name: str) -> tuple[int, ...]:
        return self.info(name).shape

    def dtype(self, name: str) -> torch.dtype:
        return self.info(name).dtype

    @property
    def files(self) -> list[Path]:
        return list(self._shards)

    @property
    def format(self) -> str:
        """``safetensors``, ``bin`` or ``gguf``."""
        return next(iter(self._shards.values())).format

    @property
    def total_size(self) -> int:
        """Bytes of all tensors as they are returned."""
        return sum(self.info(n).nbytes for n in self._location)

    def __contains__(self, name: object) -> bool:
        return name in self._location

    def __len__(self) -> int:
        return len(self._location)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._location))

    # --- reading --------------------------------------------------------------------------------

    def __getitem__(self, name: str) -> torch.Tensor:
        """Read one tensor (memory-mapped for safetensors and zip pickles; GGUF is dequantized)."""
        return self._shard(name).read(name)

    def get(self, name: str, default: torch.Tensor | None = None) -> torch.Tensor | None:
        return self[name] if name in self._location else default

    def _shard(self, name: str) -> _Shard:
        if self._closed:
            raise CheckpointError(f"checkpoint {self.path} is closed", hint="open it again with Checkpoint.open")
        try:
            return self._location[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._location, n=3, cutoff=0.5)
            hint = (f"closest names: {', '.join(close)}" if close
                    else f"it holds {len(self)} tensors, e.g. {', '.join(list(self._location)[:3])}")
            raise TensorNotFoundError(f"tensor {name!r} is not in {self.path}", hint=hint) from None

    # --- architecture ---------------------------------------------------------------------------

    @cached_property
    def architecture(self) -> ArchitectureInfo:
        """Model type, sizes, layer pattern and tied embeddings, from config.json (or GGUF metadata) and names."""
        fallback = None
        if self.config is None and self.format == "gguf":
            fallback = _gguf_config(next(iter(self._shards.values())))
        return architecture_from(self.names(), self.config, fallback)

    def layer_of(self, name: str) -> int | None:
        """The layer index of tensor ``name`` (None outside the layer stack)."""
        return self.architecture.layer_of(name)

    # --- lifetime -------------------------------------------------------------------------------

    def close(self) -> None:
        """Release every file handle and mapping."""
        for shard in self._shards.values():
            shard.close()
        self._closed = True

    def __enter__(self) -> Checkpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Checkpoint({str(self.path)!r}, {len(self)} tensors, {self.format}, {len(self._shards)} file(s))"


def _gguf_config(shard: Any) -> dict[str, Any]:
    """config.json-like keys from GGUF metadata (model_type is GGUF's architecture name)."""
    arch = shard.field("general.architecture")
    if not isinstance(arch, str):
        return {}
    vocab = shard.field(f"{arch}.vocab_size") or shard.field_length("tokenizer.ggml.tokens")
    found = {
        "model_type": arch,
        "hidden_size": shard.field(f"{arch}.embedding_length"),
        "num_hidden_layers": shard.field(f"{arch}.block_count"),
        "vocab_size": vocab,
    }
    return {k: int(v) if k != "model_type" and v is not None else v for k, v in found.items() if v is not None}
