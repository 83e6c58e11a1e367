"""glibc malloc settings of the merge engine."""

from __future__ import annotations

import platform

import pytest


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_keep_freed_memory_takes_effect_once():
    from graftkit.merge import allocator

    assert allocator.keep_freed_memory() is True
    assert allocator.keep_freed_memory() is True  # a second call changes nothing
