"""One progress helper for every long loop (rich bars, silent when not a TTY or quiet)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")

_quiet = os.environ.get("GRAFTKIT_QUIET", "") not in ("", "0")
console = Console(stderr=True)


def set_quiet(quiet: bool) -> None:
    """Silence (or restore) every progress bar and status line."""
    global _quiet
    _quiet = quiet


def is_quiet() -> bool:
    return _quiet or not sys.stderr.isatty()


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
        disable=is_quiet(),
    )


def track(iterable: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate with a progress bar; ``total`` defaults to ``len(iterable)`` when it has one."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    with _progress() as bar:
        task = bar.add_task(description, total=total)
        for item in iterable:
            yield item
            bar.advance(task)


@contextmanager
def progress_bar(description: str, total: float | None):
    """A bar advanced by hand: ``with progress_bar("write", n) as advance: advance(1)``."""
    with _progress() as bar:
        task = bar.add_task(description, total=total)

        def advance(step: float = 1.0, description: str | None = None) -> None:
            if description is not None:
                bar.update(task, description=description)
            bar.advance(task, step)

        yield advance


def status(message: str) -> None:
    """A one-line status message (suppressed when quiet)."""
    if not _quiet:
        console.print(message)
