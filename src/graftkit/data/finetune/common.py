"""What every fine-tuning recipe shares: settings, base resolution, schedule, the result file."""

from __future__ import annotations

import json
import math
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from collections.abc import Callable, Iterable
from typing import Any

import torch

from graftkit.errors import MissingPathError

RESULT_FILE = "graftkit_finetune.json"


@dataclass
class FinetuneSettings:
    """Knobs of a run; ``None`` means the recipe's default (see each recipe's DEFAULTS)."""

    steps: int | None = None
    lr: float | None = None
    batch_size: int | None = None
    max_length: int | None = None
    seed: int = 0
    val_size: int | None = None
    threads: int | None = None
    weight_decay: float = 0.01
    warmup: float = 0.06

    def filled(self, defaults: dict[str, Any]) -> FinetuneSettings:
        """A copy with every ``None`` knob taken from ``defaults``."""
        values = asdict(self)
        for key, value in defaults.items():
            if values.get(key) is None:
                values[key] = value
        return FinetuneSettings(**values)


@dataclass
class FinetuneResult:
    """What a run produced; also written to ``OUT/graftkit_finetune.json``."""

    output: str
    base: str
    task: str
    recipe: str
    metric: str
    value: float
    validation_n: int
    validation_loss: float
    train_seconds: float
    final_train_loss: float
    settings: dict[str, Any]
    label_names: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        return (f"{self.task}: validation {self.metric} {self.value:.4f} on {self.validation_n} "
                f"(trained {self.settings['steps']} steps in {self.train_seconds:.0f} s) -> {self.output}")

    def write(self, folder: Path) -> None:
        record = asdict(self)
        record["environment"] = {"torch": torch.__version__, "threads": torch.get_num_threads(),
                                 "machine": platform.machine(), "python": platform.python_version()}
        (folder / RESULT_FILE).write_text(json.dumps(record, indent=2) + "\n")


def resolve_base(base: str | Path) -> Path:
    """A model folder from a path or a zoo name (materialized through ``graftkit.zoo.get``)."""
    path = Path(base).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise MissingPathError(f"{path} has no config.json", hint="BASE must be an HF model folder or a zoo name")
        return path
    from graftkit import zoo
    from graftkit.errors import ZooError

    try:
        zoo.resolve(str(base))
    except ZooError as exc:
        raise MissingPathError(
            f"base model {str(base)!r} is neither a folder nor a zoo model",
            hint=f"{exc.hint or ''}; for images use vit-tiny or vit-small".strip("; "),
        ) from exc
    return zoo.get(str(base))


def auto_threads() -> int:
    """Intra-op threads for the cores that are idle now (at least 1).

    Oversubscribed OpenMP threads spin-wait: on this 2-core machine under a load of
    about 13, a vit-tiny step took 5.6 s with 2 threads and 0.54 s with 1.
    """
    cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except OSError:
        return cores
    return max(1, min(cores, int(cores - load + 0.5)))


def set_threads(threads: int | None) -> int:
    """Use ``threads`` intra-op threads (default: ``auto_threads()``); returns the count in use.

    Results are reproducible for a given seed *and* thread count (the count is recorded
    in graftkit_finetune.json; pin it with ``threads`` / ``--threads`` to compare runs).
    """
    torch.set_num_threads(max(1, int(threads)) if threads is not None else auto_threads())
    return torch.get_num_threads()


def schedule(optimizer: torch.optim.Optimizer, steps: int, warmup: float) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over ``warmup`` of the steps, then linear decay to zero."""
    warm = max(1, int(math.ceil(steps * warmup)))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (steps - step) / max(1, steps - warm))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def batches(n: int, batch_size: int, steps: int, seed: int) -> list[list[int]]:
    """Index batches for ``steps`` steps: shuffled epochs (seeded), the last partial batch dropped."""
    if n < 1:
        return []
    g = torch.Generator().manual_seed(seed)
    out: list[list[int]] = []
    size = min(batch_size, n)
    while len(out) < steps:
        perm = torch.randperm(n, generator=g).tolist()
        out.extend(perm[i : i + size] for i in range(0, n - size + 1, size))
    return out[:steps]


class Timer:
    """Wall-clock seconds of a block."""

    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start


def optimize(model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, steps: Iterable[Any],
             loss_of: Callable[[Any], torch.Tensor], description: str, total: int) -> tuple[list[float], float]:
    """The one training loop of every recipe: loss, backward, clip at 1.0, step; returns losses and seconds."""
    from graftkit.progress import progress_bar

    model.train()
    losses: list[float] = []
    with Timer() as timer, progress_bar(description, total) as advance:
        for batch in steps:
            loss = loss_of(batch)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
            advance(1, description=f"{description} loss {tail_mean(losses):.3f}")
    model.eval()
    return losses, timer.seconds


def tail_mean(losses: list[float], n: int = 20) -> float:
    """Mean of the last ``n`` losses (the running training loss that gets reported)."""
    tail = losses[-n:]
    return sum(tail) / max(1, len(tail))
