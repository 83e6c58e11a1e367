"""Experts that tokenize differently: refuse, or bridge token positions through the text.

A layer expert reads hidden states position by position, so its positions must mean the
same thing as the runtime's. With one tokenizer they do. With another, graftkit refuses
(CompositionError) unless ``retokenize: true``; then each input row is decoded to text,
re-encoded by the expert's tokenizer, and two sparse maps move hidden states between the
two token sequences by character overlap:

- into the expert: an expert token takes the runtime hidden state of the *first* runtime
  token it overlaps (never a later one, so causal models stay causal);
- back: a runtime token receives the mean output of the expert tokens whose *last*
  overlapping runtime token it is; a runtime token that receives none keeps its input
  (the expert skips it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from graftkit.errors import CompositionError


def same_vocabulary(a: Any, b: Any) -> bool:
    """True when two tokenizers map the same strings to the same ids (None means unknown: treated as equal)."""
    if a is None or b is None:
        return True
    return a.get_vocab() == b.get_vocab()


@dataclass
class TokenBridge:
    """Expert token ids/mask and the two position maps for one batch."""

    expert_mask: torch.Tensor  # (B, Te)
    into: torch.Tensor  # (B, Te, Tb) one-hot rows
    back: torch.Tensor  # (B, Tb, Te) rows averaging expert outputs
    covered: torch.Tensor  # (B, Tb) bool: runtime tokens that receive an expert output

    def to_expert(self, x: torch.Tensor) -> torch.Tensor:
        return self.into @ x

    def from_expert(self, y: torch.Tensor, fallback: torch.Tensor) -> torch.Tensor:
        mapped = self.back @ y
        return torch.where(self.covered.unsqueeze(-1), mapped, fallback)


def _prefix_spans(tokenizer: Any, ids: list[int]) -> tuple[str, list[tuple[int, int]]]:
    """The decoded text and each token's character span, from decoding growing prefixes."""
    spans, prev = [], 0
    for t in range(len(ids)):
        end = len(tokenizer.decode(ids[: t + 1]))
        spans.append((prev, max(prev, end)))
        prev = max(prev, end)
    return tokenizer.decode(ids), spans


def _overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def build_bridge(base_tokenizer: Any, expert_tokenizer: Any, input_ids: torch.Tensor,
                 attention_mask: torch.Tensor | None, expert_name: str) -> TokenBridge:
    """The TokenBridge of one batch from the runtime's tokenizer to an expert's (a fast tokenizer)."""
    if base_tokenizer is None or expert_tokenizer is None:
        raise CompositionError(f"expert {expert_name!r}: re-tokenization needs both tokenizers",
                               hint="give the runtime's and the expert's folders with their tokenizer files")
    if not getattr(expert_tokenizer, "is_fast", False):
        raise CompositionError(f"expert {expert_name!r}: re-tokenization needs a fast tokenizer (character offsets)",
                               hint="save the expert with a tokenizer.json")
    b, tb = input_ids.shape
    mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
    rows = []
    for r in range(b):
        positions = [t for t in range(tb) if mask[r, t]]
        text, spans = _prefix_spans(base_tokenizer, [int(input_ids[r, t]) for t in positions])
        enc = expert_tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        rows.append((positions, spans, [tuple(o) for o in enc["offset_mapping"]]))
    te = max(1, max(len(o) for _, _, o in rows))
    into = torch.zeros(b, te, tb)
    back = torch.zeros(b, tb, te)
    expert_mask = torch.zeros(b, te, dtype=torch.long)
    for r, (positions, spans, offsets) in enumerate(rows):
        for i, span in enumerate(offsets):
            hits = [k for k, s in enumerate(spans) if _overlaps(span, s)]
            if not hits:  # an empty span: the last runtime token starting at or before it
                hits = [max([k for k, s in enumerate(spans) if s[0] <= span[0]] or [0])]
            if not positions:
                continue
            into[r, i, positions[hits[0]]] = 1.0
            back[r, positions[hits[-1]], i] = 1.0
            expert_mask[r, i] = 1
    counts = back.sum(-1, keepdim=True)
    back = back / counts.clamp_min(1)
    return TokenBridge(expert_mask=expert_mask, into=into, back=back, covered=counts.squeeze(-1) > 0)
