import pytest
import torch

from graftkit.errors import ZooError
from graftkit.zoo import TINY_ARCHITECTURES, tiny


@pytest.mark.parametrize("arch", sorted(TINY_ARCHITECTURES))
def test_tiny_models_build_and_are_deterministic(arch):
    a, b = tiny(arch, seed=3), tiny(arch, seed=3)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not a.training


def test_unknown_architecture_names_the_choices():
    with pytest.raises(ZooError, match="llama"):
        tiny("no-such-arch")
