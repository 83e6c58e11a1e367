"""`path+lora` inputs: the adapter's delta streamed into each base tensor matches PEFT's merge_and_unload."""

from __future__ import annotations

import torch

from graftkit.merge import merge

from .helpers import load_tensors


def _adapter(base, folder, rslora=False):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(base))
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False,
                        use_rslora=rslora, rank_pattern={"down_proj": 2})
    torch.manual_seed(0)
    peft_model = get_peft_model(model, config)
    peft_model.save_pretrained(str(folder))
    merged = peft_model.merge_and_unload()
    return {k: v.detach().clone() for k, v in merged.state_dict().items()}


def test_lora_input_equals_peft_merge(llama_family, tmp_path):
    base, ft1 = llama_family[:2]
    expected = _adapter(base, tmp_path / "adapter", rslora=True)
    merge(f"merge_method: passthrough\nmodels:\n  - model: {base}+{tmp_path / 'adapter'}\n", tmp_path / "out", check=True)
    out = load_tensors(tmp_path / "out")
    for name, tensor in out.items():
        assert torch.allclose(tensor, expected[name], atol=1e-5), name
    assert "+" in (tmp_path / "out" / "README.md").read_text()


def test_lora_input_in_a_task_vector_merge(llama_family, tmp_path):
    base, ft1 = llama_family[:2]
    adapted = _adapter(base, tmp_path / "adapter")
    merge(f"merge_method: task_arithmetic\nbase_model: {base}\nmodels:\n"
          f"  - model: {base}+{tmp_path / 'adapter'}\n    parameters: {{weight: 1.0}}\n"
          f"  - model: {ft1}\n    parameters: {{weight: 1.0}}\n", tmp_path / "out", check=False)
    out, b, f = load_tensors(tmp_path / "out"), load_tensors(base), load_tensors(ft1)
    name = "model.layers.1.self_attn.q_proj.weight"
    assert torch.allclose(out[name], adapted[name] + f[name] - b[name], atol=1e-5)
