import subprocess

import pytest
import torch

from graftkit.compose import MoLRuntime
from graftkit.compose.export import export_static
from graftkit.compose.push import push
from graftkit.errors import CompositionError


def _config(folders, layers, **extra):
    return {"models": [{"name": "a", "path": str(folders["llama"])}, {"name": "b", "path": str(folders["llama_b"])}],
            "layers": layers, **extra}


def test_layer_stacking_exports_exactly(tiny_folders, tmp_path):
    runtime = MoLRuntime(_config(tiny_folders, [[["b", 0]], [["a", 1]]]))
    ids = torch.tensor([[4, 5, 6, 7, 8, 9]])
    report = export_static(runtime, tmp_path / "static", input_ids=ids)
    assert report.max_logit_diff == 0.0 and report.dropped_adapters == []
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tmp_path / "static")
    assert model.config.num_hidden_layers == 2 and AutoTokenizer.from_pretrained(tmp_path / "static") is not None
    b_layer0 = runtime.experts["b"].model.model.layers[0].mlp.up_proj.weight
    assert torch.equal(model.model.layers[0].mlp.up_proj.weight, b_layer0)
    assert torch.equal(model.model.embed_tokens.weight, runtime.experts["a"].model.model.embed_tokens.weight)


def test_mixture_export_reports_its_gap_and_dropped_adapters(tiny_folders, tmp_path):
    runtime = MoLRuntime(_config(tiny_folders, [[["a", 0], ["b", 0]], [["a", 1], ["b", 1]]], router={"top_k": None}))
    torch.nn.init.normal_(runtime.layers[1].adapters_out[0].proj.weight)
    ids = torch.tensor([[4, 5, 6, 7, 8, 9]])
    report = export_static(runtime, tmp_path / "static", input_ids=ids)
    assert report.layer_weights[0] == {"a:0": 0.5, "b:0": 0.5}
    assert report.dropped_adapters == ["layer1.a:1"]
    assert report.max_logit_diff > 0 and report.kl_runtime_to_export > 0
    assert "NOT exported" in report.describe()


def test_heterogeneous_fusion_is_not_exportable(tiny_folders, tmp_path):
    config = {"models": [{"name": "a", "path": str(tiny_folders["llama"])}, {"name": "g", "path": str(tiny_folders["gpt2_char"])}],
              "layers": [[["a", 0], ["g", 0]]], "retokenize": True}
    with pytest.raises(CompositionError, match="expert 'g' differs.*model_type"):
        export_static(MoLRuntime(config), tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_push_commits_into_a_local_git_repository(tiny_folders, tmp_path):
    repo = tmp_path / "remote"
    result = push(tiny_folders["llama"], f"file://{repo}", message="first")
    assert "config.json" in result.files and (repo / "model.safetensors").is_file()
    log = subprocess.run(["git", "-C", str(repo), "log", "--format=%s"], capture_output=True, text=True).stdout
    assert log.strip() == "first" and len(result.revision) == 40


def test_push_to_the_hub_goes_through_hfapi(tiny_folders, monkeypatch):
    import huggingface_hub

    calls = []

    class FakeApi:
        def __init__(self, endpoint=None, token=None):
            calls.append(("init", endpoint))

        def create_repo(self, repo_id, **kwargs):
            calls.append(("create_repo", repo_id, kwargs["exist_ok"]))

        def upload_folder(self, repo_id, folder_path, commit_message, repo_type):
            calls.append(("upload_folder", repo_id, folder_path, commit_message))
            return type("Info", (), {"commit_url": "http://hub.local/commit/1"})()

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    result = push(tiny_folders["llama"], "me/fused", endpoint="http://hub.local", message="upload")
    assert calls == [("init", "http://hub.local"), ("create_repo", "me/fused", True),
                     ("upload_folder", "me/fused", str(tiny_folders["llama"]), "upload")]
    assert result.revision == "http://hub.local/commit/1"
    with pytest.raises(CompositionError, match="neither a Hub repo id"):
        push(tiny_folders["llama"], "not a repo")
