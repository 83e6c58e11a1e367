"""Run a model's layer stack one block at a time from cached block inputs.

RegMean++ needs the input of block l after blocks 0..l-1 have been merged. Running the
whole model up to block l for every l costs L(L+1)/2 block passes; keeping each batch's
input of the current block and stepping it through the newly merged block costs one pass
per block. Besides the hidden states, a block takes arguments the model computes once
from the batch (attention masks, rotary position embeddings, per-layer masks for
sliding-window layers): one full forward records every block's call, and later steps
reuse them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from graftkit.merge.statistics.gram import GramRecorder


def block_of(model: nn.Module, module_paths: Sequence[str]) -> tuple[str, int] | None:
    """(stack path, index) of the block of an ``nn.ModuleList`` that holds every module in ``module_paths``.

    None when the modules sit in no block, or in different ones.
    """
    modules = dict(model.named_modules())
    found: set[tuple[str, int]] = set()
    for path in module_paths:
        parts = path.split(".")
        hit = None
        for k in range(len(parts) - 1, 0, -1):
            parent = ".".join(parts[:k])
            if parts[k].isdigit() and isinstance(modules.get(parent), nn.ModuleList):
                hit = (parent, int(parts[k]))
        if hit is None:
            return None
        found.add(hit)
    return found.pop() if len(found) == 1 else None


class _Call:
    """A block's recorded call, its hidden-state argument left out."""

    def __init__(self, args: tuple, kwargs: dict[str, Any]) -> None:
        self.args = args[1:] if args else ()
        self.kwargs = {k: v for k, v in kwargs.items() if k != "hidden_states"}
        self.hidden_is_keyword = not args

    def reads(self, ids: set[int]) -> bool:
        """Whether the call takes one of the tensors ``ids``: state an earlier block computed (T5's
        position bias), which would go stale once that block is merged."""
        return any(id(v) in ids for v in (*self.args, *self.kwargs.values()) if isinstance(v, torch.Tensor))

    def __call__(self, block: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
        if self.hidden_is_keyword:
            out = block(hidden_states=hidden, **self.kwargs)
        else:
            out = block(hidden, *self.args, **self.kwargs)
        return out[0] if isinstance(out, (tuple, list)) else out


class BlockReplay:
    """One model's pass over its calibration batches, advanced block by block.

    ``start(batches, stack, index, recorder)`` runs the whole model once per batch (the
    recorder's hooks live), records every block's call and keeps the input of block
    ``index``; ``step(recorder)`` runs the current block (merged by now) on the kept inputs to
    get the next block's inputs, then that next block under the recorder's hooks. The first
    step checks its inputs against a real forward pass on one batch; ``supported`` turns
    False when they differ, or when the blocks cannot be replayed at all (a key-value cache,
    or a tensor one block returns for the next, such as T5's position bias, is threaded
    through them), and the caller then runs whole forward passes instead.
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.stack: str | None = None
        self.index = -1
        self.supported = True
        self._verified = False
        self._blocks: nn.ModuleList | None = None
        self._batches: list[dict[str, torch.Tensor]] = []
        self._calls: list[list[_Call | None]] = []
        self._hidden: list[torch.Tensor] = []

    def ready_for(self, stack: str, index: int) -> bool:
        """True when block ``index`` of ``stack`` is the next one this replay can run."""
        return self.supported and self.stack == stack and self.index == index - 1

    def start(self, batches: Sequence[dict[str, torch.Tensor]], stack: str, index: int, recorder: GramRecorder) -> None:
        """Whole forward passes (Grams recorded for every batch, replayable or not), blocks' calls kept."""
        blocks = self.model.get_submodule(stack)
        self.stack, self.index, self._blocks, self._batches = stack, index, blocks, list(batches)
        self._calls, self._hidden = [], []
        config = getattr(self.model, "config", None)
        use_cache = getattr(config, "use_cache", None)
        if use_cache is not None:
            config.use_cache = False  # a cache threaded through the blocks would grow with every replayed pass
        try:
            for batch in self._batches:
                calls: list[_Call | None] = [None] * len(blocks)
                kept: list[torch.Tensor] = []

                def pre_hook(j: int):
                    def record(_module: nn.Module, args: tuple, kwargs: dict) -> None:
                        calls[j] = _Call(args, kwargs)
                        if j == index:
                            kept.append(_hidden_of(args, kwargs))

                    return record

                produced: set[int] = set()  # tensors a block returns besides its hidden state

                def post_hook(_module: nn.Module, _args: tuple, out: object) -> None:
                    if isinstance(out, (tuple, list)):
                        produced.update(id(t) for t in out[1:] if isinstance(t, torch.Tensor))

                handles = [b.register_forward_pre_hook(pre_hook(j), with_kwargs=True) for j, b in enumerate(blocks)]
                handles += [b.register_forward_hook(post_hook) for b in blocks]
                try:
                    recorder.run(lambda: self.model(**batch), batch.get("attention_mask"), stop_early=False)
                finally:
                    for handle in handles:
                        handle.remove()
                if len(kept) != 1 or any(c is None or _has_cache(c) or c.reads(produced) for c in calls):
                    self.supported = False
                self._calls.append(calls)
                self._hidden.extend(kept[:1])
        finally:
            if use_cache is not None:
                config.use_cache = use_cache

    def step(self, recorder: GramRecorder) -> bool:
        """Advance to the next block and run it under ``recorder``; False (nothing recorded) if it cannot."""
        block = self._blocks[self.index]
        with torch.no_grad():
            hidden = [calls[self.index](block, h) for calls, h in zip(self._calls, self._hidden)]
        if not self._verified:
            self._verified = True
            if not self._matches_forward(self._batches[0], self.index + 1, hidden[0]):
                self.supported = False
                return False
        self.index += 1
        self._hidden = hidden
        block = self._blocks[self.index]
        for calls, h, batch in zip(self._calls, hidden, self._batches):
            recorder.run(lambda: calls[self.index](block, h), batch.get("attention_mask"))
        return True

    def _matches_forward(self, batch: dict[str, torch.Tensor], index: int, hidden: torch.Tensor) -> bool:
        """Whether ``hidden`` is what a real forward pass feeds block ``index`` on ``batch``."""
        seen: list[torch.Tensor] = []

        def capture(_module: nn.Module, args: tuple, kwargs: dict) -> None:
            seen.append(_hidden_of(args, kwargs))
            raise _Stop

        handle = self._blocks[index].register_forward_pre_hook(capture, with_kwargs=True)
        try:
            with torch.no_grad():
                self.model(**batch)
        except _Stop:
            pass
        finally:
            handle.remove()
        return bool(seen) and seen[0].shape == hidden.shape and torch.allclose(seen[0], hidden, rtol=1e-4, atol=1e-5)


def _hidden_of(args: tuple, kwargs: dict[str, Any]) -> torch.Tensor:
    """The hidden state a block is called with: its first argument, or ``hidden_states=``."""
    return (args[0] if args else kwargs["hidden_states"]).detach()


def _has_cache(call: _Call) -> bool:
    return any(call.kwargs.get(k) is not None for k in ("past_key_values", "past_key_value", "layer_past"))


class _Stop(Exception):
    """Ends a checking forward pass once the block's input is seen."""
