"""Extractor, interpolator, fusion and plot on synthetic views: two capabilities seen
through random linear 'models' of different widths."""

from __future__ import annotations

import pytest
import torch

from graftkit.errors import TransferError
from graftkit.transfer.extractor import CapabilityExtractor, ExtractorSettings, similarity, train_extractor
from graftkit.transfer.fusion import TaskGate, fuse, weighted_average
from graftkit.transfer.interpolator import SizeInterpolator
from graftkit.transfer.plot import plot_similarity

SMALL = ExtractorSettings(components=8, hidden=32, layers=1, heads=4, ff=64, dim=16, dropout=0.0)


def capability(kind: int, n: int = 40, seed: int = 0) -> torch.Tensor:
    """Latent (n, 6) points: capability 0 is two tight clusters, capability 1 a spread-out line."""
    g = torch.Generator().manual_seed(seed)
    if kind == 0:
        centers = torch.tensor([[3.0, 0, 0, 0, 0, 0], [-3.0, 0, 0, 0, 0, 0]])
        return centers[torch.arange(n) % 2] + 0.3 * torch.randn(n, 6, generator=g)
    t = torch.linspace(-2, 2, n)[:, None]
    return t * torch.tensor([[1.0, 1, 0, 0, 0, 0]]) + 0.6 * torch.randn(n, 6, generator=g)


def view(kind: int, width: int, model_seed: int, data_seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(1000 + model_seed)
    q, _ = torch.linalg.qr(torch.randn(width, 6, generator=g))
    return capability(kind, seed=data_seed) @ q.T


def test_width_agnostic_deterministic_and_saved(tmp_path):
    ex = CapabilityExtractor(SMALL)
    a, b = view(0, 32, 1), view(0, 64, 2)
    fa, fb = ex.fingerprint(a), ex.fingerprint(b)
    assert fa.shape == fb.shape == (16,)
    assert similarity(fa, ex.fingerprint(a)) == pytest.approx(1.0, abs=1e-6)  # eval mode: itself is 1 (UMAF: 0.916)
    ex.save(tmp_path / "ex")
    again = CapabilityExtractor.load(tmp_path / "ex")
    torch.testing.assert_close(again.fingerprint(a), fa)
    d = ExtractorSettings()
    assert (d.dim, d.layers, d.heads, d.ff) == (512, 4, 8, 2048)  # the defaults


def test_contrastive_training_separates_capabilities_on_a_new_width():
    ex = CapabilityExtractor(SMALL)
    views = [(view(k, w, s, data_seed=s), k) for k in (0, 1) for w, s in ((32, 1), (48, 2))]
    losses = train_extractor(ex, views, steps=60, batch=8, lr=3e-3)
    assert sum(losses[-10:]) < sum(losses[:10])
    q0, q1 = ex.fingerprint(view(0, 80, 7, data_seed=5)), ex.fingerprint(view(1, 80, 7, data_seed=5))
    r0, r1 = ex.fingerprint(view(0, 32, 1)), ex.fingerprint(view(1, 32, 1))
    assert similarity(q0, r0) > similarity(q0, r1)
    assert similarity(q1, r1) > similarity(q1, r0)


def test_similarity_metrics():
    a, b = torch.randn(16), torch.randn(16)
    for metric in ("cosine", "pearson", "kl"):
        assert similarity(a, a, metric) == pytest.approx(1.0, abs=1e-5)
        assert similarity(a, b, metric) < 1.0
    with pytest.raises(TransferError, match="unknown similarity"):
        similarity(a, b, "l2")
    with pytest.raises(TransferError, match="at least 2 texts"):
        CapabilityExtractor(SMALL).fingerprint(torch.randn(1, 8))


def test_interpolator_learns_a_scale_shift():
    g = torch.Generator().manual_seed(0)
    small = torch.nn.functional.normalize(torch.randn(6, 16, generator=g), dim=1)
    shift = torch.nn.functional.normalize(torch.randn(16, generator=g), dim=0)
    large = torch.nn.functional.normalize(small + shift, dim=1)
    interp = SizeInterpolator(dim=16, hidden=64)
    torch.testing.assert_close(interp(small[0], 1e6, 1e6), small[0])  # same size: identity
    interp.fit([(small[i], 2e7, large[i], 1e8) for i in range(5)], steps=200)
    with torch.no_grad():
        moved = interp(small[5], 2e7, 1e8)
    assert float(torch.cosine_similarity(moved, large[5], 0)) > float(torch.cosine_similarity(small[5], large[5], 0))
    with pytest.raises(TransferError, match="positive"):
        interp.fit([(small[0], 0.0, large[0], 1e8)])


def test_fusion_average_and_gate():
    fps = torch.nn.functional.normalize(torch.eye(3, 16), dim=1)
    fused, w = weighted_average(fps, [1, 1, 0])
    assert w.tolist() == pytest.approx([0.5, 0.5, 0.0])
    assert float(fused[2]) == 0.0 and float(fused.norm()) == pytest.approx(1.0)
    _, gw = fuse(fps, query=fps[1])
    assert int(gw.argmax()) == 1
    gate = TaskGate(16, temperature=1.0)
    losses = gate.fit([(fps[i], fps, (i + 1) % 3) for i in range(3)], steps=100)  # learn a rotation of preferences
    assert losses[-1] < losses[0]
    with pytest.raises(TransferError, match="weights"):
        weighted_average(fps, [1, -1, 0])


def test_plot_png(tmp_path):
    fps = torch.nn.functional.normalize(torch.randn(4, 16), dim=1)
    path = plot_similarity(fps, ["a:sst2", "b:sst2", "a:trec", "b:trec"], tmp_path / "fp.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
