"""Activation capture with forward hooks, pooled per input, with bounded memory.

``LayerRecorder`` runs one batch through a model and returns one pooled
(samples, features) matrix per requested layer; ``capture`` loops it over
batches and keeps the results. Layers are named generically:

- HF transformers models: ``"embeddings"`` and ``"block.0"`` ... ``"block.{L-1}"``
  are the hidden states after the embeddings and after each transformer block
  (``output_hidden_states``); any other name is a module of ``named_modules()``.
- plain torch models: any module name of ``named_modules()``; by default every
  leaf module.

Token pooling honours the attention mask: ``mean`` (over real tokens), ``first``
(the CLS position), ``last`` (the last real token, for decoders), ``all`` (every
real token is a sample; at most ``max_tokens`` are kept by priority sampling, the
same tokens for every layer), ``flatten`` (positions concatenated; fixed-length
inputs only). Convolutional outputs (B, C, H, W) are averaged over space by
``mean`` and give one sample per position with ``all``.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from graftkit.errors import ConfigError, DataError, ShapeMismatchError
from graftkit.progress import track

POOLINGS = ("mean", "first", "last", "all", "flatten")
BLOCKS = "blocks"


def is_hf_model(model: nn.Module) -> bool:
    """True for transformers ``PreTrainedModel`` subclasses (checked without importing transformers)."""
    return any(c.__name__ == "PreTrainedModel" for c in type(model).__mro__)


def hf_num_blocks(model: nn.Module) -> int | None:
    config = getattr(model, "config", None)
    if config is None:
        return None
    for attr in ("num_hidden_layers", "n_layer", "num_layers"):
        value = getattr(config, attr, None)
        if isinstance(value, int):
            return value
    return None


def hidden_state_names(model: nn.Module) -> list[str]:
    """``embeddings``, ``block.0`` ... for an HF model; empty for a plain one."""
    if not is_hf_model(model):
        return []
    blocks = hf_num_blocks(model)
    if blocks is None:
        return []
    return ["embeddings"] + [f"block.{i}" for i in range(blocks)]


def default_layers(model: nn.Module) -> list[str]:
    """The transformer blocks of an HF model, or every leaf module of a plain one."""
    names = hidden_state_names(model)
    if names:
        return names[1:]
    leaves = [n for n, m in model.named_modules() if n and not any(True for _ in m.children())]
    if not leaves:
        raise ConfigError(
            f"{type(model).__name__} has no submodules to hook",
            hint="pass layers=[...] with module names, or wrap the model in nn.Sequential",
        )
    return leaves


def resolve_layers(model: nn.Module, layers: str | Iterable[str] | None) -> list[str]:
    """Check requested layer names against the model before any forward pass."""
    if layers is None or layers == BLOCKS:
        return default_layers(model)
    if layers == "all":
        names = hidden_state_names(model)
        return names if names else default_layers(model)
    if isinstance(layers, str):
        layers = [layers]
    layers = list(layers)
    if not layers:
        raise ConfigError("no layers requested", hint="pass layers=None for the default layers")
    known_states = set(hidden_state_names(model))
    modules = dict(model.named_modules())
    for name in layers:
        if name not in known_states and name not in modules:
            candidates = sorted(known_states) + [n for n in modules if n]
            close = difflib.get_close_matches(name, candidates, n=3)
            hint = f"did you mean {', '.join(close)}?" if close else (
                f"valid names include: {', '.join(candidates[:8])}"
            )
            raise ConfigError(f"{type(model).__name__} has no layer {name!r}", hint=hint)
    if len(set(layers)) != len(layers):
        raise ConfigError("a layer is requested twice", hint="list each layer once")
    return layers


def _first_tensor(output: Any) -> torch.Tensor | None:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, Mapping):
        if "last_hidden_state" in output:
            return output["last_hidden_state"]
        output = list(output.values())
    if isinstance(output, (tuple, list)):
        for item in output:
            found = _first_tensor(item)
            if found is not None:
                return found
    return None


def pool(h: torch.Tensor, pooling: str, mask: torch.Tensor | None, layer: str) -> torch.Tensor:
    """Pool one layer's batch output (B, ...) into (samples, features)."""
    if h.dim() == 2:
        return h
    if h.dim() == 1:
        return h[:, None]
    if h.dim() == 3:  # (B, T, D) sequence
        m = mask if mask is not None and tuple(mask.shape) == tuple(h.shape[:2]) else None
        if pooling == "mean":
            if m is None:
                return h.mean(1)
            w = m.to(h.dtype)[:, None, :]  # (B, 1, T): the masked sum as one batched product, no (B, T, D) temporary
            return torch.bmm(w, h).squeeze(1) / w.sum(2).clamp_min(1.0)
        if pooling == "first":
            return h[:, 0]
        if pooling == "last":
            if m is None:
                return h[:, -1]
            positions = torch.arange(h.shape[1], device=h.device).expand_as(m)
            last = torch.where(m.bool(), positions, torch.full_like(positions, -1)).max(1).values.clamp_min(0)
            return h[torch.arange(h.shape[0], device=h.device), last]
        if pooling == "all":
            return h[m.bool()] if m is not None else h.reshape(-1, h.shape[-1])
        return h.reshape(h.shape[0], -1)
    # (B, C, *spatial) convolutional map
    if pooling == "mean":
        return h.flatten(2).mean(2)
    if pooling == "all":
        return h.flatten(2).transpose(1, 2).reshape(-1, h.shape[1])
    if pooling == "flatten":
        return h.reshape(h.shape[0], -1)
    raise ConfigError(
        f"layer {layer!r}: pooling {pooling!r} does not apply to a {h.dim()}-D output of shape {tuple(h.shape)}",
        hint="use pooling='mean', 'all' or 'flatten' for convolutional maps",
    )


def _split_batch(batch: Any) -> tuple[tuple, dict, torch.Tensor | None]:
    """(args, kwargs, attention mask) of one batch: a dict of tensors, a tensor, or (inputs, labels)."""
    if isinstance(batch, Mapping):
        kwargs = dict(batch)
        return (), kwargs, kwargs.get("attention_mask")
    if isinstance(batch, (tuple, list)):
        if not batch:
            raise DataError("an empty batch", hint="every batch needs the model's input")
        return (batch[0],), {}, None
    return (batch,), {}, None


def _to(value: Any, device: torch.device) -> Any:
    return value.to(device) if isinstance(value, torch.Tensor) else value


class LayerRecorder:
    """Hooks on one model: ``recorder(batch)`` returns ``{layer: pooled (samples, features)}``.

    Use as a context manager; hooks are removed and the model's training mode is
    restored on exit (capture always runs in eval mode: dropout would make a model
    differ from itself).
    """

    def __init__(self, model: nn.Module, layers: str | Iterable[str] | None = None, pooling: str = "mean"):
        if pooling not in POOLINGS:
            close = difflib.get_close_matches(str(pooling), POOLINGS, n=1)
            raise ConfigError(
                f"unknown pooling {pooling!r}",
                hint=f"did you mean {close[0]!r}?" if close else f"choose one of: {', '.join(POOLINGS)}",
            )
        self.model = model
        self.pooling = pooling
        self.layers = resolve_layers(model, layers)
        states = set(hidden_state_names(model))
        self._from_states = [n for n in self.layers if n in states]
        self._hooked = [n for n in self.layers if n not in states]
        self._outputs: dict[str, torch.Tensor] = {}
        self._handles: list[Any] = []
        self._was_training = model.training
        try:
            self.device = next(model.parameters()).device
        except StopIteration:
            self.device = torch.device("cpu")

    def __enter__(self) -> LayerRecorder:
        modules = dict(self.model.named_modules())
        for name in self._hooked:
            self._handles.append(modules[name].register_forward_hook(self._hook(name)))
        self.model.eval()
        return self

    def __exit__(self, *exc: Any) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.model.train(self._was_training)

    def _hook(self, name: str) -> Callable:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            tensor = _first_tensor(output)
            if tensor is None:
                raise ShapeMismatchError(
                    f"layer {name!r} ({type(module).__name__}) returned no tensor",
                    hint="hook a module whose output is a tensor",
                )
            self._outputs[name] = tensor.detach()

        return hook

    @torch.inference_mode()
    def __call__(self, batch: Any) -> dict[str, torch.Tensor]:
        args, kwargs, mask = _split_batch(batch)
        args = tuple(_to(a, self.device) for a in args)
        kwargs = {k: _to(v, self.device) for k, v in kwargs.items()}
        mask = _to(mask, self.device)
        if self._from_states:
            kwargs["output_hidden_states"] = True
        self._outputs.clear()
        output = self.model(*args, **kwargs)
        result: dict[str, torch.Tensor] = {}
        if self._from_states:
            states = getattr(output, "hidden_states", None)
            if states is None:
                states = getattr(output, "encoder_hidden_states", None)
            if states is None:
                raise ShapeMismatchError(
                    f"{type(self.model).__name__} returned no hidden states",
                    hint="name modules to hook instead (see model.named_modules())",
                )
            index = {n: i for i, n in enumerate(hidden_state_names(self.model))}
            for name in self._from_states:
                result[name] = pool(states[index[name]], self.pooling, mask, name)
        for name in self._hooked:
            if name not in self._outputs:
                raise ShapeMismatchError(
                    f"layer {name!r} did not run in the forward pass",
                    hint="pick a module that the model's forward uses",
                )
            result[name] = pool(self._outputs[name], self.pooling, mask, name)
        self._outputs.clear()
        return {name: result[name] for name in self.layers}


@dataclass
class Activations:
    """Pooled activations of one model: ``acts[layer]`` is a float (samples, features) tensor on CPU."""

    features: dict[str, torch.Tensor]
    pooling: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def layers(self) -> list[str]:
        return list(self.features)

    @property
    def n(self) -> int:
        return next(iter(self.features.values())).shape[0] if self.features else 0

    def __getitem__(self, layer: str) -> torch.Tensor:
        return self.features[layer]

    def __iter__(self) -> Iterator[str]:
        return iter(self.features)

    def __len__(self) -> int:
        return len(self.features)

    def items(self):
        return self.features.items()


class TokenReservoir:
    """Keeps a uniform sample of at most ``k`` rows per layer over a stream (priority sampling).

    Each batch's rows get random keys from a generator seeded by (seed, batch
    index), so every layer with the same row count keeps the same rows; the
    smallest ``k`` keys survive. Memory is k x features per layer.
    """

    def __init__(self, k: int, seed: int = 0):
        if k < 1:
            raise ConfigError(f"max_tokens must be positive, got {k}", hint="use e.g. 10000")
        self.k = k
        self.seed = seed
        self._keys: dict[str, torch.Tensor] = {}
        self._rows: dict[str, torch.Tensor] = {}

    def add(self, batch_index: int, features: dict[str, torch.Tensor]) -> None:
        for name, rows in features.items():
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + batch_index)
            keys = torch.rand(rows.shape[0], generator=generator, dtype=torch.float64)
            if name in self._keys:
                keys = torch.cat([self._keys[name], keys])
                rows = torch.cat([self._rows[name], rows])
            if keys.shape[0] > self.k:
                keep = torch.topk(keys, self.k, largest=False).indices
                keys, rows = keys[keep], rows[keep]
            self._keys[name], self._rows[name] = keys, rows

    def result(self) -> dict[str, torch.Tensor]:
        out = {}
        for name, keys in self._keys.items():
            order = torch.argsort(keys)
            out[name] = self._rows[name][order]
        return out


def capture(
    model: nn.Module,
    batches: Iterable[Any],
    layers: str | Iterable[str] | None = None,
    pooling: str = "mean",
    *,
    max_tokens: int = 10_000,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    on_batch: Callable[[dict[str, torch.Tensor]], None] | None = None,
    keep: bool = True,
    description: str = "capturing activations",
) -> Activations:
    """Run ``batches`` through ``model`` and return pooled activations per layer.

    ``batches``: dicts of tensors (tokenizer output; the attention mask is used for
    pooling), tensors, or (inputs, labels) tuples. ``pooling='all'`` keeps at most
    ``max_tokens`` token rows per layer (the same tokens for every layer).
    ``on_batch`` receives each batch's pooled features, for streaming statistics
    (``GramAccumulator``, ``MinibatchCKA``); with ``keep=False`` nothing is stored.
    Stored activations are ``dtype`` on CPU. When ``batches`` ran its inputs in another
    order (``TextBatches(..., order="length")`` sorts by token count to avoid padding), the
    rows are put back in the order of the inputs (token rows of ``pooling='all'`` stay in the
    order they ran); ``on_batch`` sees the batches as they ran.
    """
    recorder = LayerRecorder(model, layers, pooling)
    stored: dict[str, list[torch.Tensor]] = {name: [] for name in recorder.layers}
    reservoir = TokenReservoir(max_tokens, seed) if pooling == "all" else None
    seen = 0
    with recorder:
        for index, batch in enumerate(track(batches, description)):
            features = recorder(batch)
            if on_batch is not None:
                on_batch(features)
            if not keep:
                continue
            features = {k: v.to("cpu", dtype) for k, v in features.items()}
            if reservoir is not None:
                reservoir.add(index, features)
            else:
                for name, value in features.items():
                    stored[name].append(value)
            seen += 1
    if keep and seen == 0:
        raise DataError("no batches to capture activations from", hint="pass at least one batch of inputs")
    if not keep:
        return Activations({}, pooling, {"model": type(model).__name__})
    if reservoir is not None:
        return Activations(reservoir.result(), pooling, {"model": type(model).__name__})
    result = {k: torch.cat(v) for k, v in stored.items()}
    order = getattr(batches, "order", None)
    if order is not None:
        result = {k: _input_order(v, order, k) for k, v in result.items()}
    return Activations(result, pooling, {"model": type(model).__name__})


def _input_order(rows: torch.Tensor, order: list[int], layer: str) -> torch.Tensor:
    """Rows captured in ``order`` (row r belongs to input ``order[r]``) put back in input order."""
    if rows.shape[0] != len(order):
        raise ShapeMismatchError(
            f"layer {layer!r} gave {rows.shape[0]} rows for {len(order)} reordered inputs",
            hint="pooling must give one row per input when the batches run in a different order",
        )
    inverse = torch.empty(len(order), dtype=torch.long)
    inverse[torch.tensor(order, dtype=torch.long)] = torch.arange(len(order))
    return rows[inverse]
