import pytest
import torch

from graftkit.errors import HybridError
from graftkit.hybrid.ssm import SSMConfig, build_ssm, scan_chunked, scan_parallel, scan_sequential


@pytest.mark.parametrize("length", [1, 7, 64, 300])
def test_parallel_and_chunked_scans_equal_the_sequential_reference(length):
    g = torch.Generator().manual_seed(length)
    a = torch.rand(2, length, 6, 4, generator=g)  # decays in [0, 1), including strong decay near 0
    b = torch.randn(2, length, 6, 4, generator=g)
    h0 = torch.randn(2, 6, 4, generator=g)
    ref = scan_sequential(a, b, h0)
    assert (scan_parallel(a, b, h0) - ref).abs().max() < 1e-4
    assert (scan_chunked(a, b, h0, chunk=16) - ref).abs().max() < 1e-4


def test_long_memory_scan_stays_accurate():
    a = torch.full((1, 1000, 3, 2), 0.999)
    b = torch.randn(1, 1000, 3, 2, generator=torch.Generator().manual_seed(0))
    ref = scan_sequential(a, b)
    assert (scan_parallel(a, b) - ref).abs().max() < 1e-4 * ref.abs().max()


@pytest.mark.parametrize("kind", ["selective", "s4d"])
def test_ssm_layer_gives_the_same_output_with_every_scan(kind):
    torch.manual_seed(0)
    layer = build_ssm(16, SSMConfig(kind=kind, d_state=4, scan="sequential"))
    torch.nn.init.normal_(layer.out_proj.weight)  # zero at init; make the output non-trivial
    x = torch.randn(2, 50, 16)
    ref = layer(x)
    for scan in ("parallel", "chunked"):
        layer.config.scan = scan
        layer.config.chunk = 8
        assert (layer(x) - ref).abs().max() < 1e-4
    assert ref.abs().max() > 1e-3


def test_ssm_is_causal():
    torch.manual_seed(0)
    layer = build_ssm(8, SSMConfig(d_state=4))
    torch.nn.init.normal_(layer.out_proj.weight)
    x = torch.randn(1, 20, 8)
    y = torch.cat([x[:, :10], torch.randn(1, 10, 8)], dim=1)
    assert torch.allclose(layer(x)[:, :10], layer(y)[:, :10], atol=1e-6)


def test_new_ssm_outputs_zero_and_bad_config_is_refused():
    layer = build_ssm(8, SSMConfig())
    assert layer(torch.randn(1, 5, 8)).abs().max() == 0
    with pytest.raises(HybridError, match="unknown ssm kind"):
        build_ssm(8, SSMConfig(kind="mamba3"))
    with pytest.raises(HybridError, match="unknown scan"):
        build_ssm(8, SSMConfig(scan="fft"))
