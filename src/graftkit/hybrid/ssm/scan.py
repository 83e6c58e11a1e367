"""The linear recurrence h_t = a_t * h_{t-1} + b_t, computed three ways.

``scan_sequential`` is the reference: one step per token, obviously right, slow in Python.
``scan_parallel`` is the log-depth (Hillis-Steele) doubling scan: log2(L) whole-tensor
steps, each combining every position with the one 2^k before it. It multiplies decays
(never divides), so it stays stable for strong decay; it suits wide accelerators, but on a
CPU its L log L memory traffic loses to the plain loop. ``scan_chunked`` is the two-level
(blocked) scan that wins on CPU: the sequence is cut into chunks of T ~ sqrt(L); one loop
of T steps scans every chunk at once (and their cumulative decays), a second loop of L/T
steps carries the state from chunk to chunk, and one multiply-add corrects each chunk by
its incoming state. That is ~2 sqrt(L) Python steps instead of L, with only products of
decays (stable).

Shapes: a, b are (batch, length, *state); h0 is (batch, *state) or None. Returns all h_t.
"""

from __future__ import annotations

import math

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


def scan_chunked(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None = None, chunk: int | None = None) -> torch.Tensor:
    """Two-level scan: all chunks in parallel over their T positions, then the carries across chunks."""
    batch, length = a.shape[:2]
    state = a.shape[2:]
    size = chunk or max(1, math.isqrt(length))
    n = -(-length // size)
    pad = n * size - length
    if pad:  # identity steps at the end: decay 1, input 0
        a = torch.cat([a, a.new_ones(batch, pad, *state)], dim=1)
        b = torch.cat([b, b.new_zeros(batch, pad, *state)], dim=1)
    # time-major within chunks, so every step below reads and writes contiguous memory
    a = a.reshape(batch, n, size, -1).permute(2, 0, 1, 3).contiguous()  # (size, batch, n, state)
    b = b.reshape(batch, n, size, -1).permute(2, 0, 1, 3).contiguous()
    if torch.is_grad_enabled() and (a.requires_grad or b.requires_grad):  # autograd: no out= buffers
        locals_, decays = [b[0]], [a[0]]
        for t in range(1, size):
            locals_.append(torch.addcmul(b[t], a[t], locals_[-1]))
            decays.append(decays[-1] * a[t])
        local, decay = torch.stack(locals_), torch.stack(decays)
    else:  # inference: write every step into preallocated memory
        local, decay = torch.empty_like(b), torch.empty_like(a)
        local[0], decay[0] = b[0], a[0]
        for t in range(1, size):
            torch.addcmul(b[t], a[t], local[t - 1], out=local[t])
            torch.mul(decay[t - 1], a[t], out=decay[t])
    carry = b.new_zeros(batch, b.shape[-1]) if h0 is None else h0.reshape(batch, -1)
    incoming = []  # the state entering each chunk
    for c in range(n):
        incoming.append(carry)
        carry = torch.addcmul(local[-1, :, c], decay[-1, :, c], carry)
    local = torch.addcmul(local, decay, torch.stack(incoming, dim=1))
    return local.permute(1, 2, 0, 3).reshape(batch, n * size, *state)[:, :length]


SCANS = {"sequential": scan_sequential, "parallel": scan_parallel, "chunked": scan_chunked}
