"""glibc malloc settings of the merge engine."""

from __future__ import annotations

import platform

import pytest


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_keep_freed_memory_takes_effect_once():
    from graftkit.merge import allocator

    assert allocator.keep_freed_memory() is True
    assert allocator.keep_freed_memory() is True  # a second call changes nothing


def test_a_merge_can_leave_malloc_alone(tmp_path, monkeypatch):
    from graftkit.merge import allocator, merge

    from .helpers import perturbed_family

    calls = []
    monkeypatch.setattr(allocator, "keep_freed_memory", lambda: calls.append(1) or True)
    base, a = perturbed_family(tmp_path, n=1)
    config = (f"merge_method: linear\nmodels:\n  - model: {base}\n    parameters: {{weight: 1.0}}\n"
              f"  - model: {a}\n    parameters: {{weight: 1.0}}\n")
    merge(config, tmp_path / "left", check=False, tune_malloc=False)
    assert calls == []
    merge(config, tmp_path / "tuned", check=False)
    assert calls == [1]
