"""Size interpolator: move a fingerprint from one model scale to another.

The same capability seen through a small and a large model gives two fingerprints; the
interpolator learns the displacement between them as a function of the fingerprint and
the log ratio of the models' sizes (parameter counts): ``fp_to = norm(fp + f(fp, log
s_to - log s_from))``. It is trained on pairs of models of different sizes in both
directions (a zero ratio must give the identity, which the residual form makes easy),
and evaluated by whether the moved fingerprint lands nearer its true counterpart.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from graftkit.errors import TransferError


class SizeInterpolator(nn.Module):
    def __init__(self, dim: int = 512, hidden: int = 512):
        super().__init__()
        self.dim = dim
        self.net = nn.Sequential(nn.Linear(dim + 1, hidden), nn.GELU(), nn.Linear(hidden, dim))
        nn.init.zeros_(self.net[2].weight)
        nn.init.zeros_(self.net[2].bias)

    def forward(self, fp: torch.Tensor, size_from: float | torch.Tensor, size_to: float | torch.Tensor) -> torch.Tensor:
        if fp.shape[-1] != self.dim:
            raise TransferError(f"fingerprint has {fp.shape[-1]} dimensions, the interpolator {self.dim}",
                                hint="use an interpolator trained on this extractor's fingerprints")
        ratio = torch.log(torch.as_tensor(size_to, dtype=torch.float32) / torch.as_tensor(size_from, dtype=torch.float32))
        ratio = ratio.expand(fp.shape[:-1]).unsqueeze(-1)
        return nn.functional.normalize(fp + ratio * self.net(torch.cat([fp, ratio], -1)), dim=-1)

    def fit(self, pairs: list[tuple[torch.Tensor, float, torch.Tensor, float]], steps: int = 300, lr: float = 1e-3,
            seed: int = 0) -> list[float]:
        """``pairs``: (fingerprint, size, fingerprint of the same capability at another size, that size)."""
        if not pairs:
            raise TransferError("the interpolator needs at least one pair of fingerprints", hint="fingerprint a capability on two model sizes")
        for _, s1, _, s2 in pairs:
            if s1 <= 0 or s2 <= 0 or not math.isfinite(s1 * s2):
                raise TransferError(f"model sizes must be positive parameter counts, got {s1} and {s2}", hint="pass sum(p.numel() ...)")
        a = torch.stack([p[0] for p in pairs] + [p[2] for p in pairs])
        b = torch.stack([p[2] for p in pairs] + [p[0] for p in pairs])
        sa = torch.tensor([p[1] for p in pairs] + [p[3] for p in pairs])
        sb = torch.tensor([p[3] for p in pairs] + [p[1] for p in pairs])
        torch.manual_seed(seed)
        opt = torch.optim.AdamW(self.parameters(), lr=lr, weight_decay=1e-3)
        losses = []
        self.train()
        for _ in range(steps):
            loss = (1 - nn.functional.cosine_similarity(self(a, sa, sb), b, dim=-1)).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        self.eval()
        return losses
