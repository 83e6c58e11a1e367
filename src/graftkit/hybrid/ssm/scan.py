"""The linear recurrence h_t = a_t * h_{t-1} + b_t, computed three ways.

``scan_sequential`` is the reference: one step per token, obviously right, slow in Python.
``scan_parallel`` is the log-depth (Hillis-Steele) doubling scan: log2(L) whole-tensor
steps, each combining every position with the one 2^k before it. It multiplies decays
(never divides), so it stays stable for strong decay. ``scan_chunked`` runs the doubling
scan inside chunks and carries the state across chunks, bounding memory to one chunk's
worth of intermediates.

Shapes: a, b are (batch, length, *state); h0 is (batch, *state) or None. Returns all h_t.
"""

from __future__ import annotations

import torch


def scan_sequential(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None = None) -> torch.Tensor:
    """Reference recurrence, one token at a time."""
    h = torch.zeros_like(b[:, 0]) if h0 is None else h0
    out = []
    for t in range(a.shape[1]):
        h = a[:, t] * h + b[:, t]
        out.append(h)
    return torch.stack(out, dim=1)


def scan_parallel(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None = None) -> torch.Tensor:
    """Hillis-Steele doubling: after step k each position holds the sum over its last 2^k inputs."""
    length = a.shape[1]
    prod, acc = a, b
    shift = 1
    while shift < length:
        acc = torch.cat([acc[:, :shift], prod[:, shift:] * acc[:, :-shift] + acc[:, shift:]], dim=1)
        prod = torch.cat([prod[:, :shift], prod[:, shift:] * prod[:, :-shift]], dim=1)
        shift *= 2
    if h0 is not None:
        acc = acc + prod * h0.unsqueeze(1)  # prod is now the cumulative decay from the start
    return acc


def scan_chunked(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None = None, chunk: int = 256) -> torch.Tensor:
    """Doubling scan per chunk, state carried between chunks (memory ~ one chunk)."""
    outs = []
    h = h0
    for start in range(0, a.shape[1], chunk):
        part = scan_parallel(a[:, start:start + chunk], b[:, start:start + chunk], h)
        h = part[:, -1]
        outs.append(part)
    return torch.cat(outs, dim=1)


SCANS = {"sequential": scan_sequential, "parallel": scan_parallel, "chunked": scan_chunked}
