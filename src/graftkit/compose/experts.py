"""One frozen model whose layers serve as experts: lazy loading, and calling a single layer correctly.

Calling layer k of an HF model on its own needs exactly what the model would pass it:
the attention mask in the model's own format (causal, sliding-window, padding), rotary
position embeddings, relative position biases. Rather than rebuild these per architecture,
``context`` runs the model's own forward once with its layer stack replaced by recorders
that store each layer's arguments and pass the hidden state through; the pass stops after
the last layer needed. That costs the embeddings and mask set-up, not the layers. The hidden
state reaching the first recorder is the model's embedding output (positions, scaling,
embedding norm included), which the runtime uses as its input.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from graftkit.compose.arch import ArchInfo, describe, describe_config, get_module
from graftkit.errors import CompositionError


class _Stop(Exception):
    """Raised by the last recorder needed: the rest of the model's forward is skipped."""


@dataclass
class LayerContext:
    """The arguments an expert's layers receive (besides the hidden state), and its embedding output."""

    args: dict[int, tuple[tuple[Any, ...], dict[str, Any]]] = field(default_factory=dict)
    embeddings: torch.Tensor | None = None


class _Recorder(nn.Module):
    """Stands in for layer ``index`` during a context pass; forwards attribute reads to the real layer."""

    def __init__(self, expert: ExpertModel, index: int, stop_after: int) -> None:
        super().__init__()
        object.__setattr__(self, "_expert", expert)
        object.__setattr__(self, "_index", index)
        object.__setattr__(self, "_stop_after", stop_after)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._expert._real_layers[self._index], name)

    def forward(self, hidden: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        ctx = self._expert._recording
        ctx.args[self._index] = (args, kwargs)
        if self._index == 0:
            ctx.embeddings = hidden
        if self._expert._tuple_output is None:  # learn once what the model's loop expects back
            out = self._expert._real_layers[self._index](hidden, *args, **kwargs)
            self._expert._tuple_output = isinstance(out, tuple)
        if self._index >= self._stop_after:
            raise _Stop
        return (hidden,) if self._expert._tuple_output else hidden


class ExpertModel:
    """A frozen HF model named ``name``: a zoo name, a model folder, or an nn.Module already built.

    Structure (``info``) comes from the config on the meta device, so validation reads no
    weights; ``model`` loads on first use. Encoder-decoder and vision models are described
    but refused as layer experts: their layers need encoder states or pixels the runtime
    does not have.
    """

    def __init__(self, name: str, source: str | Path | nn.Module | None = None) -> None:
        self.name = name
        self.source = name if source is None else source
        self._model: nn.Module | None = source if isinstance(source, nn.Module) else None
        self._config: Any = None
        self._info: ArchInfo | None = None
        self._tokenizer: Any = None
        self._tuple_output: bool | None = None
        self._recording = LayerContext()
        self._real_layers: nn.ModuleList | None = None
        self._frozen = False
        self._layers: nn.ModuleList | None = None

    # ------------------------------------------------------------------ lazy parts
    @property
    def folder(self) -> Path | None:
        if isinstance(self.source, nn.Module):
            return None
        path = Path(self.source)
        if (path / "config.json").is_file():
            return path
        from graftkit import zoo

        try:
            zoo.resolve(str(self.source))
        except Exception:  # noqa: BLE001 - any failure means "not a zoo name"; said below
            raise CompositionError(
                f"expert {self.name!r}: {self.source} is neither a model folder (no config.json) nor a graftkit zoo name",
                hint="give a folder written by save_pretrained or one of `graft zoo list`") from None
        return zoo.get(str(self.source))

    @property
    def config(self) -> Any:
        if self._config is None:
            if self._model is not None:
                self._config = self._model.config
            else:
                from transformers import AutoConfig

                self._config = AutoConfig.from_pretrained(self.folder, trust_remote_code=False)
        return self._config

    @property
    def info(self) -> ArchInfo:
        if self._info is None:
            if self._model is not None:
                self._info = describe(self._model, self.name)
            else:
                self._info = describe_config(self.config, self._model_class(), self.name)
        return self._info

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def _model_class(self) -> type:
        import transformers

        names = [a for a in (getattr(self.config, "architectures", None) or []) if hasattr(transformers, a)]
        return getattr(transformers, names[0]) if names else transformers.AutoModel

    @property
    def model(self) -> nn.Module:
        """The model, loaded on first access (float32, eval mode, every parameter frozen)."""
        if self._model is None:
            self._model = self._model_class().from_pretrained(self.folder, dtype=torch.float32, trust_remote_code=False)
        if not self._frozen:  # once: this property is read on every layer call
            self._model.eval()
            for p in self._model.parameters():
                p.requires_grad_(False)
            self._frozen = True
        return self._model

    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            folder = None if isinstance(self.source, nn.Module) else self.folder
            if folder is None or not (folder / "tokenizer_config.json").is_file() and not (folder / "tokenizer.json").is_file():
                return None
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(folder)
        return self._tokenizer

    def set_tokenizer(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer

    # ------------------------------------------------------------------ checks without weights
    def check_usable(self) -> None:
        """CompositionError unless this model's layers can serve as experts (reads only the config)."""
        info = self.info
        if info.family in ("encoder-decoder", "vision"):
            raise CompositionError(
                f"expert {self.name!r} is a {info.family} model ({info.model_type}); its layers need "
                f"{'encoder states' if info.family == 'encoder-decoder' else 'image patches'} the runtime does not have",
                hint="fuse decoder-only or encoder-only models; link other families with a fusion unit (graftkit.compose.fusion)")

    def check_layer(self, index: int) -> None:
        if not 0 <= index < self.info.num_layers:
            raise CompositionError(
                f"expert {self.name!r} has {self.info.num_layers} layers (0..{self.info.num_layers - 1}); layer {index} is out of range",
                hint=f"use a layer index from 0 to {self.info.num_layers - 1} (negative indices are not accepted)")

    # ------------------------------------------------------------------ running
    @property
    def layers(self) -> nn.ModuleList:
        if self._layers is None:
            self._layers = get_module(self.model, self.info.layers_path)  # type: ignore[assignment]
        return self._layers  # type: ignore[return-value]

    @property
    def hidden_size(self) -> int:
        return self.info.hidden_size

    def context(self, input_ids: torch.Tensor | None, attention_mask: torch.Tensor | None, up_to: int,
                length: int | None = None) -> LayerContext:
        """Run the model's forward until layer ``up_to`` is reached, recording every layer's arguments.

        ``input_ids`` None runs on zero input embeddings of ``length`` tokens (for experts that
        do not share the runtime's tokenizer: only masks and positions are needed from them).
        """
        model = self.model
        base = get_module(model, self.info.base_path) or model
        parent_path, _, attr = self.info.layers_path.rpartition(".")
        parent = get_module(model, parent_path) if parent_path else model
        original = getattr(parent, attr)
        recorders = nn.ModuleList([_Recorder(self, i, up_to) for i in range(len(original))])
        self._recording = LayerContext()
        self._real_layers = original
        self._layers = original
        kwargs: dict[str, Any] = {"attention_mask": attention_mask}
        if input_ids is None:
            batch = 1 if attention_mask is None else attention_mask.shape[0]
            n = length if attention_mask is None else attention_mask.shape[1]
            kwargs["inputs_embeds"] = torch.zeros(batch, n, self.hidden_size, device=self.device)
        else:
            kwargs["input_ids"] = input_ids
        if "use_cache" in inspect.signature(base.forward).parameters:
            kwargs["use_cache"] = False
        setattr(parent, attr, recorders)
        try:
            base(**kwargs)
        except _Stop:
            pass
        finally:
            setattr(parent, attr, original)
        ctx, self._recording = self._recording, LayerContext()
        if up_to not in ctx.args:
            raise CompositionError(f"expert {self.name!r}: its forward never reached layer {up_to}",
                                   hint="this architecture skips layers for this input; report it with the model's config")
        return ctx

    def call_layer(self, index: int, hidden: torch.Tensor, ctx: LayerContext) -> torch.Tensor:
        """Layer ``index`` applied to ``hidden`` with the arguments the model itself would pass."""
        args, kwargs = ctx.args[index]
        out = self.layers[index](hidden, *args, **kwargs)
        return out[0] if isinstance(out, tuple) else out

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def final_norm(self) -> nn.Module | None:
        return get_module(self.model, self.info.final_norm_path)

    def head(self) -> nn.Module | None:
        return get_module(self.model, self.info.head_path)
