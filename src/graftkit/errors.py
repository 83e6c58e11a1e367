"""The one exception tree of graftkit.

Every error a user can cause is a ``GraftError``: the CLI prints its message on one
line and exits with status 2. A message names the file, tensor or key at fault and
says how to fix it; ``hint`` holds the fix when it is worth a separate sentence.
"""

from __future__ import annotations

from collections.abc import Iterable


class GraftError(Exception):
    """Root of every error that bad input can cause."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if hint is None else f"{message} ({hint})")


class ConfigError(GraftError):
    """A configuration file or option is wrong."""


class ValidationError(ConfigError):
    """Several problems found in one pass; ``problems`` lists them all."""

    def __init__(self, problems: Iterable[str], *, source: str | None = None) -> None:
        self.problems = list(problems)
        where = f"{source}: " if source else ""
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{where}{len(self.problems)} problem(s) found:\n{lines}")


class CheckpointError(GraftError):
    """A model checkpoint cannot be found, read or written."""


class MissingPathError(CheckpointError):
    """A path that must exist does not."""


class NoWeightsError(CheckpointError):
    """A folder holds no weight files graftkit can read."""


class CorruptFileError(CheckpointError):
    """A weight file is truncated or malformed."""


class UnsafeFileError(CheckpointError):
    """A file would need unsafe deserialization (arbitrary pickles) to read."""


class UnsupportedFormatError(CheckpointError):
    """A file format or quantization graftkit cannot decode."""


class TensorNotFoundError(CheckpointError, KeyError):
    """A tensor name is not in a checkpoint."""

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0] if self.args else ""


class ShapeMismatchError(GraftError):
    """Tensors or models whose shapes do not fit together."""


class ArchitectureError(GraftError):
    """Models whose architectures do not fit the requested operation."""


class DataError(GraftError):
    """A dataset is missing, malformed or used in a way it does not allow."""


class ZooError(GraftError):
    """A zoo model cannot be materialized."""


class TraceError(GraftError):
    """A model cannot be traced to an operation graph."""


class AlignmentError(GraftError):
    """Two models cannot be aligned as asked."""


class CompositionError(GraftError):
    """Models cannot be composed (fused, linked, routed) as asked."""


class TransferError(GraftError):
    """A capability cannot be transferred as asked."""


class HybridError(GraftError):
    """A hybrid model cannot be built or trained as asked."""


class MergeError(GraftError):
    """A merge cannot run or its result failed a check."""
