"""A Llama written from scratch (nanoGPT style) with its own parameter names, computing
the same ATen ops as transformers' LlamaForCausalLM with sdpa attention."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Norm(nn.Module):
    def __init__(self, width: int, eps: float) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.ones(width))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float32)
        ms = x.pow(2).mean(-1, keepdim=True)
        return self.gain * (x * torch.rsqrt(ms + self.eps))


def rotate(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class Attention(nn.Module):
    def __init__(self, width: int, heads: int, kv_heads: int) -> None:
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, width // heads
        self.wq = nn.Linear(width, heads * self.head_dim, bias=False)
        self.wk = nn.Linear(width, kv_heads * self.head_dim, bias=False)
        self.wv = nn.Linear(width, kv_heads * self.head_dim, bias=False)
        self.wo = nn.Linear(heads * self.head_dim, width, bias=False)

    def split(self, t: torch.Tensor) -> torch.Tensor:
        b, s, _ = t.shape
        return t.view(b, s, -1, self.head_dim).transpose(1, 2)

    def repeat(self, t: torch.Tensor) -> torch.Tensor:
        b, h, s, d = t.shape
        n = self.heads // self.kv_heads
        return t[:, :, None].expand(b, h, n, s, d).reshape(b, h * n, s, d)

    def forward(self, x, cos, sin, mask):
        b, s, _ = x.shape
        q, k, v = self.split(self.wq(x)), self.split(self.wk(x)), self.split(self.wv(x))
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        q = q * cos + rotate(q) * sin
        k = k * cos + rotate(k) * sin
        y = F.scaled_dot_product_attention(q, self.repeat(k), self.repeat(v), attn_mask=mask,
                                           dropout_p=0.0, scale=self.head_dim**-0.5)
        return self.wo(y.transpose(1, 2).reshape(b, s, -1))


class FeedForward(nn.Module):
    def __init__(self, width: int, hidden: int, act=F.silu) -> None:
        super().__init__()
        self.act = act
        self.w1 = nn.Linear(width, hidden, bias=False)
        self.w3 = nn.Linear(width, hidden, bias=False)
        self.w2 = nn.Linear(hidden, width, bias=False)

    def forward(self, x):
        return self.w2(self.act(self.w1(x)) * self.w3(x))


class Block(nn.Module):
    def __init__(self, width, heads, kv_heads, hidden, eps, dropout: float = 0.0, act=F.silu,
                 parallel: bool = False) -> None:
        super().__init__()
        self.parallel = parallel
        self.n1, self.attn = Norm(width, eps), Attention(width, heads, kv_heads)
        self.n2, self.ff = Norm(width, eps), FeedForward(width, hidden, act)
        self.drop = nn.Dropout(dropout) if dropout else nn.Identity()

    def forward(self, x, cos, sin, mask):
        if self.parallel:  # same ops, other wiring: both branches read the block input
            return x + self.drop(self.attn(self.n1(x), cos, sin, mask)) + self.ff(self.n2(x))
        x = x + self.drop(self.attn(self.n1(x), cos, sin, mask))
        return x + self.ff(self.n2(x))


class HandLlama(nn.Module):
    """Same computation as a tiny LlamaForCausalLM (untied head), other names and nesting."""

    def __init__(self, vocab=128, width=32, depth=2, heads=4, kv_heads=2, hidden=64, eps=1e-6,
                 theta=10000.0, dropout: float = 0.0, act=F.silu, parallel: bool = False) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab, width)
        self.blocks = nn.ModuleList(Block(width, heads, kv_heads, hidden, eps, dropout, act, parallel) for _ in range(depth))
        self.norm = Norm(width, eps)
        self.out = nn.Linear(width, vocab, bias=False)
        head_dim = width // heads
        self.register_buffer("freq", 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float) / head_dim),
                             persistent=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        b, s = ids.shape
        x = self.tok(ids)
        pos = torch.arange(s, device=ids.device).unsqueeze(0)
        angles = pos[..., None].float() * self.freq.to(dtype=torch.float)
        emb = torch.cat((angles, angles), dim=-1)
        cos, sin = emb.cos(), emb.sin()
        mask = torch.ones(s, s, dtype=torch.bool, device=ids.device).tril()[None, None].expand(b, 1, s, s)
        for block in self.blocks:
            x = block(x, cos, sin, mask)
        return self.out(self.norm(x))
