"""Extractor, interpolator, fusion and plot on synthetic views: two capabilities (which
input directions a fine-tune amplifies) added to random linear 'models' of different widths."""

from __future__ import annotations

import pytest
import torch

from graftkit.errors import TransferError
from graftkit.transfer.extractor import CapabilityExtractor, ExtractorSettings, similarity, train_extractor
from graftkit.transfer.fusion import TaskGate, fuse, weighted_average
from graftkit.transfer.interpolator import SizeInterpolator
from graftkit.transfer.plot import plot_similarity

ANCHORS = 12
SMALL = ExtractorSettings(anchors=ANCHORS, hidden=32, layers=1, heads=4, ff=64, dim=16, dropout=0.0)


def texts(n: int, seed: int) -> torch.Tensor:
    """Latent inputs (n, 6); the anchors (seed 0) come first in every view."""
    anchors = torch.randn(ANCHORS, 6, generator=torch.Generator().manual_seed(0))
    return torch.cat([anchors, torch.randn(n, 6, generator=torch.Generator().manual_seed(seed))])


def model(width: int, model_seed: int) -> torch.Tensor:
    """A random 'base model': a linear map of the latent inputs plus a model-specific distortion."""
    g = torch.Generator().manual_seed(1000 + model_seed)
    return torch.randn(6, width, generator=g) * torch.rand(6, 1, generator=g).add(0.5)


def view(kind: int | None, width: int, model_seed: int, data_seed: int = 1, n: int = 40) -> torch.Tensor:
    """Capability 0 amplifies input directions 0-1, capability 1 directions 2-3; None is the base model."""
    u = texts(n, data_seed)
    if kind is not None:
        gain = torch.ones(6)
        gain[2 * kind: 2 * kind + 2] = 3.0
        u = u * gain
    return u @ model(width, model_seed)


def test_width_agnostic_deterministic_and_saved(tmp_path):
    ex = CapabilityExtractor(SMALL)
    fa, fb = ex.fingerprint(view(0, 32, 1), view(None, 32, 1)), ex.fingerprint(view(0, 64, 2), view(None, 64, 2))
    assert fa.shape == fb.shape == (16,)
    assert similarity(fa, ex.fingerprint(view(0, 32, 1), view(None, 32, 1))) == pytest.approx(1.0, abs=1e-6)  # UMAF: 0.916
    ex.save(tmp_path / "ex")
    again = CapabilityExtractor.load(tmp_path / "ex")
    torch.testing.assert_close(again.fingerprint(view(0, 32, 1), view(None, 32, 1)), fa)
    d = ExtractorSettings()
    assert (d.dim, d.layers, d.heads, d.ff) == (512, 4, 8, 2048)  # the defaults
    (tmp_path / "ex" / "extractor.json").write_text('{"components": 64}')
    with pytest.raises(TransferError, match="components"):
        CapabilityExtractor.load(tmp_path / "ex")


def test_tokens_are_width_independent_and_keep_the_inputs_apart():
    ex = CapabilityExtractor(SMALL)
    # the same model seen at two widths through an orthogonal embedding gives the same tokens
    q, _ = torch.linalg.qr(torch.randn(64, 32, generator=torch.Generator().manual_seed(3)))
    a, b = view(0, 32, 1), view(None, 32, 1)
    torch.testing.assert_close(ex.process(a, b), ex.process(a @ q.T, b @ q.T), atol=1e-4, rtol=1e-4)
    assert ex.process(a, b).shape == (40, 2 * ANCHORS)  # one token per input text, anchors as columns


def test_contrastive_training_names_the_capability_on_a_new_model_and_new_inputs():
    ex = CapabilityExtractor(SMALL)
    views = [(view(k, w, s), k, view(None, w, s)) for k in (0, 1) for w, s in ((32, 1), (48, 2), (40, 3))]
    losses = train_extractor(ex, views, steps=80, batch=8, lr=3e-3)
    assert sum(losses[-10:]) < sum(losses[:10])
    # held out: a model of another width, on inputs never seen in training
    q0 = ex.fingerprint(view(0, 80, 7, data_seed=5), view(None, 80, 7, data_seed=5))
    q1 = ex.fingerprint(view(1, 80, 7, data_seed=5), view(None, 80, 7, data_seed=5))
    r0 = ex.fingerprint(view(0, 32, 1, data_seed=5), view(None, 32, 1, data_seed=5))
    r1 = ex.fingerprint(view(1, 32, 1, data_seed=5), view(None, 32, 1, data_seed=5))
    # same task, other model beats other task, same model, by a margin an untrained extractor does not reach (~0.05-0.1)
    assert similarity(q0, r0) - similarity(q0, q1) > 0.5
    assert similarity(q1, r1) - similarity(q1, q0) > 0.5
    assert similarity(q0, r0) - similarity(q0, r1) > 0.5


def test_similarity_metrics_and_bad_views():
    a, b = torch.randn(16), torch.randn(16)
    for metric in ("cosine", "pearson", "kl"):
        assert similarity(a, a, metric) == pytest.approx(1.0, abs=1e-5)
        assert similarity(a, b, metric) < 1.0
    with pytest.raises(TransferError, match="unknown similarity"):
        similarity(a, b, "l2")
    ex = CapabilityExtractor(SMALL)
    with pytest.raises(TransferError, match="anchor texts first"):
        ex.fingerprint(torch.randn(ANCHORS - 1, 8), torch.randn(ANCHORS - 1, 8))
    with pytest.raises(TransferError, match="no base activations"):
        ex.fingerprint(view(0, 32, 1))
    with pytest.raises(TransferError, match="base activations cover"):
        ex.fingerprint(view(0, 32, 1), view(None, 32, 1, n=20))
    with pytest.raises(TransferError, match="delta=False"):
        CapabilityExtractor(ExtractorSettings(anchors=ANCHORS, delta=False, hidden=32, heads=4)).fingerprint(view(0, 32, 1), view(None, 32, 1))


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
