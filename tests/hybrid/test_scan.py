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


@pytest.mark.parametrize("kind", ["selective", "ssd", "s4d"])
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


@pytest.mark.parametrize("kind", ["selective", "ssd"])
def test_ssm_is_causal(kind):
    torch.manual_seed(0)
    layer = build_ssm(8, SSMConfig(kind=kind, d_state=4, head_dim=4, chunk=4))
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


@pytest.mark.parametrize("length", [1, 7, 64, 300])
@pytest.mark.parametrize("chunk", [1, 16, 1000])
def test_ssd_chunked_scan_equals_the_sequential_reference(length, chunk):
    from graftkit.hybrid.ssm import ssd_chunked, ssd_sequential

    g = torch.Generator().manual_seed(length)
    x = torch.randn(2, length, 3, 5, generator=g)
    log_a = -torch.rand(2, length, 3, generator=g) * 4  # decays down to exp(-4) per step
    log_a[:, ::5] = -30.0  # and near-total forgetting now and then
    B, C = torch.randn(2, length, 4, generator=g), torch.randn(2, length, 4, generator=g)
    h0 = torch.randn(2, 3, 5, 4, generator=g)
    y_ref, h_ref = ssd_sequential(x, log_a, B, C, h0)
    y, h = ssd_chunked(x, log_a, B, C, h0, chunk=chunk)
    assert (y - y_ref).abs().max() < 1e-4
    assert (h - h_ref).abs().max() < 1e-4


def test_ssd_long_memory_stays_accurate():
    from graftkit.hybrid.ssm import ssd_chunked, ssd_sequential

    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 1000, 2, 4, generator=g)
    log_a = torch.full((1, 1000, 2), -1e-3)  # decay 0.999: memory across every chunk
    B, C = torch.randn(1, 1000, 3, generator=g), torch.randn(1, 1000, 3, generator=g)
    y_ref, _ = ssd_sequential(x, log_a, B, C)
    assert (ssd_chunked(x, log_a, B, C, chunk=32)[0] - y_ref).abs().max() < 1e-4 * y_ref.abs().max()


def test_ssd_layer_same_output_with_every_scan_and_refuses_a_bad_head_dim():
    torch.manual_seed(0)
    layer = build_ssm(16, SSMConfig(kind="ssd", d_state=4, head_dim=4, scan="sequential"))
    torch.nn.init.normal_(layer.out_proj.weight)
    x = torch.randn(2, 50, 16)
    ref = layer(x)
    for scan, chunk in (("parallel", 0), ("chunked", 8), ("chunked", 0)):
        layer.config.scan, layer.config.chunk = scan, chunk
        assert (layer(x) - ref).abs().max() < 1e-4
    assert ref.abs().max() > 1e-3
    assert build_ssm(16, SSMConfig(kind="ssd"))(x).abs().max() == 0  # zero output projection at init
    with pytest.raises(HybridError, match="not a multiple of head_dim"):
        build_ssm(16, SSMConfig(kind="ssd", head_dim=6))
