import math

import pytest
import torch

from graftkit.compose.routers import PooledRouter, TokenRouter, entropy_loss, load_balance_loss, make_router
from graftkit.compose.routers.topk import top_k_weights
from graftkit.errors import ConfigError


def test_routers_start_uniform_with_max_entropy():
    h = torch.randn(2, 5, 16)
    for router in (make_router("token", 16, 4, top_k=None), make_router("pooled", 16, 4)):
        out = router(h)
        assert torch.allclose(out.weights, torch.full_like(out.weights, 0.25))
        assert math.isclose(float(out.entropy_loss), math.log(4), rel_tol=1e-5)
        assert math.isclose(float(out.balance_loss), 1.0, rel_tol=1e-5)


def test_token_top_k_keeps_k_experts_renormalized():
    router = TokenRouter(16, 4)
    torch.nn.init.normal_(router.score.weight)
    router.config.top_k = 2
    out = router(torch.randn(3, 7, 16))
    assert out.weights.shape == (3, 7, 4)
    assert ((out.weights > 0).sum(-1) == 2).all()
    assert torch.allclose(out.weights.sum(-1), torch.ones(3, 7))
    # the kept experts are the most probable ones
    assert torch.equal(out.weights.argmax(-1), out.probs.argmax(-1))


def test_pooled_router_one_decision_per_sequence_ignoring_padding():
    router = PooledRouter(8, 3)
    torch.nn.init.normal_(router.score.weight)
    h = torch.randn(2, 6, 8)
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1] * 6])
    out = router(h, mask)
    assert out.weights.shape == (2, 6, 3) and torch.equal(out.weights[:, 0], out.weights[:, 5])
    h2 = h.clone()
    h2[0, 3:] = 100.0  # padding changes nothing
    assert torch.allclose(router(h2, mask).weights, out.weights)


def test_losses_reward_sharp_and_balanced_routing():
    sharp = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    assert float(entropy_loss(sharp)) < 1e-6
    assert math.isclose(float(load_balance_loss(sharp, sharp)), 1.0, rel_tol=1e-6)
    collapsed = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])
    assert math.isclose(float(load_balance_loss(collapsed, collapsed)), 2.0, rel_tol=1e-6)


def test_stats_count_real_tokens():
    probs = torch.tensor([[[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]]])
    from graftkit.compose.routers.output import RouterOutput

    out = RouterOutput(weights=top_k_weights(probs, 1), probs=probs, entropy_loss=entropy_loss(probs),
                       balance_loss=load_balance_loss(probs, top_k_weights(probs, 1)))
    stats = out.stats(torch.tensor([[1, 1, 0]]))
    assert stats["top_expert_fraction"] == [0.5, 0.5]


def test_router_kinds_and_seed_aliases():
    assert isinstance(make_router("token_level", 8, 2), TokenRouter)
    assert isinstance(make_router("simple", 8, 2), PooledRouter)
    with pytest.raises(ConfigError, match="unknown router_type"):
        make_router("moe", 8, 2)
    with pytest.raises(ConfigError, match="top_k"):
        make_router("pooled", 8, 2, topk=1)
