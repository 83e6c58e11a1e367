import pytest
import torch

from graftkit import zoo
from graftkit.compose import MoLRuntime
from graftkit.errors import CompositionError, ConfigError

from .conftest import save_model, word_tokenizer


def _ids(batch=2, length=8, pad_last=3, vocab=100, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (batch, length), generator=g)
    mask = torch.ones_like(ids)
    mask[-1, length - pad_last:] = 0
    return ids, mask


@pytest.mark.parametrize("arch", ["llama", "gemma3_text", "gpt2", "qwen2", "bert", "mpnet"])
def test_one_expert_with_identity_adapters_reproduces_the_model_exactly(arch):
    model = zoo.tiny(arch)
    config = {"models": ["m"], "layers": [[["m", 0]], [["m", 1]]], "adapter_type": "linear"}
    runtime = MoLRuntime(config, models={"m": model})
    ids, mask = _ids()
    with torch.no_grad():
        out = runtime(ids, mask)
        ref = model(input_ids=ids, attention_mask=mask)
    if runtime.experts["m"].info.family == "decoder-only":
        assert torch.equal(out.logits, ref.logits)
    else:
        assert out.logits is None and torch.equal(out.last_hidden_state, ref.last_hidden_state)


def test_fused_layers_transform_the_hidden_state():
    """Seed 003's runtime returned each expert's input unchanged; here each fused layer must equal its expert layer."""
    model = zoo.tiny("llama")
    runtime = MoLRuntime({"models": ["m"], "layers": [[["m", 0]], [["m", 1]]]}, models={"m": model})
    ids, mask = _ids()
    with torch.no_grad():
        out = runtime(ids, mask, output_hidden_states=True)
        ref = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    h = out.hidden_states
    assert len(h) == 3
    for i in range(2):
        change = (h[i + 1] - h[i]).norm() / h[i].norm()
        assert change > 0.05, f"fused layer {i} left its input (almost) unchanged"
    assert torch.equal(h[0], ref.hidden_states[0]) and torch.equal(h[1], ref.hidden_states[1])


def test_two_experts_mix_by_router_weights_and_report_stats():
    a, b = zoo.tiny("llama", seed=0), zoo.tiny("llama", seed=1)
    config = {"models": ["a", "b"], "layers": [[["a", 0], ["b", 0]], [["a", 1], ["b", 1]]],
              "router_type": "token", "router": {"top_k": None}}
    runtime = MoLRuntime(config, models={"a": a, "b": b})
    ids, mask = _ids()
    with torch.no_grad():
        out = runtime(ids, mask, return_router_stats=True, output_hidden_states=True)
        ctx_a = runtime.experts["a"].context(ids, mask, 1)
        ctx_b = runtime.experts["b"].context(ids, mask, 1)
        h0 = out.hidden_states[0]
        expected = 0.5 * runtime.experts["a"].call_layer(0, h0, ctx_a) + 0.5 * runtime.experts["b"].call_layer(0, h0, ctx_b)
    assert torch.allclose(out.hidden_states[1], expected, atol=1e-6)
    assert len(out.router_stats) == 2 and out.router_stats[0]["mean_prob"] == [0.5, 0.5]
    assert out.router_stats[0]["experts"] == ["a:0", "b:0"]


def test_top1_routing_follows_the_router():
    a, b = zoo.tiny("llama", seed=0), zoo.tiny("llama", seed=1)
    config = {"models": ["a", "b"], "layers": [[["a", 0], ["b", 0]], [["a", 1], ["b", 1]]], "router": {"top_k": 1}}
    runtime = MoLRuntime(config, models={"a": a, "b": b})
    for layer in runtime.layers:  # force every token to expert b
        layer.router.score.bias.data = torch.tensor([-5.0, 5.0])
    ids, mask = _ids()
    with torch.no_grad():
        out = runtime(ids, mask, return_router_stats=True)
        ref = b(input_ids=ids, attention_mask=mask).logits  # a's embeddings = b's? no: a's embeddings, b's layers
    assert out.router_stats[0]["top_expert_fraction"] == [0.0, 1.0]
    assert not torch.allclose(out.logits, ref)  # embeddings and head still come from a


def test_different_width_expert_with_calibrated_adapters():
    a, wide = zoo.tiny("llama"), zoo.tiny("gpt2", n_embd=48, seed=3)
    config = {"models": ["a", "wide"], "layers": [[["a", 0], ["wide", 1]], [["a", 1]]], "adapter_type": "bottleneck",
              "adapter": {"rank": 4}}
    runtime = MoLRuntime(config, models={"a": a, "wide": wide})
    layer = runtime.layers[0]
    assert (layer.adapters_in[1].in_dim, layer.adapters_in[1].out_dim) == (32, 48)
    ids, mask = _ids(batch=8, length=12, pad_last=0)
    residuals = runtime.calibrate(ids, mask)
    # least squares with an intercept never does worse than the mean; unrelated random models fit only partly
    assert set(residuals) == {"layer0.wide:1.in", "layer0.wide:1.out"} and all(0 <= r < 1.0 for r in residuals.values())
    assert not torch.equal(layer.adapters_in[1].proj.weight, torch.eye(48, 32))
    with torch.no_grad():
        assert torch.isfinite(runtime(ids, mask).logits).all()


def test_generate_greedy_matches_the_model():
    model = zoo.tiny("llama")
    runtime = MoLRuntime({"models": ["m"], "layers": [[["m", 0]], [["m", 1]]]}, models={"m": model})
    prompt = torch.tensor([[5, 9, 11]])
    ours = runtime.generate(prompt, max_new_tokens=5, eos_token_id=-1)
    theirs = model.generate(prompt, max_new_tokens=5, do_sample=False, min_new_tokens=5, pad_token_id=0)
    assert torch.equal(ours, theirs)


def test_generate_refuses_an_encoder_head():
    runtime = MoLRuntime({"models": ["m"], "layers": [[["m", 0]]]}, models={"m": zoo.tiny("bert")})
    with pytest.raises(CompositionError, match="causal LM head"):
        runtime.generate(torch.tensor([[1, 2]]))


def test_experts_load_lazily_from_folders(tiny_folders):
    config = {"models": [{"name": "a", "path": str(tiny_folders["llama"])}, {"name": "b", "path": str(tiny_folders["llama_b"])}],
              "layers": [[["a", 0], ["b", 1]]]}
    runtime = MoLRuntime(config)
    assert runtime.experts_loaded() == {"a": False, "b": False}
    ids = runtime.tokenizer(["the cat sat on the mat"], return_tensors="pt")
    out = runtime(ids["input_ids"], ids["attention_mask"])
    assert runtime.experts_loaded() == {"a": True, "b": True} and out.logits.shape == (1, 6, 128)


def _no_weights(monkeypatch):
    import transformers

    def fail(*args, **kwargs):
        raise AssertionError("weights were loaded before validation finished")

    monkeypatch.setattr(transformers.PreTrainedModel, "from_pretrained", classmethod(fail))


def test_bad_input_fails_before_any_weights_load(tiny_folders, tmp_path, monkeypatch):
    _no_weights(monkeypatch)
    a, b, g = (str(tiny_folders[k]) for k in ("llama", "llama_b", "gpt2_char"))
    with pytest.raises(CompositionError, match=r"expert 'b' has 2 layers.*layer 7 is out of range"):
        MoLRuntime({"models": [{"name": "a", "path": a}, {"name": "b", "path": b}], "layers": [[["a", 0], ["b", 7]]]})
    with pytest.raises(CompositionError, match=r"expert 'g' uses a different tokenizer.*retokenize: true"):
        MoLRuntime({"models": [{"name": "a", "path": a}, {"name": "g", "path": g}], "layers": [[["a", 0], ["g", 0]]]})
    t5 = save_model(tmp_path / "t5", "t5")
    with pytest.raises(CompositionError, match=r"expert 't5' is a encoder-decoder model"):
        MoLRuntime({"models": [{"name": "a", "path": a}, {"name": "t5", "path": str(t5)}], "layers": [[["t5", 0]]]})
    with pytest.raises(CompositionError, match="neither a model folder"):
        MoLRuntime({"models": [{"name": "x", "path": str(tmp_path / "missing")}], "layers": [[["x", 0]]]})
    with pytest.raises(ConfigError, match="names model 'c'"):
        MoLRuntime({"models": [{"name": "a", "path": a}], "layers": [[["c", 0]]]})


def test_retokenization_bridges_a_character_level_expert(tiny_folders):
    a, g = str(tiny_folders["llama"]), str(tiny_folders["gpt2_char"])
    config = {"models": [{"name": "a", "path": a}, {"name": "g", "path": g}], "layers": [[["a", 0], ["g", 0]], [["a", 1]]],
              "retokenize": True, "router": {"top_k": None}}
    runtime = MoLRuntime(config)
    assert runtime.retokenized == {"g"}
    enc = runtime.tokenizer(["the cat sat", "a dog runs fast"], padding=True, return_tensors="pt")
    from graftkit.compose.tokenization import build_bridge

    bridge = build_bridge(runtime.tokenizer, runtime.experts["g"].tokenizer, enc["input_ids"], enc["attention_mask"], "g")
    # "the cat sat" -> 11 characters; each word token receives the outputs of its own characters
    assert int(bridge.expert_mask[0].sum()) == 11 and bool(bridge.covered[0, :3].all()) and not bool(bridge.covered[0, 3])
    assert torch.equal(bridge.into[0, 4], torch.nn.functional.one_hot(torch.tensor(1), enc["input_ids"].shape[1]).float())
    out = runtime(enc["input_ids"], enc["attention_mask"], return_router_stats=True)
    assert torch.isfinite(out.logits).all() and out.logits.shape[:2] == enc["input_ids"].shape


def test_fused_model_is_causal_with_a_bridged_expert(tiny_folders):
    a, g = str(tiny_folders["llama"]), str(tiny_folders["gpt2_char"])
    config = {"models": [{"name": "a", "path": a}, {"name": "g", "path": g}], "layers": [[["a", 0], ["g", 0]]],
              "retokenize": True, "router": {"top_k": None}}
    runtime = MoLRuntime(config)
    full = runtime.tokenizer(["the big cat runs"], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        whole = runtime(full).logits
        prefix = runtime(full[:, :2]).logits
    assert torch.allclose(whole[:, :2], prefix, atol=1e-5)


def test_runtime_links_attend_to_a_model_of_another_width_and_tokenizer(tiny_folders):
    a, g = str(tiny_folders["llama"]), str(tiny_folders["gpt2_char"])
    base = {"models": [{"name": "a", "path": a}, {"name": "g", "path": g}], "layers": [[["a", 0]], [["a", 1]]]}
    linked = MoLRuntime({**base, "links": [{"after_layer": 0, "model": "g", "layer": 1}]})
    plain = MoLRuntime({**base, "models": base["models"][:1]})
    assert linked.retokenized == {"g"} and linked.config.fingerprint() != plain.config.fingerprint()
    enc = linked.tokenizer(["the cat sat", "a dog"], padding=True, return_tensors="pt")
    with torch.no_grad():
        before = linked(enc["input_ids"], enc["attention_mask"]).logits
        assert torch.equal(before, plain(enc["input_ids"], enc["attention_mask"]).logits)  # gate 0: identity
        linked.links[0].gate.fill_(1.0)
        after = linked(enc["input_ids"], enc["attention_mask"]).logits
    assert not torch.allclose(before, after)
    assert any(p is linked.links[0].gate for p in linked.trainable_parameters()["adapters"])
    with pytest.raises(CompositionError, match=r"expert 'g' has 2 layers.*layer 4 is out of range"):
        MoLRuntime({**base, "links": [{"after_layer": 0, "model": "g", "layer": 4}]})
    with pytest.raises(ConfigError, match="after_layer 5 is not a fused layer"):
        MoLRuntime({**base, "links": [{"after_layer": 5, "model": "g", "layer": 0}]})
