"""Turn a config into one task per output tensor, from checkpoint headers alone.

A task says which tensor of which input feeds each slot of the merge (config order,
the base included), the resolved parameters, and the output's name, shape and dtype.
Planning reads only headers and config files, so every problem (missing paths, layer
ranges, shapes, misspelled parameters, tensors that would be dropped) is found before
the first tensor is read; ``build_plan`` reports all of them in one ValidationError.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from graftkit.errors import ConfigError, GraftError, ValidationError
from graftkit.merge import parameters as P
from graftkit.merge.config import InputSlice, MergeConfig, ModelRef, OutputModule, OutputSlice
from graftkit.merge.layers import is_pre_layer, with_layer
from graftkit.merge.references import ResolvedRef, resolve_ref

DTYPES = {
    "float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float64": torch.float64, "fp64": torch.float64,
}
_LAYER_KEYS = ("num_hidden_layers", "n_layer", "num_layers", "n_layers")
_EMBED_HINTS = ("embed_tokens", "wte", "word_embeddings", "shared", "tok_embeddings", "token_embd")


@dataclass
class Source:
    """One distinct input of the merge: a checkpoint, and the LoRA adapter applied on top if any."""

    ref: ResolvedRef
    checkpoint: Any  # graftkit.io.Checkpoint
    lora: Any = None  # graftkit.merge.lora.LoraAdapter
    reader: Any = None  # graftkit.merge.reader.DirectReader, made on first read

    def read(self, name: str) -> Any:
        if self.reader is None:
            from graftkit.merge.reader import DirectReader

            self.reader = DirectReader(self.checkpoint)
        return self.reader.read(name)

    def read_rows(self, name: str, start: int, stop: int) -> Any:
        if self.reader is None:
            from graftkit.merge.reader import DirectReader

            self.reader = DirectReader(self.checkpoint)
        return self.reader.read_rows(name, start, stop)

    @property
    def label(self) -> str:
        return self.ref.label

    @property
    def vocab_size(self) -> int | None:
        return self.checkpoint.architecture.vocab_size


@dataclass(frozen=True)
class TensorInput:
    source: int  # index into MergePlan.sources
    name: str  # the tensor's name in that source


@dataclass
class TensorTask:
    """Everything needed to produce one output tensor."""

    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype
    inputs: list[TensorInput]
    base_index: int | None
    params: dict[str, Any]
    model_params: list[dict[str, Any]]
    t: float = 0.0
    vocab: bool = False  # rows are tokens: aligned (truncated or permuted) before merging
    copy_from: int | None = None  # copy this input unchanged instead of merging

    @property
    def nbytes(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n * torch.empty((), dtype=self.dtype).element_size()


@dataclass
class MergePlan:
    config: MergeConfig
    method: Any  # graftkit.merge.methods.MergeMethod
    sources: list[Source]
    tasks: list[TensorTask]
    reference: int  # the source whose config and auxiliary files the output takes
    out_config: dict[str, Any] | None
    compute_dtype: torch.dtype | None
    out_dtype: torch.dtype | None
    tokenizer: Any = None  # graftkit.merge.tokenizer.VocabularyPlan
    warnings: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # input tensors not written (allow_missing)

    @property
    def total_bytes(self) -> int:
        return sum(t.nbytes for t in self.tasks)

    def describe(self, limit: int = 12) -> str:
        """A readable summary for ``--dry-run``."""
        lines = [
            f"method: {self.method.name}  ({self.method.reference or 'no reference'})",
            "inputs:",
        ]
        for i, src in enumerate(self.sources):
            mark = "  (reference: config, tokenizer)" if i == self.reference else ""
            lora = f" + LoRA {src.ref.lora_path}" if src.lora is not None else ""
            lines.append(f"  [{i}] {src.label} -> {src.ref.path}{lora}{mark}")
        lines.append(
            f"output: {len(self.tasks)} tensors, {self.total_bytes / 1e6:.1f} MB, "
            f"dtype {_dtype_name(self.out_dtype) if self.out_dtype else 'as inputs'}"
        )
        for task in self.tasks[:limit]:
            srcs = ", ".join(f"[{i.source}]" + ("" if i.name == task.name else f"{i.name}") for i in task.inputs)
            what = f"copy [{task.inputs[task.copy_from].source}]" if task.copy_from is not None else srcs
            params = {k: v for k, v in task.params.items() if v is not None}
            per = [{k: v for k, v in mp.items()} for mp in task.model_params]
            lines.append(f"  {task.name} {list(task.shape)} <- {what} params={params} per-model={per}")
        if len(self.tasks) > limit:
            lines.append(f"  ... {len(self.tasks) - limit} more")
        for w in self.warnings:
            lines.append(f"warning: {w}")
        for s in self.skipped:
            lines.append(f"skipped (allow-missing): {s}")
        return "\n".join(lines)


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def parse_dtype(name: str | None, where: str, problems: list[str]) -> torch.dtype | None:
    if name is None:
        return None
    if name not in DTYPES:
        problems.append(f"{where}: unknown dtype {name!r} (use one of float32, float16, bfloat16)")
        return None
    return DTYPES[name]


# ---------------------------------------------------------------------------------------
class _Planner:
    """Builds a MergePlan, collecting every problem instead of stopping at the first."""

    def __init__(self, config: MergeConfig, config_dir: Path | None, allow_missing: bool,
                 out_dtype: str | None) -> None:
        self.config = config
        self.config_dir = config_dir
        self.allow_missing = allow_missing
        self.out_dtype_name = out_dtype
        self.problems: list[str] = []
        self.warnings: list[str] = []
        self.skipped: list[str] = []
        self.sources: list[Source] = []
        self.index: dict[ModelRef, int] = {}
        self.method = None
        self.tasks: list[TensorTask] = []
        self.used: dict[int, set[str]] = {}  # names of each source that some task reads
        self.expected: dict[int, set[str]] = {}  # names of each source that the output should account for
        self.untie = False
        self.compute_dtype: torch.dtype | None = None
        self.out_dtype: torch.dtype | None = None
        self.vocab_rows: int | None = None  # rows of every vocabulary-indexed output tensor, when they change
        self.out_layers: int | None = None
        self.shape_problems: list[str] = []
        self.name_maps: dict[int, dict[str, str]] = {}  # source -> reference name -> its own (graftkit.genome)

    def problem(self, message: str) -> None:
        if message not in self.problems:
            self.problems.append(message)

    # -- inputs --------------------------------------------------------------------------
    def open_sources(self) -> None:
        from graftkit.io import Checkpoint

        for ref in self.config.referenced_models():
            resolved = resolve_ref(ref, self.config_dir)
            if resolved.problem:
                self.problem(resolved.problem)
                continue
            try:
                ck = Checkpoint.open(resolved.path)
            except GraftError as exc:
                self.problem(f"model {ref}: {exc}")
                continue
            lora = None
            if resolved.lora_path is not None:
                from graftkit.merge.lora import LoraAdapter

                try:
                    lora = LoraAdapter.open(resolved.lora_path)
                    for msg in lora.check_against(ck):
                        self.problem(f"{ref}: {msg}")
                except GraftError as exc:
                    self.problem(f"LoRA adapter of {ref}: {exc}")
                    continue
            self.index[ref] = len(self.sources)
            self.sources.append(Source(resolved, ck, lora))

    def check_method(self) -> None:
        from graftkit.merge.methods import get_method

        try:
            self.method = get_method(self.config.merge_method)
        except ConfigError as exc:
            self.problem(str(exc))

    def check_parameter_names(self) -> None:
        """Every parameter key in every scope must belong to the method (misspellings suggested)."""
        if self.method is None:
            return
        from graftkit.merge.methods.base import suggest

        known = [*self.method.global_params, *self.method.model_params, *self.method.statistics]

        def check(params: dict | None, where: str) -> None:
            for key in params or {}:
                if key not in known:
                    self.problem(
                        f"{where}: merge method '{self.method.name}' has no parameter '{key}'"
                        + suggest(key, known)
                    )

        check(self.config.parameters, "parameters")
        for mname, module in self._modules():
            prefix = f"modules.{mname}." if mname else ""
            check(module.parameters, f"{prefix}parameters")
            for i, entry in enumerate(module.models or []):
                check(entry.parameters, f"{prefix}models[{i}] ({entry.model})")
            for i, sl in enumerate(module.slices or []):
                check(sl.parameters, f"{prefix}slices[{i}].parameters")
                for j, src in enumerate(sl.sources):
                    check(src.parameters, f"{prefix}slices[{i}].sources[{j}] ({src.model})")

    def _modules(self) -> list[tuple[str | None, OutputModule]]:
        if self.config.modules:
            return list(self.config.modules.items())
        return [(None, OutputModule(models=self.config.models, slices=self.config.slices))]

    # -- tensors -------------------------------------------------------------------------
    def reference_ref(self) -> ModelRef:
        if self.config.base_model is not None:
            return self.config.base_model
        first = self._modules()[0][1]
        return first.models[0].model if first.models else first.slices[0].sources[0].model

    def plan(self) -> None:
        for mname, module in self._modules():
            prefix = self._module_prefix(mname)
            slices = self._as_slices(module, mname)
            if not slices:
                continue
            self._plan_module(prefix, module, slices, mname)
        self._check_dropped()

    def _module_prefix(self, mname: str | None) -> str:
        """A module of a ``modules:`` config is the tensors under the prefix it names."""
        if mname is None or len(self.config.modules or {}) <= 1:
            return ""
        ref = self.sources[self.index[self.reference_ref()]].checkpoint
        if any(n.startswith(mname + ".") for n in ref.names()):
            return mname + "."
        tops = sorted({n.split(".")[0] for n in ref.names()})
        self.problem(
            f"modules.{mname}: no tensor of the reference model starts with '{mname}.' "
            f"(module names are tensor-name prefixes here; top-level prefixes: {', '.join(tops)})"
        )
        return mname + "."

    def _num_layers(self, ref: ModelRef) -> int:
        return self.sources[self.index[ref]].checkpoint.architecture.num_layers or 0

    def _as_slices(self, module: OutputModule, mname: str | None) -> list[OutputSlice]:
        """``models:`` is one slice over every layer with the base appended, as in mergekit."""
        where = f"modules.{mname}." if mname else ""
        if module.models:
            sources = [
                InputSlice(model=e.model, layer_range=(0, self._num_layers(e.model)), parameters=e.parameters)
                for e in module.models
            ]
            base = self.config.base_model
            if base is not None and all(e.model != base for e in module.models):
                sources.append(InputSlice(model=base, layer_range=(0, self._num_layers(base))))
            counts = {str(s.model): s.layer_range[1] for s in sources}
            if len(set(counts.values())) > 1:
                self.problem(
                    f"{where}models: the models have different numbers of layers ({counts}); "
                    "use 'slices' to say which layers go together"
                )
                return []
            return [OutputSlice(sources=sources, parameters=module.parameters)]
        good = []
        for i, sl in enumerate(module.slices or []):
            ok = True
            lengths = []
            for j, src in enumerate(sl.sources):
                a, b = src.layer_range
                n = self._num_layers(src.model)
                if not (0 <= a < b <= n):
                    self.problem(
                        f"{where}slices[{i}].sources[{j}]: layer_range [{a}, {b}] is out of bounds for "
                        f"{src.model}, which has {n} layers (valid: 0 <= start < end <= {n})"
                    )
                    ok = False
                lengths.append(b - a)
            if len(set(lengths)) > 1:
                self.problem(
                    f"{where}slices[{i}]: sources have unequal lengths {lengths}; "
                    "every source of a slice must span the same number of layers"
                )
                ok = False
            base = sl.base_model or self.config.base_model
            if ok and base is not None and self.method is not None and self.method.uses_base \
                    and all(s.model != base for s in sl.sources):
                a0, b0 = sl.sources[0].layer_range
                sl = sl.model_copy(update={"sources": [*sl.sources, InputSlice(model=base, layer_range=(a0, b0))]})
            if ok:
                good.append(sl)
        return good

    def _names_by_layer(self, src: int, prefix: str) -> dict[int | None, list[str]]:
        ck = self.sources[src].checkpoint
        by: dict[int | None, list[str]] = {}
        for name in ck.names():
            if prefix and not name.startswith(prefix):
                continue
            by.setdefault(ck.layer_of(name), []).append(name)
        return by

    def _plan_module(self, prefix: str, module: OutputModule, slices: list[OutputSlice], mname: str | None) -> None:
        ref_idx = self.index[self.reference_ref()]
        ref_ck = self.sources[ref_idx].checkpoint
        ref_names = self._names_by_layer(ref_idx, prefix)
        pattern = re.compile(ref_ck.architecture.layer_pattern) if ref_ck.architecture.layer_pattern else None
        non_layer = ref_names.get(None, [])
        pre = [n for n in non_layer if is_pre_layer(n)]
        post = [n for n in non_layer if not is_pre_layer(n)]
        extra_post = self._extra_non_layer(slices, prefix, set(non_layer))

        for name in pre:
            self._plan_tensor(name, [(s.model, name, s) for s in slices[0].sources], slices[0], module, 0.0)
        out_layer = 0
        for i, sl in enumerate(slices):
            length = sl.sources[0].layer_range[1] - sl.sources[0].layer_range[0]
            first = self.index[sl.sources[0].model]
            first_ck = self.sources[first].checkpoint
            first_pattern = re.compile(first_ck.architecture.layer_pattern) if first_ck.architecture.layer_pattern else None
            first_names = self._names_by_layer(first, prefix)
            for offset in range(length):
                t = offset / (length - 1) if length > 1 else 1.0
                layer_a = sl.sources[0].layer_range[0] + offset
                for name in first_names.get(layer_a, []):
                    out_name = with_layer(name, pattern or first_pattern, out_layer)
                    ins = []
                    for src in sl.sources:
                        ck = self.sources[self.index[src.model]].checkpoint
                        p = re.compile(ck.architecture.layer_pattern) if ck.architecture.layer_pattern else first_pattern
                        ins.append((src.model, with_layer(name, p, src.layer_range[0] + offset), src))
                    self._plan_tensor(out_name, ins, sl, module, t)
                for src in sl.sources:
                    idx = self.index[src.model]
                    layer_names = self._names_by_layer(idx, prefix).get(src.layer_range[0] + offset, [])
                    self.expected.setdefault(idx, set()).update(layer_names)
                out_layer += 1
        for name in post + extra_post:
            self._plan_tensor(name, [(s.model, name, s) for s in slices[-1].sources], slices[-1], module, 0.0)
        for sl, wanted in ((slices[0], True), (slices[-1], False)):
            for src in sl.sources:
                idx = self.index[src.model]
                names = self._names_by_layer(idx, prefix).get(None, [])
                self.expected.setdefault(idx, set()).update(n for n in names if is_pre_layer(n) == wanted)
        self.out_layers = out_layer

    def _extra_non_layer(self, slices: list[OutputSlice], prefix: str, have: set[str]) -> list[str]:
        """Untied output heads that the (tied) reference lacks but other inputs hold: planned, never dropped."""
        extra: list[str] = []
        ref_ck = self.sources[self.index[self.reference_ref()]].checkpoint
        for sl in (slices[0], slices[-1]):
            for src in sl.sources:
                idx = self.index[src.model]
                for name in self._names_by_layer(idx, prefix).get(None, []):
                    if name not in have and name not in extra and _tied_alias(ref_ck, name) is not None:
                        extra.append(name)
        if extra:
            self.untie = True
        return extra

    def _plan_tensor(self, out_name: str, inputs: list[tuple[ModelRef, str, InputSlice]],
                     sl: OutputSlice, module: OutputModule, t: float) -> None:
        base = sl.base_model or self.config.base_model
        base_index = next((k for k, (ref, _, _) in enumerate(inputs) if base is not None and ref == base), None)
        resolved: list[TensorInput | None] = []
        for ref, name, _ in inputs:
            idx = self.index[ref]
            ck = self.sources[idx].checkpoint
            if name in ck:
                resolved.append(TensorInput(idx, name))
            elif (alias := _tied_alias(ck, name)) is not None:
                resolved.append(TensorInput(idx, alias))
            elif self.name_maps.get(idx, {}).get(name) in ck:  # same canonical id, other name
                resolved.append(TensorInput(idx, self.name_maps[idx][name]))
            else:
                resolved.append(None)
        present = [r for r in resolved if r is not None]
        if not present:
            self.problem(f"tensor {out_name}: no input holds it")
            return
        copy_from = None
        missing = [str(inputs[k][0]) for k, r in enumerate(resolved) if r is None]
        if missing:
            policy = self.method.missing_tensor if self.method is not None else "error"
            if policy == "passthrough" and len(present) == 1:
                copy_from = next(k for k, r in enumerate(resolved) if r is not None)
            elif policy == "base" and base_index is not None and resolved[base_index] is not None:
                copy_from = base_index
            elif self.allow_missing:
                copy_from = next(k for k, r in enumerate(resolved) if r is not None)
                self.skipped.append(f"{out_name}: missing in {', '.join(missing)}; copied from {inputs[copy_from][0]}")
            else:
                self.problem(
                    f"tensor {out_name} is missing in {', '.join(missing)} "
                    "(pass --allow-missing to copy it from the models that have it)"
                )
                return
            resolved = [r if r is not None else present[0] for r in resolved]
        for r in resolved:
            self.used.setdefault(r.source, set()).add(r.name)

        shape, vocab = self._output_shape(out_name, resolved, copy_from)
        if shape is None:
            return
        params, model_params = self._resolve_params(out_name, inputs, sl, module, t, base_index)
        first_dtype = self.sources[resolved[0].source].checkpoint.dtype(resolved[0].name)
        dtype = self.out_dtype or self.compute_dtype or first_dtype
        if not first_dtype.is_floating_point:
            dtype = first_dtype
        self.tasks.append(TensorTask(
            name=out_name, shape=shape, dtype=dtype, inputs=resolved, base_index=base_index,
            params=params, model_params=model_params, t=t, vocab=vocab, copy_from=copy_from,
        ))

    def _output_shape(self, name: str, inputs: list[TensorInput], copy_from: int | None) -> tuple[tuple | None, bool]:
        shapes = [tuple(self.sources[i.source].checkpoint.shape(i.name)) for i in inputs]
        if copy_from is not None:
            shapes = [shapes[copy_from]]
        vocab_sizes = [self.sources[i.source].vocab_size for i in inputs]
        is_vocab = all(
            s and v and len(s) >= 1 and s[0] == v and self.sources[i.source].checkpoint.layer_of(i.name) is None
            for s, v, i in zip(shapes, vocab_sizes, inputs)
        ) if copy_from is None else False
        if is_vocab and self.vocab_rows is not None:
            rest = {s[1:] for s in shapes}
            if len(rest) > 1:
                self.problem(f"tensor {name}: shapes {self._shape_report(inputs, shapes)} differ beyond the vocabulary axis")
                return None, True
            return (self.vocab_rows, *shapes[0][1:]), True
        if len(set(shapes)) > 1:
            self.shape_problems.append(f"shape mismatch for tensor {name}: {self._shape_report(inputs, shapes)}")
            return None, False
        return shapes[0], is_vocab

    def _shape_report(self, inputs: list[TensorInput], shapes: list[tuple]) -> str:
        return ", ".join(f"{self.sources[i.source].label}: {list(s)}" for i, s in zip(inputs, shapes))

    def _resolve_params(self, tensor: str, inputs, sl: OutputSlice, module: OutputModule, t: float,
                        base_index: int | None) -> tuple[dict, list[dict]]:
        if self.method is None:
            return {}, [{} for _ in inputs]
        shared_scopes = [sl.parameters, module.parameters, self.config.parameters]
        params = {}
        for name in self.method.global_params:
            value = P.resolve(name, shared_scopes, tensor, t)
            if not P.is_missing(value):
                params[name] = value
        model_params = []
        for ref, in_name, src in inputs:
            scopes = [src.parameters, *shared_scopes]
            entry = {}
            for name in [*self.method.model_params, *self.method.statistics]:
                value = P.resolve(name, scopes, in_name, t)
                if not P.is_missing(value):
                    entry[name] = value
            model_params.append(entry)
        try:
            params = self.method.resolve_params(params, where=tensor)
            model_params = self.method.resolve_model_params(model_params, len(inputs), base_index, params, where=tensor)
        except ConfigError as exc:
            self.problem(_strip_tensor(str(exc), tensor))
        return params, model_params

    def _check_dropped(self) -> None:
        """Tensors of the inputs that no task reads would vanish from the output: say which."""
        for idx, names in self.expected.items():
            lost = sorted(names - self.used.get(idx, set()))
            if not lost:
                continue
            label = self.sources[idx].label
            shown = ", ".join(lost[:8]) + (f" and {len(lost) - 8} more" if len(lost) > 8 else "")
            if self.allow_missing:
                self.skipped.append(f"{label}: {len(lost)} tensor(s) not in the output: {shown}")
            else:
                self.problem(
                    f"{len(lost)} tensor(s) of {label} would not be written to the output: {shown} "
                    "(the reference model lacks them; pass --allow-missing to skip them)"
                )

    def check_architectures(self) -> bool:
        """Inputs of different widths: one clear line instead of a shape error per tensor."""
        hidden = {s.label: s.checkpoint.architecture.hidden_size for s in self.sources}
        known = {k: v for k, v in hidden.items() if v}
        if len(set(known.values())) > 1:
            self.problem(f"architecture mismatch: hidden sizes differ {known}")
            return False
        types = {s.label: s.checkpoint.architecture.model_type for s in self.sources}
        known_types = {k: v for k, v in types.items() if v}
        if len(set(known_types.values())) > 1:
            self.warnings.append(f"inputs have different model types {known_types}; merging where shapes match")
        return True

    def check_groups(self) -> None:
        """The method's input contract (count of models, base model) for each slice."""
        if self.method is None:
            return
        base_global = self.config.base_model
        for mname, module in self._modules():
            where = f"modules.{mname}" if mname else "config"
            groups = []
            if module.models:
                refs = [e.model for e in module.models]
                if base_global is not None and base_global not in refs:
                    refs.append(base_global)
                groups.append((refs, base_global))
            for sl in module.slices or []:
                base = sl.base_model or base_global
                refs = [s.model for s in sl.sources]
                if base is not None and base not in refs and self.method.uses_base:
                    refs.append(base)
                groups.append((refs, base))
            for refs, base in groups:
                base_index = refs.index(base) if base is not None and base in refs else None
                try:
                    self.method.check_inputs(len(refs), base_index, where=where)
                except ConfigError as exc:
                    self.problem(str(exc))


def _strip_tensor(message: str, tensor: str) -> str:
    """Parameter errors repeat for every tensor; keep them general so they dedupe."""
    return message.replace(f" ({tensor})", "").replace(f" for {tensor}", "")


def _tied_alias(ck: Any, name: str) -> str | None:
    """The input embedding that stands in for a missing output head in a tied model."""
    if not (name.endswith("lm_head.weight") or name.endswith("embed_out.weight")):
        return None
    if ck.architecture.tied_embeddings is False:
        return None
    for candidate in ck.names():
        if ck.layer_of(candidate) is None and any(h in candidate for h in _EMBED_HINTS) and candidate.endswith("weight"):
            return candidate
    return None


def build_plan(
    config: MergeConfig,
    *,
    config_dir: str | Path | None = None,
    allow_missing: bool = False,
    out_dtype: str | None = None,
    verify: bool = True,
) -> MergePlan:
    """Validate ``config`` against the inputs' headers and plan every output tensor.

    Raises ValidationError listing every problem found; reads no tensor data.
    ``out_dtype`` (the CLI's ``--dtype``) overrides the config's ``out_dtype``.
    """
    from graftkit.merge.plan_checks import run_plan_checks

    pl = _Planner(config, Path(config_dir) if config_dir else None, allow_missing, out_dtype)
    pl.compute_dtype = parse_dtype(config.dtype, "dtype", pl.problems)
    pl.out_dtype = parse_dtype(out_dtype or config.out_dtype, "out_dtype", pl.problems) or pl.compute_dtype
    pl.check_method()
    pl.check_parameter_names()
    pl.open_sources()
    if len(pl.index) < len(config.referenced_models()):
        raise ValidationError(pl.problems)
    pl.check_groups()
    if verify:  # graph signatures (graftkit.genome) before any tensor is read; `--no-verify` skips
        from graftkit.genome.compat import verify_planner

        verify_planner(pl)
    tokenizer = None
    choice = config.tokenizer_choice()
    if choice is not None:
        from graftkit.merge.tokenizer import plan_vocabulary

        try:
            tokenizer = plan_vocabulary(config, pl.sources, pl.index, config_dir=pl.config_dir)
            pl.vocab_rows = tokenizer.rows
        except GraftError as exc:
            pl.problem(str(exc))
    else:
        sizes = {s.label: s.vocab_size for s in pl.sources if s.vocab_size}
        if len(set(sizes.values())) > 1:
            pl.vocab_rows = min(sizes.values())
            pl.warnings.append(
                f"vocabulary sizes differ ({sizes}): embedding rows truncated to the largest common "
                f"submatrix ({pl.vocab_rows} rows, as mergekit); set tokenizer_source: union to merge "
                "the vocabularies instead"
            )
    if pl.check_architectures():
        pl.plan()
        shown = pl.shape_problems[:10]
        if len(pl.shape_problems) > 10:
            shown.append(f"... and {len(pl.shape_problems) - 10} more shape mismatches")
        pl.problems.extend(shown)
    plan = MergePlan(
        config=config, method=pl.method, sources=pl.sources, tasks=pl.tasks,
        reference=pl.index.get(pl.reference_ref(), 0), out_config=None,
        compute_dtype=pl.compute_dtype, out_dtype=pl.out_dtype, tokenizer=tokenizer,
        warnings=pl.warnings, skipped=pl.skipped,
    )
    if not pl.problems:
        plan.out_config = _output_config(plan, pl.out_layers, pl.untie)
        pl.problems.extend(run_plan_checks(plan))
    if pl.problems:
        raise ValidationError(pl.problems)
    return plan


def _output_config(plan: MergePlan, out_layers: int | None, untie: bool) -> dict[str, Any] | None:
    """The reference's config.json with the layer count, vocabulary size, ties and dtype of the output."""
    ref = plan.sources[plan.reference].checkpoint
    if ref.config is None:
        return None
    cfg = copy.deepcopy(ref.config)
    layers = ref.architecture.num_layers
    if out_layers is not None and layers is not None and out_layers != layers and not plan.config.modules:
        for key in _LAYER_KEYS:
            if cfg.get(key) == layers:
                cfg[key] = out_layers
        if isinstance(cfg.get("layer_types"), list):
            cfg["layer_types"] = (cfg["layer_types"] * (out_layers // max(1, len(cfg["layer_types"])) + 1))[:out_layers]
    vocab_task = next((t for t in plan.tasks if t.vocab), None)
    if vocab_task is not None and "vocab_size" in cfg:
        cfg["vocab_size"] = vocab_task.shape[0]
    if untie:
        cfg["tie_word_embeddings"] = False
    dtype = plan.out_dtype or next((t.dtype for t in plan.tasks if t.dtype.is_floating_point), None)
    if dtype is not None:
        for key in ("torch_dtype", "dtype"):
            if key in cfg or key == "dtype":
                cfg[key] = _dtype_name(dtype)
    return cfg
