"""LoRA extraction: exact on low-rank deltas, optimal at a rank, PEFT loads it, bad input writes nothing."""

from __future__ import annotations

import pytest
import torch

from graftkit.errors import TransferError
from graftkit.transfer.lora_extract import extract_lora
from graftkit.transfer.peft_export import apply_adapter, read_peft_adapter


def test_low_rank_delta_recovered_and_error_optimal(bert_pair, tmp_path):
    ft, base = bert_pair
    adapter, report = extract_lora(ft, base, tmp_path / "a", rank=2)
    assert len(report.modules) == 2 * 6 + 1  # 6 Linear modules per layer, 2 layers, the pooler
    assert "classifier.weight" in report.skipped
    # rank-2 delta + 1e-3 noise: the remaining error is the noise only
    assert 0 < report.mean_relative_error < 0.2
    _, full = extract_lora(ft, base, None, rank=32)
    assert full.mean_relative_error < 1e-5
    # Eckart-Young: the reported error equals the true truncation error
    from graftkit.io import Checkpoint

    f, b = Checkpoint.open(ft), Checkpoint.open(base)
    name = "encoder.layer.0.attention.self.query"
    delta = f["bert." + name + ".weight"] - b[name + ".weight"]
    err = (delta - adapter.loras[name].delta()).norm() / delta.norm()
    m = next(m for m in report.modules if m.name == name)
    assert abs(float(err) - m.relative_error) < 1e-4


def test_threshold_cuts_rank_and_peft_reads_per_module_ranks(bert_pair, tmp_path):
    from peft import PeftModel
    from transformers import AutoModel

    ft, base = bert_pair
    adapter, report = extract_lora(ft, base, tmp_path / "t", rank=32, threshold=0.2)
    assert all(m.rank <= 3 for m in report.modules)
    adapter_8, _ = extract_lora(ft, base, None, rank=8, modules=["attention.self.query"])
    ranks = {m.rank for m in report.modules}
    model = PeftModel.from_pretrained(AutoModel.from_pretrained(base), tmp_path / "t")
    name = "encoder.layer.0.attention.self.query"
    loaded = model.base_model.model.get_submodule(name).lora_A["default"].weight
    assert loaded.shape[0] == adapter.loras[name].rank and len(ranks) >= 1
    assert set(adapter_8.loras) == {f"encoder.layer.{i}.attention.self.query" for i in range(2)}


def test_peft_oracle_same_outputs_as_delta_by_hand(bert_pair, tmp_path):
    """The folder loads with PeftModel.from_pretrained; its outputs equal the base with the delta added by hand."""
    from peft import PeftModel, get_peft_model, LoraConfig
    from peft.utils import get_peft_model_state_dict
    from transformers import AutoModel

    ft, base = bert_pair
    out = tmp_path / "adapter"
    adapter, _ = extract_lora(ft, base, out, rank=4, norms=True, embeddings=True)
    assert adapter.replaced and any(f.kind == "embedding" for f in adapter.loras.values())
    ids = torch.randint(3, 128, (2, 9), generator=torch.Generator().manual_seed(0))
    peft_model = PeftModel.from_pretrained(AutoModel.from_pretrained(base), out).eval()
    by_hand = apply_adapter(AutoModel.from_pretrained(base).eval(), read_peft_adapter(out))
    with torch.no_grad():
        a = peft_model(input_ids=ids).last_hidden_state
        b = by_hand(input_ids=ids).last_hidden_state
        plain = AutoModel.from_pretrained(base).eval()(input_ids=ids).last_hidden_state
    assert (a - plain).abs().max() > 1e-3  # the adapter does something
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    # PEFT's own key naming for the same LoRA targets
    names = sorted({k for k in adapter.loras if adapter.loras[k].kind == "linear"})
    ref = get_peft_model(AutoModel.from_pretrained(base), LoraConfig(r=4, target_modules=names))
    ref_keys = {k for k in get_peft_model_state_dict(ref)}
    from safetensors.torch import load_file

    ours = {k for k in load_file(str(out / "adapter_model.safetensors")) if "lora_A" in k or "lora_B" in k}
    assert ours == ref_keys


def test_bad_inputs_write_nothing(bert_pair, tmp_path):
    from graftkit import zoo

    ft, base = bert_pair
    out = tmp_path / "x"
    with pytest.raises(TransferError, match="larger than module"):
        extract_lora(ft, base, out, rank=33)
    with pytest.raises(TransferError, match="matches no 2-D weight"):
        extract_lora(ft, base, out, rank=2, modules=["attention.self.qury"])
    other = zoo.save_tiny("gpt2", tmp_path / "gpt2")
    with pytest.raises(TransferError, match="gpt2"):
        extract_lora(ft, other, out, rank=2)
    wide = zoo.save_tiny("bert", tmp_path / "wide", hidden_size=48)
    with pytest.raises(TransferError, match="true base"):
        extract_lora(ft, wide, out, rank=2)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".x")]


def test_adapter_from_other_base_rejected(bert_pair, tmp_path):
    from graftkit import zoo

    ft, base = bert_pair
    adapter, _ = extract_lora(ft, base, tmp_path / "a", rank=2)
    other = zoo.tiny("bert", hidden_size=48)
    before = {k: v.clone() for k, v in other.state_dict().items()}
    with pytest.raises(TransferError, match="is \(48, 48\) in the target.*another base"):
        apply_adapter(other, read_peft_adapter(tmp_path / "a"))
    assert all(torch.equal(before[k], v) for k, v in other.state_dict().items())
    gpt = zoo.tiny("gpt2", head="base")
    with pytest.raises(TransferError, match="does not exist"):
        apply_adapter(gpt, adapter)


def test_peft_reads_different_ranks_per_module(bert_pair, tmp_path):
    """rank_pattern / alpha_pattern: modules of rank 1 and 3 in one folder give PEFT the same outputs as by hand."""
    from peft import PeftModel
    from transformers import AutoModel

    from graftkit.transfer.peft_export import Adapter, LoRAFactors, write_peft_adapter

    _, base = bert_pair
    g = torch.Generator().manual_seed(0)
    loras = {"encoder.layer.0.attention.self.query": LoRAFactors(0.1 * torch.randn(1, 32, generator=g), torch.randn(32, 1, generator=g)),
             "encoder.layer.1.intermediate.dense": LoRAFactors(0.1 * torch.randn(3, 32, generator=g), torch.randn(64, 3, generator=g))}
    write_peft_adapter(Adapter(loras), tmp_path / "r", model=AutoModel.from_pretrained(base))
    ids = torch.randint(3, 128, (2, 7), generator=g)
    peft_model = PeftModel.from_pretrained(AutoModel.from_pretrained(base), tmp_path / "r").eval()
    by_hand = apply_adapter(AutoModel.from_pretrained(base).eval(), Adapter(loras))
    with torch.no_grad():
        torch.testing.assert_close(peft_model(input_ids=ids).last_hidden_state, by_hand(input_ids=ids).last_hidden_state,
                                   atol=1e-5, rtol=1e-4)
