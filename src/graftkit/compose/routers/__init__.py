"""Routers that mix experts; every kind is a folder with config.py, layer.py and model.py."""

from __future__ import annotations

import difflib
from dataclasses import fields

from torch import nn

from graftkit.compose.routers.losses import entropy_loss, load_balance_loss
from graftkit.compose.routers.output import RouterOutput
from graftkit.compose.routers.pooled.config import PooledRouterConfig
from graftkit.compose.routers.pooled.layer import PooledRouter
from graftkit.compose.routers.pooled.model import build as _build_pooled
from graftkit.compose.routers.token.config import TokenRouterConfig
from graftkit.compose.routers.token.layer import TokenRouter
from graftkit.compose.routers.token.model import build as _build_token
from graftkit.errors import ConfigError

ROUTERS = {"pooled": (PooledRouterConfig, _build_pooled), "token": (TokenRouterConfig, _build_token)}
ALIASES = {"simple": "pooled", "token_level": "token", "token-level": "token"}  # the seed's names


def make_router(kind: str, hidden_size: int, num_experts: int, **options: object) -> nn.Module:
    """A zero-initialized (uniform) router of ``kind``; ConfigError names unknown kinds and options."""
    kind = ALIASES.get(kind, kind)
    if kind not in ROUTERS:
        close = difflib.get_close_matches(kind, list(ROUTERS) + list(ALIASES), n=1)
        raise ConfigError(f"unknown router_type {kind!r}",
                          hint=f"did you mean {close[0]!r}?" if close else f"choose one of: {', '.join(ROUTERS)}")
    config_cls, build = ROUTERS[kind]
    allowed = {f.name for f in fields(config_cls)}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ConfigError(f"router option(s) {unknown} are not {kind} router settings",
                          hint=f"{kind} takes: {', '.join(sorted(allowed))}")
    return build(hidden_size, num_experts, **options)


__all__ = ["ALIASES", "PooledRouter", "PooledRouterConfig", "ROUTERS", "RouterOutput", "TokenRouter",
           "TokenRouterConfig", "entropy_loss", "load_balance_loss", "make_router"]
