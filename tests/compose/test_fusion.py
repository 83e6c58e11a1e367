import pytest
import torch

from graftkit import zoo
from graftkit.compose.fusion import CrossAttentionUnit, GatedProjectionUnit, Link, LinkedModel, make_unit
from graftkit.errors import CompositionError, ConfigError, ShapeMismatchError


@pytest.mark.parametrize("kind", ["cross_attention", "gated"])
def test_units_start_as_identity_across_widths(kind):
    unit = make_unit(kind, 32, 48)
    h, other = torch.randn(2, 5, 32), torch.randn(2, 5, 48)
    assert torch.equal(unit(h, other), h)


def test_cross_attention_reads_a_sequence_of_another_length_and_respects_padding():
    unit = CrossAttentionUnit(32, 48)
    unit.gate.data.fill_(1.0)
    h, other = torch.randn(2, 5, 32), torch.randn(2, 9, 48)
    mask = torch.ones(2, 9, dtype=torch.long)
    mask[1, 6:] = 0
    out = unit(h, other, mask)
    assert out.shape == h.shape and not torch.allclose(out, h)
    other2 = other.clone()
    other2[1, 6:] = 50.0
    assert torch.allclose(unit(h, other2, mask), out, atol=1e-6)


def test_causal_cross_attention_ignores_later_positions():
    unit = make_unit("cross_attention", 16, 24, causal=True, heads=2)
    unit.gate.data.fill_(1.0)
    h, other = torch.randn(1, 6, 16), torch.randn(1, 6, 24)
    out = unit(h, other)
    other2 = other.clone()
    other2[:, 4:] += 10
    assert torch.allclose(unit(h, other2)[:, :4], out[:, :4], atol=1e-6)


def test_unit_errors():
    with pytest.raises(ConfigError, match="do not divide"):
        make_unit("cross_attention", 30, 8, heads=4)
    with pytest.raises(ShapeMismatchError, match="same token positions"):
        GatedProjectionUnit(8, 8)(torch.randn(1, 3, 8), torch.randn(1, 4, 8))
    with pytest.raises(ConfigError, match="unknown fusion unit"):
        make_unit("attention", 8, 8)


def _linked():
    anchor = zoo.tiny("llama", seed=0)
    other = zoo.tiny("bert", hidden_size=48, seed=1)  # another family and width
    links = [Link(anchor_layer=0, other="enc", other_layer=1), Link(anchor_layer=1, other="enc", other_layer=0, kind="gated")]
    return anchor, other, LinkedModel(anchor, {"enc": other}, links)


def test_linked_model_starts_equal_to_the_anchor_and_trains_only_units():
    anchor, other, linked = _linked()
    ids = torch.randint(3, 100, (2, 6))
    with torch.no_grad():
        assert torch.equal(linked(ids).logits, anchor(input_ids=ids).logits)
    assert all(not p.requires_grad for p in anchor.parameters()) and all(not p.requires_grad for p in other.parameters())
    assert set(linked.state_dict()) and all(k.startswith("units.") for k in linked.state_dict())
    opt = torch.optim.Adam(linked.parameters(), lr=0.05)
    target = torch.randint(3, 100, (2, 6))
    for _ in range(5):
        logits = linked(ids).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 128), target.reshape(-1))
        opt.zero_grad(); loss.backward(); opt.step()
    assert all(g > 0 for g in linked.gates())
    with torch.no_grad():
        assert not torch.allclose(linked(ids).logits, anchor(input_ids=ids).logits)
        # the anchor called on its own is unchanged by the links
        assert torch.equal(anchor(input_ids=ids).logits, anchor(input_ids=ids).logits)


def test_link_layer_out_of_range():
    anchor, other = zoo.tiny("llama"), zoo.tiny("bert")
    with pytest.raises(CompositionError, match=r"model 'enc' has 2 layers.*layer 5 is out of range"):
        LinkedModel(anchor, {"enc": other}, [Link(0, "enc", 5)])
    with pytest.raises(CompositionError, match="which was not given"):
        LinkedModel(anchor, {"enc": other}, [Link(0, "dec", 0)])
