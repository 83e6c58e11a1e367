import pytest
import torch

from graftkit.compose.adapters import BottleneckAdapter, LinearAdapter, fit_affine, make_adapter
from graftkit.errors import ConfigError


@pytest.mark.parametrize("kind", ["linear", "bottleneck"])
def test_equal_widths_start_as_exact_identity(kind):
    x = torch.randn(3, 5, 16)
    adapter = make_adapter(kind, 16, 16)
    assert torch.equal(adapter(x), x)


def test_bottleneck_has_no_projection_when_widths_match():
    a = BottleneckAdapter(16, 16)
    assert a.proj is None and sum(p.numel() for p in a.parameters()) == 2 * 16 * 16 + 16 + 16


@pytest.mark.parametrize("kind", ["linear", "bottleneck"])
def test_least_squares_init_recovers_a_planted_map(kind):
    torch.manual_seed(0)
    w, b = torch.randn(24, 16), torch.randn(24)
    x = torch.randn(400, 16)
    y = x @ w.T + b
    adapter = make_adapter(kind, 16, 24)
    assert (adapter(x) - y).norm() / y.norm() > 0.5  # the truncated identity is a poor map
    residual = adapter.fit(x, y)
    assert residual < 1e-3
    assert torch.allclose(adapter(x), y, atol=1e-2)


def test_fit_affine_without_bias_goes_through_origin():
    x = torch.randn(100, 4)
    w, b = fit_affine(x, x @ torch.eye(4) * 2, bias=False)
    assert torch.allclose(w, 2 * torch.eye(4), atol=1e-3) and torch.equal(b, torch.zeros(4))


def test_bad_adapter_names_and_options():
    with pytest.raises(ConfigError, match="did you mean 'linear'"):
        make_adapter("linaer", 4, 4)
    with pytest.raises(ConfigError, match="rank"):
        make_adapter("linear", 4, 4, rank=3)
    with pytest.raises(ConfigError, match="activation"):
        make_adapter("bottleneck", 4, 4, activation="swoosh")


def test_adapters_train():
    adapter = LinearAdapter(8, 8)
    opt = torch.optim.SGD(adapter.parameters(), lr=0.1)
    x = torch.randn(64, 8)
    target = x.flip(-1)
    before = float(((adapter(x) - target) ** 2).mean().detach())
    for _ in range(50):
        loss = ((adapter(x) - target) ** 2).mean()
        opt.zero_grad(); loss.backward(); opt.step()
    assert float(loss) < before / 2
