"""SSM blocks: a selective SSM (Mamba-style) and an S4D-Real diagonal SSM.

Both map (batch, length, d_model) -> (batch, length, d_model) and end in a zero-initialized
output projection, so a freshly built block outputs exactly zero: grafted onto a frozen
model it changes nothing until it is trained.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from graftkit.errors import HybridError
from graftkit.hybrid.ssm.config import SSMConfig
from graftkit.hybrid.ssm.scan import SCANS, scan_chunked
from graftkit.hybrid.ssm.ssd import ssd_scan


def _scan(config: SSMConfig, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    if config.scan == "chunked":
        return scan_chunked(a, b, chunk=config.chunk or None)
    return SCANS[config.scan](a, b)


class SelectiveSSM(nn.Module):
    """x -> in_proj -> causal depthwise conv -> SiLU -> selective scan (input-dependent dt, B, C)
    -> * SiLU(z) -> out_proj. A = -exp(A_log) is per channel and state (S4D-Real init)."""

    def __init__(self, d_model: int, config: SSMConfig) -> None:
        super().__init__()
        self.config = config
        d_inner = config.expand * d_model
        self.dt_rank = config.dt_rank or math.ceil(d_model / 16)
        self.in_proj = nn.Linear(d_model, 2 * d_inner, bias=False)
        self.conv = nn.Conv1d(d_inner, d_inner, config.d_conv, groups=d_inner, padding=config.d_conv - 1)
        self.x_proj = nn.Linear(d_inner, self.dt_rank + 2 * config.d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, d_inner)
        dt = torch.exp(torch.rand(d_inner) * (math.log(0.1) - math.log(0.001)) + math.log(0.001))
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus
        self.A_log = nn.Parameter(torch.log(torch.arange(1, config.d_state + 1, dtype=torch.float32)).repeat(d_inner, 1))
        self.D = nn.Parameter(torch.ones(d_inner))
        self.out_proj = nn.Linear(d_inner, d_model, bias=False)
        nn.init.zeros_(self.out_proj.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[1]
        u, z = self.in_proj(x).chunk(2, dim=-1)
        u = F.silu(self.conv(u.transpose(1, 2))[..., :length].transpose(1, 2))
        dt, B, C = self.x_proj(u).split([self.dt_rank, self.config.d_state, self.config.d_state], dim=-1)
        dt = F.softplus(self.dt_proj(dt))  # (b, l, d_inner)
        A = -torch.exp(self.A_log)  # (d_inner, n)
        decay = torch.exp(dt.unsqueeze(-1) * A)  # (b, l, d_inner, n)
        drive = (dt * u).unsqueeze(-1) * B.unsqueeze(2)
        h = _scan(self.config, decay, drive)
        y = (h * C.unsqueeze(2)).sum(-1) + self.D * u
        return self.out_proj(y * F.silu(z))


class SSDSSM(nn.Module):
    """Mamba-2 style: x -> in_proj -> (z, x, B, C, dt); causal depthwise conv + SiLU on (x, B, C);
    one decay exp(dt * A) per head of ``head_dim`` channels; SSD scan; + D x; * SiLU(z) -> out_proj.
    One decay per head (instead of per channel and state) is what lets ``ssd_chunked`` run the
    scan as batched matmuls, without a Python loop over time."""

    def __init__(self, d_model: int, config: SSMConfig) -> None:
        super().__init__()
        self.config = config
        d_inner = config.expand * d_model
        self.head_dim = min(config.head_dim, d_inner)
        if d_inner % self.head_dim:
            raise HybridError(f"ssd: inner width {d_inner} (expand {config.expand} x d_model {d_model}) is not a "
                              f"multiple of head_dim {config.head_dim}", hint="pick a head_dim that divides it")
        self.heads = d_inner // self.head_dim
        self.d_inner = d_inner
        n = config.d_state
        self.in_proj = nn.Linear(d_model, 2 * d_inner + 2 * n + self.heads, bias=False)
        self.conv = nn.Conv1d(d_inner + 2 * n, d_inner + 2 * n, config.d_conv, groups=d_inner + 2 * n,
                              padding=config.d_conv - 1)
        dt = torch.exp(torch.rand(self.heads) * (math.log(0.1) - math.log(0.001)) + math.log(0.001))
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus
        self.A_log = nn.Parameter(torch.log(torch.linspace(1.0, 16.0, self.heads)))
        self.D = nn.Parameter(torch.ones(self.heads))
        self.out_proj = nn.Linear(d_inner, d_model, bias=False)
        nn.init.zeros_(self.out_proj.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        n = self.config.d_state
        z, xbc, dt = self.in_proj(x).split([self.d_inner, self.d_inner + 2 * n, self.heads], dim=-1)
        xbc = F.silu(self.conv(xbc.transpose(1, 2))[..., :length].transpose(1, 2))
        u, B, C = xbc.split([self.d_inner, n, n], dim=-1)
        dt = F.softplus(dt + self.dt_bias)  # (b, l, heads)
        log_a = dt * -torch.exp(self.A_log)
        u = u.reshape(batch, length, self.heads, self.head_dim)
        y = ssd_scan(self.config.scan, u * dt.unsqueeze(-1), log_a, B, C, self.config.chunk)
        y = (y + self.D[:, None] * u).reshape(batch, length, self.d_inner)
        return self.out_proj(y * F.silu(z))


class S4DSSM(nn.Module):
    """S4D-Real: h_t = exp(dt A) h_{t-1} + dt B u_t, y = C h + D u, with per-channel learned dt,
    A = -(n+1) and B, C independent of the input (a linear time-invariant diagonal SSM)."""

    def __init__(self, d_model: int, config: SSMConfig) -> None:
        super().__init__()
        self.config = config
        d_inner = config.expand * d_model
        self.in_proj = nn.Linear(d_model, d_inner, bias=False)
        self.log_dt = nn.Parameter(torch.rand(d_inner) * (math.log(0.1) - math.log(0.001)) + math.log(0.001))
        self.A_log = nn.Parameter(torch.log(torch.arange(1, config.d_state + 1, dtype=torch.float32)).repeat(d_inner, 1))
        self.B = nn.Parameter(torch.ones(d_inner, config.d_state))
        self.C = nn.Parameter(torch.randn(d_inner, config.d_state) / math.sqrt(config.d_state))
        self.D = nn.Parameter(torch.ones(d_inner))
        self.out_proj = nn.Linear(d_inner, d_model, bias=False)
        nn.init.zeros_(self.out_proj.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self.in_proj(x)  # (b, l, d)
        dt = torch.exp(self.log_dt)
        decay = torch.exp(dt.unsqueeze(-1) * -torch.exp(self.A_log))  # (d, n)
        decay = decay.expand(u.shape[0], u.shape[1], *decay.shape)
        drive = (dt * u).unsqueeze(-1) * self.B
        h = _scan(self.config, decay, drive)
        y = (h * self.C).sum(-1) + self.D * u
        return self.out_proj(F.gelu(y))


def build_ssm(d_model: int, config: SSMConfig) -> nn.Module:
    """The SSM block of ``config.kind``."""
    config.validate()
    return {"selective": SelectiveSSM, "ssd": SSDSSM, "s4d": S4DSSM}[config.kind](d_model, config)
