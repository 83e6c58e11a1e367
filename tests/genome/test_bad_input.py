"""Untraceable models and wrong example inputs."""

import pytest
import torch
from torch import nn

from graftkit.errors import ShapeMismatchError, TraceError
from graftkit.genome import structural_genome, trace
from graftkit.zoo import tiny


class Gate(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(8, 8)

    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow
            return self.proj(x)
        return x


class Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(8, 8)
        self.gate = Gate()

    def forward(self, x):
        return self.gate(self.inp(x))


def test_data_dependent_control_flow_names_module_op_and_fallback():
    with pytest.raises(TraceError) as info:
        trace(Branchy(), torch.zeros(2, 8))
    err = info.value
    assert "'gate'" in str(err) and "data-dependent" in str(err) and "aten." in str(err)
    assert err.module == "gate"
    assert err.fallback.signature.startswith("gks1-") and "weaker" in err.fallback.strength
    assert "structural" in err.hint


def test_structural_fallback_sees_widths_but_not_wiring():
    a, b = structural_genome(nn.Sequential(nn.Linear(4, 64))), structural_genome(nn.Sequential(nn.Linear(4, 128)))
    assert a.signature != b.signature
    assert structural_genome(Branchy()).signature == structural_genome(Branchy()).signature


def test_wrong_feature_size_is_reported_before_tracing():
    with pytest.raises(ShapeMismatchError, match="'0' \\(Linear\\) expects 8 features"):
        trace(nn.Sequential(nn.Linear(8, 4), nn.ReLU()), torch.zeros(2, 9))


def test_float_token_ids_for_a_transformers_model_are_refused():
    with pytest.raises(ShapeMismatchError, match="integer token ids"):
        trace(tiny("llama"), {"input_ids": torch.zeros(2, 5)})


def test_plain_module_without_inputs_asks_for_them():
    with pytest.raises(TraceError, match="example inputs are needed"):
        trace(nn.Linear(3, 3))


def test_a_plain_mlp_traces_with_a_symbolic_batch():
    g = trace(nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 4)), torch.zeros(2, 8))
    assert g.dynamic and [n.shape for n in g.nodes if n.kind == "input"] == [((2, 3), 8)]
