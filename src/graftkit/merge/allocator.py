"""Keep freed memory in the process for reuse while merging (glibc malloc settings).

A streaming merge allocates and frees the same sizes again and again: each input
tensor, each block's float32 temporaries, each output tensor. With glibc's default
settings a buffer above a moving threshold (128 KB to 32 MB) is mapped fresh from the
kernel and unmapped when freed, and the top of the heap is handed back to the kernel
as soon as a little of it lies free, so the next buffer of the same size faults in and
zeroes every page again. On a TIES merge of three 1.1B bf16 models that was about 1.3
million page faults, and the block passes ran at a third of their speed or less,
depending on where the heap happened to end.

Raising both thresholds makes malloc keep what is freed and hand it out again. It does
not raise peak memory (the same buffers are alive at the peak); the process only
returns up to ``TRIM_BYTES`` of freed heap to the kernel later than it would have.
The setting is process-wide and stays once made; elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_BYTES = 32 * 1024**2  # glibc's largest allowed mmap threshold: bigger buffers are still mapped
TRIM_BYTES = 512 * 1024**2

_done: bool | None = None


def keep_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds (once per process); whether they are in effect."""
    global _done
    if _done is None:
        _done = False
        if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                _done = bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_BYTES)) and bool(
                    libc.mallopt(_M_TRIM_THRESHOLD, TRIM_BYTES))
            except (OSError, AttributeError):
                _done = False
    return _done
