"""Random numbers for drop masks, addressed by element index.

DARE and DELLA draw one uniform number per delta entry. A ``torch.Generator``
hands them out in call order, so a tensor's masks depend on how it is walked:
merge it a block of rows at a time and the masks change. ``DropNoise`` is
counter-based instead: the entries are cut into chunks of ``CHUNK`` numbers and
chunk ``c`` of stream ``key`` is drawn from its own SFC64 generator seeded with
``(key, c)``. Any range of entries gets the same numbers whichever way it is
reached, so the block-wise executor and the whole-tensor path agree exactly, and
numpy's SFC64 draws float32 several times faster than ``torch.bernoulli``.

Like a generator, a ``DropNoise`` advances as it is used. The task-vector family
gives model ``j`` of a tensor of ``n`` entries the entries from ``j * span(n)`` on,
``span`` rounding ``n`` up to whole chunks, so no model's range starts inside a chunk
(which would draw that chunk's head only to skip it).
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import torch

CHUNK = 1 << 20


def span(numel: int) -> int:
    """The stream entries reserved for one task vector of ``numel`` entries: whole chunks."""
    return -(-int(numel) // CHUNK) * CHUNK


class DropNoise:
    """Uniform float32 numbers in [0, 1) for entries ``offset, offset + 1, ...`` of stream ``key``."""

    def __init__(self, key: int, offset: int = 0) -> None:
        self.key = int(key) & ((1 << 64) - 1)
        self.offset = int(offset)

    @classmethod
    def for_tensor(cls, seed: int, tensor_name: str) -> "DropNoise":
        """The stream of one tensor: the same seed and name always give the same masks."""
        digest = hashlib.sha256(f"{seed}:{tensor_name}".encode()).digest()
        return cls(int.from_bytes(digest[:8], "little"))

    def at(self, offset: int) -> "DropNoise":
        """The same stream, positioned at entry ``offset``."""
        return DropNoise(self.key, offset)

    def uniform(self, shape: torch.Size | tuple[int, ...]) -> torch.Tensor:
        """The next ``prod(shape)`` numbers, shaped as asked; the stream moves past them."""
        n = math.prod(int(d) for d in shape)
        out = np.empty(n, dtype=np.float32)
        start, stop = self.offset, self.offset + n
        at = start
        while at < stop:
            chunk = at // CHUNK
            chunk_start = chunk * CHUNK
            take = min(stop, chunk_start + CHUNK) - at
            generator = np.random.Generator(np.random.SFC64([self.key, chunk]))
            if at == chunk_start:  # straight into place
                generator.random(take, dtype=np.float32, out=out[at - start:at - start + take])
            else:
                out[at - start:at - start + take] = generator.random(at - chunk_start + take, dtype=np.float32)[-take:]
            at += take
        self.offset = stop
        return torch.from_numpy(out).reshape(tuple(shape))

    def keep(self, probability: torch.Tensor | float, shape: torch.Size | tuple[int, ...]) -> torch.Tensor:
        """A float mask of ``shape``: 1 where the entry's number is below its keep probability."""
        u = self.uniform(shape)
        # u < p exactly where p - u > 0 (float32, as the comparison would round p): sign(relu(p - u))
        # is the 0/1 mask in float arithmetic, cheaper on CPU than a boolean tensor and its cast
        if isinstance(probability, torch.Tensor):
            return torch.sub(probability.to(u.dtype), u).clamp_(min=0).sign_().to(probability.dtype)
        return torch.rsub(u, probability).clamp_(min=0).sign_()
