"""A task's ``head``: the merged encoder is scored under each expert's own head; bad heads fail before workers start."""

from __future__ import annotations

import pytest
import torch

from graftkit.errors import ConfigError, ValidationError
from graftkit.evolve.objective import Objective, ObjectiveSpec, check_heads
from graftkit.evolve.run import evolve, load_evolve_config


@pytest.fixture(scope="module")
def bert_heads(tmp_path_factory):
    """(encoder folder, 2-class head folder, 3-class head folder) of one tiny BERT family."""
    from graftkit.zoo import save_tiny

    root = tmp_path_factory.mktemp("heads")
    encoder = save_tiny("bert", root / "encoder", head="base", seed=0)
    two = save_tiny("bert", root / "two", head="sequence-classification", seed=1, num_labels=2)
    three = save_tiny("bert", root / "three", head="sequence-classification", seed=2, num_labels=3)
    return encoder, two, three


def _spec(*heads) -> ObjectiveSpec:
    return ObjectiveSpec(tasks=[{"dataset": "sst2", "examples": 8, "head": str(h)} for h in heads])


def test_head_takes_the_merged_encoder_and_keeps_its_classifier(bert_heads):
    from transformers import AutoModel, AutoModelForSequenceClassification

    encoder, two, three = bert_heads
    merged = AutoModel.from_pretrained(encoder).eval()
    objective = Objective(_spec(two, three))
    for path in (two, three):
        original = AutoModelForSequenceClassification.from_pretrained(path)
        scored = objective._with_head(merged, str(path))
        for name, value in merged.state_dict().items():
            assert torch.equal(scored.base_model.state_dict()[name], value), name
        assert torch.equal(scored.classifier.weight, original.classifier.weight)
        assert not torch.equal(original.bert.embeddings.word_embeddings.weight,
                                merged.embeddings.word_embeddings.weight)
    with torch.no_grad():  # a second candidate replaces the first in the cached head model
        merged.embeddings.word_embeddings.weight.add_(1.0)
    scored = objective._with_head(merged, str(two))
    assert torch.equal(scored.bert.embeddings.word_embeddings.weight, merged.embeddings.word_embeddings.weight)


def test_head_of_another_architecture_is_a_config_error(bert_heads, tmp_path):
    from transformers import AutoModel

    from graftkit.zoo import save_tiny

    encoder, two, _ = bert_heads
    wide = save_tiny("bert", tmp_path / "wide", head="sequence-classification", hidden_size=48, num_labels=2)
    merged = AutoModel.from_pretrained(encoder).eval()
    with pytest.raises(ConfigError, match="does not fit"):
        Objective(_spec(wide))._with_head(merged, str(wide))
    llama = save_tiny("llama", tmp_path / "llama", head="sequence-classification", num_labels=2)
    with pytest.raises(ConfigError, match="do not match"):
        Objective(_spec(llama))._with_head(merged, str(llama))


def test_missing_head_fails_before_any_worker(bert_heads, tmp_path):
    encoder, two, _ = bert_heads
    with pytest.raises(ValidationError, match="nowhere"):
        check_heads(_spec(two, tmp_path / "nowhere"))
    check_heads(_spec(two))
    config = {"models": [str(encoder), str(encoder)], "method": "linear",
              "objective": {"kind": "accuracy", "tasks": [{"dataset": "sst2", "head": str(tmp_path / "nowhere")}]},
              "search": {"budget": 2, "popsize": 2, "workers": 0}}
    with pytest.raises(ValidationError, match="not a model folder"):
        evolve(config, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_head_path_is_resolved_against_the_config_folder(bert_heads, tmp_path):
    import shutil

    encoder, two, _ = bert_heads
    shutil.copytree(two, tmp_path / "experts" / "two")
    (tmp_path / "evolve.yaml").write_text(
        f"models: [{two}]\nbase_model: {encoder}\nmethod: task_arithmetic\n"
        "objective: {kind: accuracy, tasks: [{dataset: sst2, head: experts/two, max_length: 32}]}\n")
    cfg = load_evolve_config(tmp_path / "evolve.yaml")
    assert cfg.objective.tasks[0].head == str((tmp_path / "experts" / "two").resolve())
    assert cfg.objective.tasks[0].max_length == 32


def test_resident_merge_writes_a_non_persistent_buffer_of_the_files(tmp_path):
    """BERT checkpoints keep ``embeddings.position_ids`` although the model's state_dict() omits it."""
    from safetensors.torch import load_file, save_file

    from graftkit.evolve import ResidentMerger
    from graftkit.zoo import save_tiny

    folders = []
    for i, name in enumerate(("base", "a", "b")):
        folder = save_tiny("bert", tmp_path / name, head="base", seed=i)
        weights = load_file(str(folder / "model.safetensors"))
        assert "embeddings.position_ids" not in weights
        weights["embeddings.position_ids"] = torch.arange(128).unsqueeze(0)
        save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
        folders.append(folder)
    base, a, b = folders
    cfg = {"merge_method": "task_arithmetic", "base_model": str(base),
           "models": [{"model": str(a), "parameters": {"weight": 0.5}}, {"model": str(b), "parameters": {"weight": 0.5}}]}
    model = ResidentMerger(base).apply(cfg)
    assert torch.equal(model.embeddings.position_ids, torch.arange(128).unsqueeze(0))
    expected = load_file(str(base / "model.safetensors"))["embeddings.word_embeddings.weight"]
    deltas = [load_file(str(f / "model.safetensors"))["embeddings.word_embeddings.weight"] - expected for f in (a, b)]
    assert torch.allclose(model.embeddings.word_embeddings.weight, expected + 0.5 * deltas[0] + 0.5 * deltas[1], atol=1e-6)
