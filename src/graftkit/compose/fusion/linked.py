"""LinkedModel: a frozen anchor model whose layers attend to frozen other models' layers through fusion units.

    other models run first (their hidden states at the linked layers are kept);
    the anchor runs with a forward hook on each linked layer: out = unit(out, other_hidden)

Only the units train. Each unit starts as the identity, so before training the linked
model's outputs equal the anchor's exactly (tested); ``gates()`` shows how far each unit
has opened. Other models may tokenize differently (pass ``other_inputs``) when the unit
is a cross-attention unit; the gated projection needs the same token positions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from graftkit.compose.arch import describe, get_module
from graftkit.errors import CompositionError


@dataclass(frozen=True)
class Link:
    """Anchor layer ``anchor_layer``'s output attends to model ``other``'s layer ``other_layer`` output."""

    anchor_layer: int
    other: str
    other_layer: int
    kind: str = "cross_attention"
    options: tuple[tuple[str, Any], ...] = ()


def _check_layer(label: str, index: int, count: int) -> None:
    if not 0 <= index < count:
        raise CompositionError(f"{label} has {count} layers (0..{count - 1}); layer {index} is out of range",
                               hint=f"link a layer from 0 to {count - 1}")


def _output_hidden(out: Any) -> torch.Tensor:
    return out[0] if isinstance(out, tuple) else out


class LinkedModel(nn.Module):
    def __init__(self, anchor: nn.Module, others: dict[str, nn.Module], links: list[Link]) -> None:
        super().__init__()
        from graftkit.compose.fusion import make_unit

        self.anchor_info = describe(anchor, "anchor")
        self.other_info = {name: describe(m, name) for name, m in others.items()}
        for link in links:
            if link.other not in others:
                raise CompositionError(f"link to model {link.other!r}, which was not given", hint=f"models: {list(others)}")
            _check_layer("anchor", link.anchor_layer, self.anchor_info.num_layers)
            _check_layer(f"model {link.other!r}", link.other_layer, self.other_info[link.other].num_layers)
        object.__setattr__(self, "_anchor", anchor)  # frozen models stay outside the state dict
        object.__setattr__(self, "_others", dict(others))
        for m in [anchor, *others.values()]:
            m.eval()
            for p in m.parameters():
                p.requires_grad_(False)
        self.links = list(links)
        self.units = nn.ModuleList(
            make_unit(l.kind, self.anchor_info.hidden_size, self.other_info[l.other].hidden_size, **dict(l.options))
            for l in links)
        self._other_hidden: dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor | None]] = {}
        layers = get_module(anchor, self.anchor_info.layers_path)
        for i, link in enumerate(self.links):
            layers[link.anchor_layer].register_forward_hook(self._hook(i))

    @property
    def anchor(self) -> nn.Module:
        return self._anchor

    def _hook(self, i: int):
        def hook(module: nn.Module, args: Any, out: Any) -> Any:
            if not self._other_hidden:
                return out  # the anchor called on its own: unchanged
            link = self.links[i]
            other, mask = self._other_hidden[(link.other, link.other_layer)]
            h = self.units[i](_output_hidden(out), other, mask)
            return (h, *out[1:]) if isinstance(out, tuple) else h
        return hook

    def _run_others(self, inputs: dict[str, tuple[torch.Tensor, torch.Tensor | None]]) -> None:
        wanted: dict[str, set[int]] = {}
        for link in self.links:
            wanted.setdefault(link.other, set()).add(link.other_layer)
        for name, layer_ids in wanted.items():
            model, info = self._others[name], self.other_info[name]
            ids, mask = inputs[name]
            captured: dict[int, torch.Tensor] = {}
            layers = get_module(model, info.layers_path)
            handles = [layers[k].register_forward_hook(
                lambda mod, a, out, k=k: captured.__setitem__(k, _output_hidden(out))) for k in layer_ids]
            try:
                base = get_module(model, info.base_path) or model
                with torch.no_grad():
                    base(input_ids=ids, attention_mask=mask)
            finally:
                for handle in handles:
                    handle.remove()
            for k in layer_ids:
                self._other_hidden[(name, k)] = (captured[k], mask)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *,
                other_inputs: dict[str, tuple[torch.Tensor, torch.Tensor | None]] | None = None, **kwargs: Any) -> Any:
        """The anchor's output with the links applied; ``other_inputs`` gives models that tokenize differently their own ids."""
        inputs = {name: (input_ids, attention_mask) for name in self._others}
        inputs.update(other_inputs or {})
        self._run_others(inputs)
        try:
            return self._anchor(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        finally:
            self._other_hidden = {}

    def gates(self) -> list[float]:
        """tanh(gate) of each unit (mean over channels): 0 means the link is still closed."""
        return [float(torch.tanh(u.gate.detach()).abs().mean()) for u in self.units]
