"""Both generators on tiny BERTs of different widths and depths: adapters fit the target,
load in PEFT, are checked against the source, and bad input writes nothing."""

from __future__ import annotations

import pytest
import torch

from graftkit.errors import TransferError
from graftkit.transfer.generators import Encoder, generate_and_check, get_generator
from graftkit.transfer.lora_extract import extract_lora

from .conftest import random_texts


def test_distill_trains_checks_and_writes_peft(transfer_folders, tmp_path):
    from peft import PeftModel
    from transformers import AutoModel

    source = Encoder.load(transfer_folders["expert"])
    target = Encoder.load(transfer_folders["target"])
    before = {k: v.clone() for k, v in target.model.state_dict().items()}
    gen = get_generator("distill", rank=4, steps=40, batch_size=16)
    adapter, report = generate_and_check(gen, [source], target, random_texts(128), random_texts(64, seed=9),
                                         out=tmp_path / "a")
    assert all(torch.equal(before[k], v) for k, v in target.model.state_dict().items())  # target left as it was
    assert adapter.meta["final_loss"] < adapter.meta["first_loss"]
    assert report.feature_change > 0 and report.n == 32
    assert 0 <= report.agreement_with <= 1 and report.r2_with == report.r2_with
    model = PeftModel.from_pretrained(AutoModel.from_pretrained(transfer_folders["target"]), tmp_path / "a").eval()
    assert model is not None


def test_subspace_maps_source_lora_into_other_width(transfer_folders):
    source = Encoder.load(transfer_folders["expert"])
    target = Encoder.load(transfer_folders["target"])
    src_lora, _ = extract_lora(transfer_folders["expert"], transfer_folders["base"], None, rank=2)
    gen = get_generator("subspace")
    adapter, report = generate_and_check(gen, [source], target, random_texts(96), random_texts(48, seed=9),
                                         source_adapters=[src_lora])
    q = adapter.loras["encoder.layer.0.attention.self.query"]
    assert q.shape == (48, 48) and q.rank == 2
    assert len(adapter.loras) == 3 * 6
    assert report.feature_change > 0


def test_subspace_onto_its_own_base_recovers_the_expert(transfer_folders):
    """Source base = target: the mapped LoRA brings the features most of the way to those of the exact LoRA."""
    import copy

    from graftkit.transfer.peft_export import apply_adapter

    base = Encoder.load(transfer_folders["base"])
    src_lora, _ = extract_lora(transfer_folders["expert"], transfer_folders["base"], None, rank=2)
    adapter = get_generator("subspace", alpha=1e-4).generate([base], base, random_texts(256), source_adapters=[src_lora])
    texts = random_texts(64, seed=4)
    exact = Encoder(apply_adapter(copy.deepcopy(base.model), src_lora), base.tokenizer)
    f_expert, f_base = exact.features(texts), base.features(texts)
    adapted = Encoder(apply_adapter(copy.deepcopy(base.model), adapter), base.tokenizer)
    gap_before = (f_base - f_expert).norm()
    gap_after = (adapted.features(texts) - f_expert).norm()
    assert float(gap_after) < 0.5 * float(gap_before)


def test_generator_bad_input_writes_nothing(transfer_folders, tmp_path):
    source = Encoder.load(transfer_folders["expert"])
    target = Encoder.load(transfer_folders["target"])
    texts = random_texts(32)
    with pytest.raises(TransferError, match="attention.self.qurey"):
        generate_and_check(get_generator("distill", steps=2), [source], target, texts, texts, out=tmp_path / "a",
                           modules=["attention.self.qurey"])
    with pytest.raises(TransferError, match="larger than module"):
        generate_and_check(get_generator("distill", steps=2, rank=64), [source], target, texts, texts, out=tmp_path / "a")
    with pytest.raises(TransferError, match="source LoRA"):
        generate_and_check(get_generator("subspace"), [source], target, texts, texts, out=tmp_path / "a")
    with pytest.raises(TransferError, match="unknown generator"):
        get_generator("distil")
    assert not (tmp_path / "a").exists()
