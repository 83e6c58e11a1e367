"""``CheckpointWriter``: stream tensors into size-capped safetensors shards, folder moved into place at the end.

Two modes. Without a layout, tensors are buffered until the next one would overflow the
shard, then the shard is written (memory: about one shard). With a ``layout`` (the
planned outputs, in order), shard assignment and headers are computed up front and each
tensor is written straight to its byte offset (memory: about one tensor). Either way
the files appear in a temporary folder beside the target, renamed into place only when
every tensor is written (``atomic_directory``).
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any, BinaryIO

import torch

from graftkit.errors import CheckpointError, MissingPathError, ShapeMismatchError, UnsupportedFormatError
from graftkit.io.atomic import atomic_directory
from graftkit.io.info import TORCH_TO_SAFETENSORS, TensorInfo
from graftkit.io.safetensors_file import build_header, tensor_bytes
from graftkit.io.sizes import parse_size

# files beside the weights that make an HF folder usable: config, tokenizer, generation, templates
AUXILIARY_FILES = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer.model",
    "chat_template.jinja",
    "chat_template.json",
    "preprocessor_config.json",
    "processor_config.json",
    # sentence-transformers
    "modules.json",
    "config_sentence_transformers.json",
    "sentence_bert_config.json",
)
AUXILIARY_FOLDERS = ("additional_chat_templates",)
_ST_MODULE_FOLDER = re.compile(r"^\d+_[A-Za-z]\w*$")  # 1_Pooling, 2_Normalize, 2_Dense ...


class CheckpointWriter:
    """Write an HF weights folder: ``model.safetensors`` or shards plus ``model.safetensors.index.json``.

    Use as a context manager: leaving the block normally finishes the folder and renames it
    into place; an exception (or ``abort()``) leaves the target as it was. Without ``with``,
    call ``close()`` to finish.
    """

    def __init__(
        self,
        target: str | Path,
        max_shard_size: int | str = "5GB",
        overwrite: bool = False,
        layout: list[TensorInfo] | None = None,
        weights_name: str = "model.safetensors",
    ) -> None:
        self.target = Path(target).expanduser().absolute()
        self.max_shard_size = parse_size(max_shard_size)
        self.overwrite = overwrite
        if not weights_name.endswith(".safetensors") or "/" in weights_name:
            raise CheckpointError(f"weights_name {weights_name!r} must be a file name ending in .safetensors")
        self.weights_name = weights_name
        self._stem = weights_name[: -len(".safetensors")]
        if self.target.exists() and not overwrite:
            raise CheckpointError(f"output folder {self.target} already exists",
                                  hint="choose another path or pass overwrite=True (--overwrite)")
        if self.target.exists() and not self.target.is_dir():
            raise CheckpointError(f"output path {self.target} is a file, not a folder", hint="choose another path")
        self.layout = None if layout is None else self._check_layout(layout)
        self.folder: Path | None = None  # the temporary folder while writing
        self._cm: Any = None
        self._written: set[str] = set()
        self._done = False
        # buffered mode
        self._buffer: list[tuple[TensorInfo, torch.Tensor]] = []
        self._buffer_size = 0
        self._total = 0
        self._flushed: list[tuple[Path, list[str]]] = []
        # layout mode
        self._plan: dict[str, tuple[int, int, TensorInfo]] = {}  # name -> (shard index, offset, info)
        self._shard_names: list[str] = []
        self._handles: list[BinaryIO] = []

    # --- lifetime -------------------------------------------------------------------------------

    def __enter__(self) -> CheckpointWriter:
        self._open()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self._discard(exc_type, exc, tb)

    def _open(self) -> Path:
        if self._done:
            raise CheckpointError(f"writer for {self.target} is already closed")
        if self.folder is None:
            self._cm = atomic_directory(self.target, overwrite=self.overwrite)
            self.folder = self._cm.__enter__()
            if self.layout is not None:
                try:
                    self._prepare_layout()
                except BaseException:
                    self._discard(*sys.exc_info())
                    raise
        return self.folder

    def close(self) -> Path:
        """Finish the last shard and the index, check every planned tensor arrived, move into place."""
        folder = self._open()
        try:
            self._finish(folder)
        except BaseException:
            self._discard(*sys.exc_info())
            raise
        self._close_handles()
        self._cm.__exit__(None, None, None)
        self._done = True
        return self.target

    def abort(self) -> None:
        """Discard everything written; the target stays as it was."""
        if self.folder is not None and not self._done:
            error = CheckpointError(f"writing {self.target} was aborted")
            self._discard(CheckpointError, error, None)
        self._done = True

    def _discard(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._close_handles()
        self._buffer.clear()
        if self._cm is not None and not self._done:
            self._done = True
            try:
                self._cm.__exit__(exc_type, exc, tb)
            except BaseException as raised:  # the context manager re-raises what it was given
                if raised is not exc:
                    raise

    def _close_handles(self) -> None:
        for handle in self._handles:
            handle.close()
        self._handles = []

    # --- tensors --------------------------------------------------------------------------------

    def write(self, name: str, tensor: torch.Tensor) -> None:
        """Add one tensor (any device, contiguous or not); it is stored as its own dtype."""
        folder = self._open()
        if not isinstance(tensor, torch.Tensor):
            raise CheckpointError(f"tensor {name!r}: expected a torch.Tensor, got {type(tensor).__name__}")
        if not isinstance(name, str) or not name:
            raise CheckpointError(f"tensor names must be non-empty strings, got {name!r}")
        if name in self._written:
            raise CheckpointError(f"tensor {name!r} written twice to {self.target}", hint="write each name once")
        if tensor.dtype not in TORCH_TO_SAFETENSORS:
            raise UnsupportedFormatError(f"tensor {name!r} has dtype {tensor.dtype}, which safetensors cannot store")
        info = TensorInfo(name, tuple(tensor.shape), tensor.dtype)
        if self.layout is not None:
            self._write_planned(info, tensor)
        else:
            self._write_buffered(folder, info, tensor)
        self._written.add(name)

    def _write_buffered(self, folder: Path, info: TensorInfo, tensor: torch.Tensor) -> None:
        if self._buffer and self._buffer_size + info.nbytes > self.max_shard_size:
            self._flush(folder)
        # a private copy: the caller may reuse or modify its tensor after write() returns
        self._buffer.append((info, tensor.detach().to("cpu", copy=True).contiguous()))
        self._buffer_size += info.nbytes
        self._total += info.nbytes

    def _flush(self, folder: Path) -> None:
        if not self._buffer:
            return
        path = folder / f".shard-{len(self._flushed):05d}.partial"
        infos = [info for info, _ in self._buffer]
        header, _ = build_header(infos)
        with open(path, "wb") as f:
            f.write(header)
            for _, t in self._buffer:
                f.write(tensor_bytes(t))
        self._flushed.append((path, [i.name for i in infos]))
        self._buffer.clear()
        self._buffer_size = 0

    def _check_layout(self, layout: list[TensorInfo]) -> list[TensorInfo]:
        seen: set[str] = set()
        for info in layout:
            if info.name in seen:
                raise CheckpointError(f"layout lists tensor {info.name!r} twice")
            if info.dtype not in TORCH_TO_SAFETENSORS:
                raise UnsupportedFormatError(f"layout tensor {info.name!r} has dtype {info.dtype}, "
                                             "which safetensors cannot store")
            seen.add(info.name)
        return [TensorInfo(i.name, tuple(int(d) for d in i.shape), i.dtype) for i in layout]

    def _shard_file(self, index: int, count: int) -> str:
        return self.weights_name if count == 1 else f"{self._stem}-{index + 1:05d}-of-{count:05d}.safetensors"

    def _prepare_layout(self) -> None:
        """Assign shards, write every header and size every file, so tensors can land at their offsets."""
        assert self.layout is not None and self.folder is not None
        groups: list[list[TensorInfo]] = [[]]
        size = 0
        for info in self.layout:
            if groups[-1] and size + info.nbytes > self.max_shard_size:
                groups.append([])
                size = 0
            groups[-1].append(info)
            size += info.nbytes
        count = len(groups)
        for i, group in enumerate(groups):
            header, offsets = build_header(group)
            name = self._shard_file(i, count)
            handle = open(self.folder / name, "w+b")
            self._handles.append(handle)
            handle.write(header)
            handle.truncate(len(header) + sum(info.nbytes for info in group))
            self._shard_names.append(name)
            for info in group:
                self._plan[info.name] = (i, offsets[info.name], info)

    def _write_planned(self, info: TensorInfo, tensor: torch.Tensor) -> None:
        if info.name not in self._plan:
            close = _closest(info.name, self._plan)
            raise CheckpointError(f"tensor {info.name!r} is not in the planned layout of {self.target}",
                                  hint=f"closest planned names: {close}" if close else None)
        shard, offset, planned = self._plan[info.name]
        if planned.shape != info.shape:
            raise ShapeMismatchError(
                f"tensor {info.name!r} has shape {list(info.shape)}, the layout planned {list(planned.shape)}")
        if planned.dtype != info.dtype:
            raise CheckpointError(
                f"tensor {info.name!r} has dtype {info.dtype}, the layout planned {planned.dtype}",
                hint="cast it with .to(dtype) before writing")
        handle = self._handles[shard]
        handle.seek(offset)
        handle.write(tensor_bytes(tensor))

    def _finish(self, folder: Path) -> None:
        if self.layout is not None:
            missing = [i.name for i in self.layout if i.name not in self._written]
            if missing:
                more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
                raise CheckpointError(
                    f"{len(missing)} planned tensor(s) never written to {self.target}: "
                    f"{', '.join(missing[:5])}{more}")
            for handle in self._handles:
                handle.flush()
            weight_map = {name: self._shard_names[s] for name, (s, _, _) in self._plan.items()}
            total = sum(i.nbytes for i in self.layout)
            shard_count = len(self._shard_names)
        else:
            self._flush(folder)
            if not self._flushed:
                raise CheckpointError(f"no tensors were written to {self.target}",
                                      hint="write at least one tensor before closing")
            shard_count = len(self._flushed)
            weight_map = {}
            for i, (path, names) in enumerate(self._flushed):
                final = self._shard_file(i, shard_count)
                path.rename(folder / final)
                weight_map.update({n: final for n in names})
            total = self._total
        if shard_count > 1:
            index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
            self.write_json(f"{self.weights_name}.index.json", index)

    # --- other files ----------------------------------------------------------------------------

    def copy_auxiliary(self, source: str | Path | Any) -> list[str]:
        """Copy config, tokenizer, generation config, chat template and sentence-transformers files.

        ``source`` is an HF folder (or a Checkpoint opened from one). Files already
        written to this output are kept. Returns the copied paths, relative to the folder.
        """
        folder = self._open()
        src = getattr(source, "folder", source)
        if src is None or not Path(src).is_dir():
            raise MissingPathError(f"{src} is not a model folder to copy auxiliary files from",
                                   hint="pass the HF folder the weights came from")
        src = Path(src)
        copied: list[str] = []
        for name in AUXILIARY_FILES:
            if (src / name).is_file() and not (folder / name).exists():
                shutil.copy2(src / name, folder / name)
                copied.append(name)
        for sub in sorted(p for p in src.iterdir() if p.is_dir()):
            if (sub.name in AUXILIARY_FOLDERS or _ST_MODULE_FOLDER.match(sub.name)) and not (folder / sub.name).exists():
                shutil.copytree(sub, folder / sub.name)
                copied.extend(str(p.relative_to(folder)) for p in sorted((folder / sub.name).rglob("*")) if p.is_file())
        return copied

    def write_text(self, name: str, text: str) -> Path:
        """Write a text file (README.md, a recipe) into the output folder."""
        path = self._aux_path(name)
        path.write_text(text, encoding="utf-8")
        return path

    def write_json(self, name: str, obj: Any) -> Path:
        """Write ``obj`` as indented JSON into the output folder."""
        return self.write_text(name, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")

    def _aux_path(self, name: str) -> Path:
        folder = self._open()
        rel = Path(name)
        if rel.is_absolute() or ".." in rel.parts or not rel.parts:
            raise CheckpointError(f"{name!r} must be a relative path inside the output folder")
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        return path


def _closest(name: str, names: Any) -> str:
    import difflib

    return ", ".join(difflib.get_close_matches(name, list(names), n=3, cutoff=0.5))
