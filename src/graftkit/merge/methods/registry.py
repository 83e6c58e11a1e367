"""Methods by name. ``get_method`` is the single door the engine and the CLI use."""

from __future__ import annotations

from graftkit.errors import ConfigError
from graftkit.merge.methods.base import MergeMethod, suggest

METHODS: dict[str, MergeMethod] = {}


def register(method: MergeMethod) -> MergeMethod:
    """Make ``method`` available by name; a second method of the same name is a bug."""
    if method.name in METHODS:
        raise ValueError(f"merge method '{method.name}' is already registered")
    METHODS[method.name] = method
    return method


def get_method(name: str) -> MergeMethod:
    """The method called ``name``; ConfigError with a suggestion when misspelled."""
    try:
        return METHODS[name]
    except KeyError:
        raise ConfigError(
            f"unknown merge method '{name}'" + suggest(name, list(METHODS)),
            hint=f"known methods: {', '.join(sorted(METHODS))}",
        ) from None


def method_names() -> list[str]:
    return list(METHODS)
