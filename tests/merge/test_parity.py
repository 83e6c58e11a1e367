"""Every mergekit method, run by mergekit 0.1.5 and by graftkit on the same tiny models and config.

Deterministic methods must agree on every tensor to 1e-5 (float32); the random ones
(DARE and DELLA drop masks) use different generators, so their statistics must agree:
the fraction of entries left at the base value and the size of the change.
"""

from __future__ import annotations

import pytest
import torch

from .helpers import load_tensors, run_graftkit, run_mergekit

TASK_VECTOR = (
    "base_model: {b}\nmodels:\n"
    "  - model: {f1}\n    parameters: {{weight: 0.6, density: 0.5}}\n"
    "  - model: {f2}\n    parameters: {{weight: [0.3, 0.7], density: 0.7}}\n"
    "parameters: {{lambda: 0.9}}\n"
)
CASES = {
    # gradient over the layers on one model, scalar on the other
    "linear": "models:\n  - model: {b}\n    parameters: {{weight: [0.2, 0.7]}}\n  - model: {f1}\n    parameters: {{weight: 0.5}}\n",
    # slices + filter lists with gradients, mergekit's classic slerp recipe
    "slerp": (
        "base_model: {b}\nslices:\n  - sources:\n      - model: {b}\n        layer_range: [0, 2]\n"
        "      - model: {f1}\n        layer_range: [0, 2]\nparameters:\n  t:\n"
        "    - filter: self_attn\n      value: [0, 0.5, 0.3]\n    - filter: mlp\n      value: [1, 0.5, 0.7]\n"
        "    - value: 0.5\n"
    ),
    "task_arithmetic": TASK_VECTOR,
    "ties": TASK_VECTOR,
    "dare_ties": TASK_VECTOR,
    "dare_linear": TASK_VECTOR,
    "breadcrumbs": TASK_VECTOR,
    "breadcrumbs_ties": TASK_VECTOR,
    "della": TASK_VECTOR,
    "della_linear": TASK_VECTOR,
    "sce": "base_model: {b}\nmodels:\n  - model: {f1}\n  - model: {f2}\nparameters: {{select_topk: 0.5}}\n",
    "ram": "base_model: {b}\nmodels:\n  - model: {f1}\n  - model: {f2}\n",
    "ramplus_tl": "base_model: {b}\nmodels:\n  - model: {f1}\n  - model: {f2}\n",
    "model_stock": "base_model: {b}\nmodels:\n  - model: {f1}\n  - model: {f2}\n  - model: {f3}\n",
    "nearswap": "base_model: {b}\nmodels:\n  - model: {f1}\nparameters: {{t: 0.01}}\n",
    "arcee_fusion": "base_model: {b}\nmodels:\n  - model: {f1}\n",
    "karcher": "models:\n  - model: {b}\n  - model: {f1}\n  - model: {f2}\n",
    "multislerp": "base_model: {b}\nmodels:\n  - model: {f1}\n    parameters: {{weight: 0.4}}\n  - model: {f2}\n    parameters: {{weight: 0.6}}\n",
    "nuslerp": "base_model: {b}\nmodels:\n  - model: {f1}\n    parameters: {{weight: 0.4}}\n  - model: {f2}\n    parameters: {{weight: 0.6}}\n",
    # a frankenmerge: layer 0 of one model, then layers 0-1 of another (3 layers out)
    "passthrough": (
        "slices:\n  - sources:\n      - model: {f1}\n        layer_range: [0, 1]\n"
        "  - sources:\n      - model: {f2}\n        layer_range: [0, 2]\n"
    ),
}
RANDOM = {"dare_ties", "dare_linear", "della", "della_linear"}


def test_every_mergekit_method_has_a_case():
    from graftkit.merge.methods import METHODS

    assert {n for n, m in METHODS.items() if m.mergekit} == set(CASES)


@pytest.mark.parametrize("method", sorted(CASES))
def test_matches_mergekit(method, llama_family, tmp_path):
    b, f1, f2, f3 = llama_family
    text = f"merge_method: {method}\ndtype: float32\n" + CASES[method].format(b=b, f1=f1, f2=f2, f3=f3)
    theirs = load_tensors(run_mergekit(text, tmp_path / "mergekit"))
    run_graftkit(text, tmp_path / "graftkit", check=False)
    ours = load_tensors(tmp_path / "graftkit")
    assert set(ours) == set(theirs)
    if method in RANDOM:
        base = load_tensors(b)
        for name, t in theirs.items():
            if t.numel() < 1000:
                continue
            kept_theirs = (t == base[name]).float().mean().item()
            kept_ours = (ours[name] == base[name]).float().mean().item()
            assert abs(kept_theirs - kept_ours) < 0.05, name
            size_theirs = (t - base[name]).norm().item()
            size_ours = (ours[name] - base[name]).norm().item()
            assert size_ours == pytest.approx(size_theirs, rel=0.1), name
    else:
        for name, t in theirs.items():
            assert (ours[name] - t).abs().max().item() <= 1e-5, name

    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(tmp_path / "graftkit"))
    logits = model(torch.arange(10)[None]).logits
    assert torch.isfinite(logits).all()
    if method == "passthrough":
        assert model.config.num_hidden_layers == 3
