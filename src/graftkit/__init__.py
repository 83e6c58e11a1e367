"""graftkit: combine neural networks (merge, align, fuse, transfer, graft)."""

from graftkit.errors import GraftError

__version__ = "0.1.0"

__all__ = ["GraftError", "__version__"]
