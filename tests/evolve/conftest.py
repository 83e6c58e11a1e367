"""Tiny model families for the evolve tests: a base, two perturbed experts and a known target merge."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch


def family(root: Path, n: int = 2, scale: float = 0.05) -> list[Path]:
    """[base, ft1, ... ftn]: a tiny llama and deterministic perturbations of it."""
    from safetensors.torch import load_file, save_file

    from graftkit.zoo import save_tiny

    base = save_tiny("llama", root / "base", seed=0)
    paths = [base]
    for i in range(1, n + 1):
        out = root / f"ft{i}"
        shutil.copytree(base, out)
        weights = load_file(str(out / "model.safetensors"))
        gen = torch.Generator().manual_seed(100 + i)
        save_file({k: v + scale * torch.randn(v.shape, generator=gen) for k, v in weights.items()},
                  str(out / "model.safetensors"), metadata={"format": "pt"})
        paths.append(out)
    return paths


@pytest.fixture(scope="session")
def evolve_family(tmp_path_factory):
    """(base, ft1, ft2, target): target = task_arithmetic with weights 0.8 / 0.2, a known optimum."""
    from graftkit.merge import merge

    root = tmp_path_factory.mktemp("evolve_family")
    base, a, b = family(root)
    target = root / "target"
    merge({"merge_method": "task_arithmetic", "base_model": str(base),
           "models": [{"model": str(a), "parameters": {"weight": 0.8}},
                      {"model": str(b), "parameters": {"weight": 0.2}}]}, target, check=False, verify=False)
    return base, a, b, target


def target_config(base, a, b, target, **search) -> dict:
    return {
        "models": [str(a), str(b)], "base_model": str(base), "method": "task_arithmetic",
        "objective": {"kind": "target", "target": str(target)},
        "search": {"budget": 12, "popsize": 4, "seed": 0, "workers": 0, **search},
    }
