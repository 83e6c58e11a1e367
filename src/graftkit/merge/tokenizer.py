"""Merging models whose vocabularies differ: one output tokenizer and embedding rows aligned to it.

``tokenizer_source: union`` (or ``tokenizer: {source: union}``) starts from the base
model's tokenizer (else the first model's) and adds every token another model has
and it lacks; ``base`` or a model reference keeps that tokenizer. Each model's
token-indexed tensors (embeddings, LM heads) are then permuted into the output
vocabulary before the merge. A token some model lacks gets, in that model's copy:
the base's row when the base has the token, else the mean of the rows of the models
that have it (so a token only one model knows keeps that model's row), else zeros;
``tokenizer.tokens`` overrides this per token (``source: MODEL``, ``{kind: zero}``,
``{kind: model_token, model, token|token_id}``, ``force``). Padding rows
(``pad_to_multiple_of``) get the mean row, as in mergekit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from graftkit.errors import ConfigError
from graftkit.merge.config import MergeConfig, ModelRef, ModelTokenEmbedding, ZeroEmbedding


def _load_tokenizer(folder: Path | None, label: str) -> Any:
    from transformers import AutoTokenizer

    if folder is None:
        raise ConfigError(f"{label} has no folder to read a tokenizer from")
    try:
        return AutoTokenizer.from_pretrained(str(folder))
    except Exception as exc:
        raise ConfigError(f"{label} has no usable tokenizer in {folder}: {exc}",
                          hint="copy its tokenizer files into the folder, or drop tokenizer_source") from None


@dataclass
class VocabularyPlan:
    tokenizer: Any  # the output tokenizer (transformers)
    rows: int  # output rows of every token-indexed tensor (vocabulary, padded)
    size: int  # tokens in the output vocabulary
    perms: dict[int, torch.Tensor]  # source index -> source row of each output id (-1: missing)
    base: int | None  # source index of the base model
    overrides: dict[int, tuple[str, Any]] = field(default_factory=dict)  # output id -> (kind, detail)
    forced: set[int] = field(default_factory=set)

    def align_all(self, tensors: list[torch.Tensor], sources: list[int]) -> list[torch.Tensor]:
        """Each model's token-indexed tensor permuted into the output vocabulary (rows filled as documented)."""
        first: dict[int, torch.Tensor] = {}
        for t, s in zip(tensors, sources):
            first.setdefault(s, t)
        rest = tensors[0].shape[1:]
        dtype = torch.float32 if not tensors[0].is_floating_point() else tensors[0].dtype
        defaults = torch.zeros((self.size, *rest), dtype=torch.float32)
        counts = torch.zeros(self.size)
        for s, t in first.items():
            perm = self.perms[s][: self.size]
            have = (perm >= 0) & (perm < t.shape[0])
            defaults[have] += t[perm[have]].float()
            counts[have] += 1
        defaults[counts > 0] /= counts[counts > 0].view(-1, *([1] * len(rest)))
        if self.base is not None and self.base in first:
            perm = self.perms[self.base][: self.size]
            have = (perm >= 0) & (perm < first[self.base].shape[0])
            defaults[have] = first[self.base][perm[have]].float()
        for out_id, (kind, detail) in self.overrides.items():
            if kind == "zero":
                defaults[out_id] = 0
            elif kind == "row":
                src, row = detail
                if src in first and 0 <= row < first[src].shape[0]:
                    defaults[out_id] = first[src][row].float()
        aligned: dict[int, torch.Tensor] = {}
        for s, t in first.items():
            out = torch.empty((self.rows, *rest), dtype=torch.float32)
            out[: self.size] = defaults
            perm = self.perms[s][: self.size]
            have = (perm >= 0) & (perm < t.shape[0])
            if self.forced:
                have[list(self.forced)] = False
            out[: self.size][have] = t[perm[have]].float()
            if self.rows > self.size:
                out[self.size:] = out[: self.size].mean(dim=0)
            aligned[s] = out.to(dtype)
        return [aligned[s] for s in sources]

    def common_ids(self) -> torch.Tensor:
        """Output ids that every input model knows (probe tokens for the check)."""
        ok = torch.ones(self.size, dtype=torch.bool)
        for perm in self.perms.values():
            ok &= perm[: self.size] >= 0
        return torch.nonzero(ok).flatten()

    def to_model_ids(self, ids: torch.Tensor, source: int) -> torch.Tensor:
        """Output token ids rewritten as the ids of the same tokens in source ``source``'s own vocabulary."""
        return self.perms[source][ids]

    def save(self, folder: Path) -> None:
        self.tokenizer.save_pretrained(str(folder))


def plan_vocabulary(config: MergeConfig, sources: list[Any], index: dict[ModelRef, int],
                    config_dir: Path | None = None) -> VocabularyPlan:
    """The output tokenizer and each model's permutation into it (reads tokenizer files, no tensors)."""
    choice = config.tokenizer_choice()
    labels = {i: s.label for i, s in enumerate(sources)}
    tokenizers = {i: _load_tokenizer(s.checkpoint.folder, s.label) for i, s in enumerate(sources)}
    base = index.get(config.base_model) if config.base_model is not None else None
    if choice == "base":
        if base is None:
            raise ConfigError("tokenizer source 'base' needs base_model to be set")
        out = tokenizers[base]
    elif isinstance(choice, ModelRef):
        if choice in index:
            out = tokenizers[index[choice]]
        else:
            from graftkit.merge.references import resolve_ref

            ref = resolve_ref(choice, config_dir)
            if ref.problem:
                raise ConfigError(f"tokenizer source: {ref.problem}")
            out = _load_tokenizer(ref.path, str(choice))
    else:
        out = _union(tokenizers, base if base is not None else 0)
    settings = config.tokenizer
    token_cfg = (settings.tokens if settings is not None else None) or {}
    missing_tokens = [t for t in token_cfg if t not in out.get_vocab()]
    if missing_tokens:
        out.add_tokens(missing_tokens)
    vocab = out.get_vocab()
    size = max(vocab.values()) + 1
    rows = size
    pad = settings.pad_to_multiple_of if settings is not None else None
    if pad and rows % pad:
        rows = (rows // pad + 1) * pad
    perms = {}
    for i, tok in tokenizers.items():
        own = tok.get_vocab()
        perm = torch.full((rows,), -1, dtype=torch.long)
        for token, out_id in vocab.items():
            perm[out_id] = own.get(token, -1)
        perms[i] = perm
    plan = VocabularyPlan(tokenizer=out, rows=rows, size=size, perms=perms, base=base)
    for token, setting in token_cfg.items():
        out_id = vocab[token]
        if setting.force:
            plan.forced.add(out_id)
        src = setting.source
        if isinstance(src, ZeroEmbedding):
            plan.overrides[out_id] = ("zero", None)
        elif isinstance(src, ModelTokenEmbedding):
            if src.model not in index:
                raise ConfigError(f"tokenizer.tokens.{token}: model {src.model} is not an input of the merge")
            s = index[src.model]
            row = src.token_id if src.token_id is not None else tokenizers[s].get_vocab().get(src.token, -1)
            if row < 0:
                raise ConfigError(f"tokenizer.tokens.{token}: token {src.token!r} not in {labels[s]}'s vocabulary")
            plan.overrides[out_id] = ("row", (s, row))
        elif isinstance(src, ModelRef):
            if src not in index:
                raise ConfigError(f"tokenizer.tokens.{token}: model {src} is not an input of the merge")
            s = index[src]
            row = int(perms[s][out_id])
            if row < 0:
                raise ConfigError(f"tokenizer.tokens.{token}: {labels[s]} does not have the token {token!r}")
            plan.overrides[out_id] = ("row", (s, row))
    return plan


def _union(tokenizers: dict[int, Any], first: int) -> Any:
    """The tokenizer of model ``first`` with every token of the others it lacks added."""
    import copy

    out = copy.deepcopy(tokenizers[first])
    have = set(out.get_vocab())
    for i, tok in tokenizers.items():
        if i == first:
            continue
        special = set(tok.all_special_tokens)
        new = sorted((t for t in tok.get_vocab() if t not in have), key=lambda t: tok.get_vocab()[t])
        if new:
            from tokenizers import AddedToken

            out.add_tokens([AddedToken(t, special=t in special, normalized=False) for t in new])
            have.update(new)
    return out
