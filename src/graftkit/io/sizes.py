"""Byte sizes written the way people write them ("5GB", "500MB", 1_000_000)."""

from __future__ import annotations

import re

from graftkit.errors import ConfigError

_UNITS = {
    "": 1, "B": 1,
    "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
    "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?I?B?)\s*$", re.IGNORECASE)


def parse_size(size: int | str) -> int:
    """Bytes from an int or a string like ``"5GB"`` (decimal, as transformers) or ``"512MiB"`` (binary)."""
    if isinstance(size, bool):
        raise ConfigError(f"size must be a number of bytes or a string like '5GB', got {size!r}")
    if isinstance(size, int):
        value = size
    else:
        m = _SIZE.match(str(size))
        unit = m.group(2).upper() if m else None
        if m is None or unit not in _UNITS:
            raise ConfigError(f"cannot read size {size!r}", hint="write it like 5GB, 500MB, 512MiB or a number of bytes")
        value = int(float(m.group(1)) * _UNITS[unit])
    if value <= 0:
        raise ConfigError(f"size must be positive, got {size!r}")
    return value
