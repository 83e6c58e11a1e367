"""The demo's own pieces: splitting an expert into encoder + head, and its merge configs."""

import pytest
import torch
from transformers import AutoModel

from graftkit.demo import METHODS, merge_config, split_classifier
from graftkit.errors import GraftError
from graftkit.zoo import save_tiny, tiny


def test_split_classifier_gives_the_experts_encoder(tmp_path):
    expert = tmp_path / "expert"
    model = tiny("bert", head="sequence-classification", seed=1, num_labels=3)
    model.save_pretrained(expert)
    split_classifier(expert, tmp_path / "encoder")
    encoder = AutoModel.from_pretrained(tmp_path / "encoder").eval()
    ids = torch.randint(0, 128, (2, 7))
    with torch.no_grad():
        want = model.bert(input_ids=ids).last_hidden_state
        got = encoder(input_ids=ids).last_hidden_state
    assert torch.equal(want, got)


def test_split_refuses_a_non_classifier(tmp_path):
    save_tiny("llama", tmp_path / "llama")
    with pytest.raises(GraftError, match="not an encoder classifier"):
        split_classifier(tmp_path / "llama", tmp_path / "out")


@pytest.mark.parametrize("method", sorted(METHODS))
def test_demo_configs_validate(tmp_path, method):
    from graftkit.merge import validate

    base = save_tiny("bert", tmp_path / "base", seed=0)
    encoders = {name: save_tiny("bert", tmp_path / name, seed=i + 1) for i, name in enumerate(("a", "b"))}
    plan = validate(merge_config(method, base, encoders))
    assert plan is not None
