"""The selective scan with one decay per head (Mamba-2's SSD), computed two ways.

Recurrence per head: h_t = exp(log_a_t) h_{t-1} + x_t B_t^T (h: head_dim x d_state),
y_t = h_t C_t. Because the decay is one scalar per head and step (not per state channel,
as in Mamba-1), the scan within a chunk of T steps is a masked matrix product:
y = (L * (C B^T)) x with L[t, s] = exp(sum of log_a over s < k <= t) for s <= t, 0 above the
diagonal. Only the states between chunks form a recurrence, and with L/T chunks that
recurrence is itself one (L/T x L/T) masked product. So ``ssd_chunked`` has no Python loop
over time at all: a few batched matmuls (BLAS) and exponentials of non-positive sums
(stable: no division by decays, no overflow), never a (batch, length, channels, state)
tensor. ``ssd_sequential`` is the reference loop, one token at a time.

Shapes: x (batch, length, heads, head_dim); log_a (batch, length, heads), <= 0;
B and C (batch, length, d_state), shared by all heads; h0 (batch, heads, head_dim, d_state)
or None. Both return y (batch, length, heads, head_dim) and the final state.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def ssd_sequential(x: torch.Tensor, log_a: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
                   h0: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference recurrence, one token at a time."""
    batch, length, heads, head_dim = x.shape
    h = x.new_zeros(batch, heads, head_dim, B.shape[-1]) if h0 is None else h0
    decay = log_a.exp()
    ys = []
    for t in range(length):
        h = decay[:, t, :, None, None] * h + x[:, t, :, :, None] * B[:, t, None, None, :]
        ys.append(torch.einsum("bhpn,bn->bhp", h, C[:, t]))
    return torch.stack(ys, dim=1), h


def _segsum(x: torch.Tensor) -> torch.Tensor:
    """(..., T) -> (..., T, T): out[t, s] = sum of x over s < k <= t for s <= t, -inf above.

    Built by masked cumulative sums (not differences of one cumsum), so it stays exact for
    long chunks and strong decay."""
    T = x.shape[-1]
    x = x.unsqueeze(-1).expand(*x.shape, T)  # [..., k, s] = x[k]
    strict = torch.ones(T, T, dtype=torch.bool, device=x.device).tril(-1)
    out = x.masked_fill(~strict, 0.0).cumsum(dim=-2)
    return out.masked_fill(~strict.logical_or(torch.eye(T, dtype=torch.bool, device=x.device)), float("-inf"))


def ssd_chunked(x: torch.Tensor, log_a: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
                h0: torch.Tensor | None = None, chunk: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Chunked SSD: intra-chunk masked matmuls, chunk states, inter-chunk masked matmul.

    ``chunk`` >= length gives the fully parallel (quadratic, one-block) form."""
    batch, length, heads, head_dim = x.shape
    size = max(1, min(chunk, length))
    n = -(-length // size)
    pad = n * size - length
    if pad:  # padded steps: decay 1 (log 0), input 0 -- they change neither y nor the state
        x = F.pad(x, (0, 0, 0, 0, 0, pad))
        log_a = F.pad(log_a, (0, 0, 0, pad))
        B = F.pad(B, (0, 0, 0, pad))
        C = F.pad(C, (0, 0, 0, pad))
    x = x.reshape(batch, n, size, heads, head_dim)
    B = B.reshape(batch, n, size, -1)
    C = C.reshape(batch, n, size, -1)
    la = log_a.reshape(batch, n, size, heads).permute(0, 3, 1, 2)  # (b, h, c, T)
    cum = la.cumsum(dim=-1)

    # 1. within each chunk: y = (L * C B^T) x
    scores = torch.einsum("bctn,bcsn->bcts", C, B)  # shared by all heads
    mix = torch.exp(_segsum(la)) * scores.unsqueeze(1)  # (b, h, c, T, T)
    y = torch.einsum("bhcts,bcshp->bcthp", mix, x)

    # 2. the state each chunk leaves behind (from its own inputs only)
    # (b, h, c, T): decay after step s to the chunk end, as a suffix sum (a difference of
    # prefix sums would lose float32 digits over long chunks)
    to_end = torch.exp(F.pad(la[..., 1:], (0, 1)).flip(-1).cumsum(-1).flip(-1))
    states = torch.einsum("bcsn,bhcs,bcshp->bchpn", B, to_end, x)

    # 3. states entering each chunk: one masked product over chunks (the only recurrence)
    init = x.new_zeros(batch, 1, heads, head_dim, B.shape[-1]) if h0 is None else h0.unsqueeze(1)
    states = torch.cat([init, states], dim=1)  # (b, c + 1, h, p, n)
    chunk_decay = torch.exp(_segsum(F.pad(cum[..., -1], (1, 0))))  # (b, h, c + 1, c + 1)
    states = torch.einsum("bhzc,bchpn->bzhpn", chunk_decay, states)
    entering, final = states[:, :-1], states[:, -1]

    # 4. the entering state's contribution to every step of its chunk
    y = y + torch.einsum("bctn,bchpn,bhct->bcthp", C, entering, torch.exp(cum))
    return y.reshape(batch, n * size, heads, head_dim)[:, :length], final


SSD_SCANS = ("sequential", "parallel", "chunked")


def ssd_scan(kind: str, x: torch.Tensor, log_a: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
             chunk: int = 0) -> torch.Tensor:
    """y for scan ``kind``: the reference loop, one quadratic block, or chunks (0: 32 steps,
    the fastest on CPU in benchmarks/hybrid_scan.py)."""
    if kind == "sequential":
        return ssd_sequential(x, log_a, B, C)[0]
    if kind == "parallel":
        return ssd_chunked(x, log_a, B, C, chunk=x.shape[1])[0]
    return ssd_chunked(x, log_a, B, C, chunk=chunk or 32)[0]
