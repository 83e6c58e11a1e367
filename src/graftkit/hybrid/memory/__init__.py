"""Memory banks of learned slots read by attention (dense or product keys)."""

from graftkit.hybrid.memory.bank import MemoryBank
from graftkit.hybrid.memory.config import MemoryConfig

__all__ = ["MemoryBank", "MemoryConfig"]
