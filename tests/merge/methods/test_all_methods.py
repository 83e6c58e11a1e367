"""Checks every registered method must pass: dtypes, tiny tensors, determinism."""

from __future__ import annotations

import pytest
import torch

from graftkit.merge.methods import METHODS, get_method


def call(name: str, shape, dtype=torch.float32, seed: int = 0, upcast: bool = False):
    """Inputs and parameters that fit ``name``'s contract; returns the merged tensor.

    ``upcast`` rounds the inputs to ``dtype`` and hands them over as float32."""
    method = get_method(name)
    g = torch.Generator().manual_seed(seed)
    count = {"slerp": 2, "nearswap": 2, "arcee_fusion": 2, "passthrough": 1, "nuslerp": 3, "model_stock": 4}.get(name, 4)
    base = torch.randn(shape, generator=g)
    tensors = [base] + [base + 0.5 * torch.randn(shape, generator=g) for _ in range(count - 1)]
    base_index = 0 if method.uses_base else None
    model_params = []
    for i in range(count):
        entry = {}
        for spec in method.model_params.values():
            if spec.non_base and i == base_index:
                continue
            entry[spec.name] = 0.5 if spec.name == "density" else (1.0 if spec.required else spec.default)
        if "fisher" in method.statistics:
            entry.update(fisher=torch.rand(shape, generator=g) + 0.1, fisher_norm=1.0)
        if "gram" in method.statistics and len(shape) == 2:
            x = torch.randn(32, shape[1], generator=g)
            entry["gram"] = x.T @ x / 32
        model_params.append(entry)
    params = {spec.name: 0.5 for spec in method.global_params.values() if spec.required}
    inputs = [t.to(dtype).float() if upcast else t.to(dtype) for t in tensors]
    return method.merge(
        inputs, base_index=base_index, model_params=model_params, params=params,
        tensor_name="layer.weight", seed=seed,
    )


@pytest.mark.parametrize("name", list(METHODS))
@pytest.mark.parametrize("shape", [(7,), (3, 4), (1,)])
def test_tiny_tensors_give_finite_outputs_of_the_right_shape(name, shape):
    out = call(name, shape)
    assert out.shape == torch.Size(shape) and out.dtype == torch.float32
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", list(METHODS))
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_inputs_are_merged_in_float32(name, dtype):
    half = call(name, (12, 6), dtype)
    assert half.dtype == dtype
    # computing in float32 means: the same as merging the upcast inputs, rounded once at the end
    full = call(name, (12, 6), dtype, upcast=True)
    assert full.dtype == torch.float32
    assert torch.equal(half, full.to(dtype))


@pytest.mark.parametrize("name", [n for n, m in METHODS.items() if m.random])
def test_random_methods_are_reproducible(name):
    assert torch.equal(call(name, (40, 30), seed=3), call(name, (40, 30), seed=3))
