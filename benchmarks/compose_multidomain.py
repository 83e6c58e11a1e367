"""Multi-domain composition: two SmolLM2-135M domain experts fused by token-level routers.

- experts: SmolLM2-135M-Instruct with its last TUNED layers (24..29) fine-tuned, one copy on
  tiny-shakespeare (train split), one on WikiText-2 (its valid.txt: this data folder ships no
  train.txt); embeddings, final norm, LM head and layers 0..23 stay the base model's, so both
  experts share them exactly. Experts are cached under ~/.cache/graftkit/bench/compose_multidomain/.
- fused model (MoLRuntime): layers 0..23 from one expert (identical in both), then six fused
  layers, each the two experts' layer i behind identity bottleneck adapters and a dense
  token-level router (zero-initialized, so it starts at 50/50). Only the routers train
  (MoLTrainer.train_lm, next-token loss on windows of both domains' training text); the
  adapters stay the identity, so a token routed entirely to one expert gets that expert's
  computation exactly.
- measured on held-out text (tiny-shakespeare test split, WikiText-2 test.txt): perplexity of
  the base, each expert and the fused model on each domain; routing accuracy = the share of
  (token, fused layer) decisions whose larger router weight goes to that domain's expert.

Goal: each domain's fused perplexity <= the better expert's * 1.05, routing accuracy >= 90%.
Scale (CPU, 1 thread): see the constants; ``--smoke`` runs every step at toy size and writes nothing.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_file import write_result  # noqa: E402

from graftkit import zoo  # noqa: E402
from graftkit.compose import MoLRuntime, MoLTrainer, TrainingConfig  # noqa: E402
from graftkit.data import load_dataset  # noqa: E402
from graftkit.data.evaluate import perplexity  # noqa: E402
from graftkit.io.atomic import atomic_directory  # noqa: E402

SMOKE = "--smoke" in sys.argv
BASE = "SmolLM2-135M-Instruct"
TUNED = list(range(24, 30))
SEQ = 128
EXPERT_STEPS, EXPERT_BATCH, EXPERT_LR = (2, 2, 3e-4) if SMOKE else (60, 4, 3e-4)
ROUTER_WINDOWS, ROUTER_BATCH, ROUTER_LR = (4, 2, 1e-2) if SMOKE else (120, 4, 1e-2)  # windows per domain
EVAL_TOKENS, EVAL_WINDOW = (256, 128) if SMOKE else (3072, 256)
ROUTE_TOKENS = 256 if SMOKE else 2048
CACHE = Path.home() / ".cache" / "graftkit" / "bench" / "compose_multidomain"


def domain_texts() -> dict[str, tuple[str, str]]:
    """(training text, held-out text) per domain."""
    shk, wiki = load_dataset("tiny_shakespeare"), load_dataset("wikitext2_raw")
    return {"shakespeare": (shk.train.text or "", shk.test.text or ""), "wikitext": (wiki.validation.text or "", wiki.test.text or "")}


def fine_tune(domain: str, ids: torch.Tensor) -> Path:
    """The domain expert (cached): only layers TUNED train, so everything else stays the base model's."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = CACHE / f"{domain}-layers{TUNED[0]}-{TUNED[-1]}-steps{EXPERT_STEPS}-batch{EXPERT_BATCH}-len{SEQ}-seed0"
    if out.exists() and not SMOKE:
        return out
    torch.manual_seed(0)
    base = zoo.get(BASE)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    for p in model.parameters():
        p.requires_grad_(False)
    trainable = [p for i in TUNED for p in model.model.layers[i].parameters()]
    for p in trainable:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(trainable, lr=EXPERT_LR, weight_decay=0.0)
    g = torch.Generator().manual_seed(0)
    model.train()
    t0 = time.perf_counter()
    for step in range(EXPERT_STEPS):
        starts = torch.randint(0, ids.numel() - SEQ, (EXPERT_BATCH,), generator=g).tolist()
        x = torch.stack([ids[a : a + SEQ] for a in starts])
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 10 == 9:
            print(f"{domain} expert step {step + 1}: loss {loss.item():.3f} ({time.perf_counter() - t0:.0f}s)", flush=True)
    model.eval()
    if SMOKE:
        out = Path(f"/tmp/graftkit-smoke-{domain}")
    with atomic_directory(out, overwrite=True) as tmp:
        model.save_pretrained(tmp)
        AutoTokenizer.from_pretrained(base).save_pretrained(tmp)
    return out


def router_probs(runtime: MoLRuntime, ids: torch.Tensor) -> torch.Tensor:
    """Router probabilities (tokens, fused layers, experts) over consecutive SEQ-token windows of ``ids``."""
    fused = [layer for layer in runtime.layers if len(layer.experts) == 2]
    captured: list[torch.Tensor] = []
    hooks = [layer.router.register_forward_hook(lambda m, a, out: captured.append(out.probs.detach())) for layer in fused]
    rows = []
    try:
        with torch.no_grad():
            for a in range(0, ids.numel() - SEQ + 1, SEQ):
                captured.clear()
                runtime(ids[a : a + SEQ][None])
                rows.append(torch.stack([c[0] for c in captured], 1))  # (SEQ, layers, experts)
    finally:
        for h in hooks:
            h.remove()
    return torch.cat(rows)


def main() -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    start = time.perf_counter()
    texts = domain_texts()
    tok = AutoTokenizer.from_pretrained(zoo.get(BASE))
    enc = {d: tuple(torch.tensor(tok(t, add_special_tokens=False, verbose=False)["input_ids"]) for t in pair)
           for d, pair in texts.items()}
    domains = list(texts)
    folders = {d: fine_tune(d, enc[d][0]) for d in domains}
    t_experts = time.perf_counter() - start

    def ppl(model, d: str) -> float:
        return perplexity(model, enc[d][1], window=EVAL_WINDOW, max_tokens=EVAL_TOKENS, description=f"perplexity {d}").perplexity

    results: dict[str, dict[str, float]] = {d: {} for d in domains}
    for name, folder in [("base", zoo.get(BASE)), *[(f"{d}_expert", folders[d]) for d in domains]]:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
        for d in domains:
            results[d][name] = ppl(model, d)
        print(name, {d: round(results[d][name], 3) for d in domains}, flush=True)
        del model

    config = {"models": [{"name": d, "path": str(folders[d])} for d in domains],
              "layers": [[[domains[0], i]] for i in range(TUNED[0])] + [[[d, i] for d in domains] for i in TUNED],
              "adapter_type": "bottleneck", "adapter": {"rank": 8}, "router_type": "token", "router": {"top_k": None},
              "entropy_weight": 0.0, "balance_weight": 0.0}
    runtime = MoLRuntime(config)
    for layer in runtime.layers:  # adapters stay the identity: only the routers learn
        for p in [*layer.adapters_in.parameters(), *layer.adapters_out.parameters()]:
            p.requires_grad_(False)
    g = random.Random(0)
    windows = []
    for d in domains:
        ids = enc[d][0]
        for _ in range(ROUTER_WINDOWS):
            a = g.randrange(0, ids.numel() - SEQ)
            windows.append(tok.decode(ids[a : a + SEQ]))
    trainer = MoLTrainer(runtime, TrainingConfig(adapter_lr=0.0, router_lr=ROUTER_LR, batch_size=ROUTER_BATCH,
                                                 max_length=SEQ, epochs=1))
    t0 = time.perf_counter()
    history = trainer.train_lm(windows, description="train routers")
    t_router = time.perf_counter() - t0
    print("router loss first/last 10:", sum(h["loss"] for h in history[:10]) / 10, sum(h["loss"] for h in history[-10:]) / 10,
          flush=True)

    routing: dict[str, dict] = {}
    for k, d in enumerate(domains):
        results[d]["fused"] = ppl(runtime, d)
        probs = router_probs(runtime, enc[d][1][:ROUTE_TOKENS])  # (tokens, layers, experts)
        right = probs.argmax(-1) == k
        routing[d] = {"accuracy": float(right.float().mean()), "per_layer": [float(x) for x in right.float().mean(0)],
                      "mean_weight_on_own_expert": float(probs[..., k].mean()), "tokens": int(probs.shape[0])}
        print(d, "fused ppl", round(results[d]["fused"], 3), "routing", routing[d], flush=True)

    per_domain = {}
    for d in domains:
        best = min(results[d][f"{e}_expert"] for e in domains)
        per_domain[d] = {**results[d], "better_expert": best, "fused_over_better": results[d]["fused"] / best}
    ppl_ok = all(r["fused_over_better"] <= 1.05 for r in per_domain.values())
    route_acc = sum(r["accuracy"] for r in routing.values()) / len(routing)
    route_ok = all(r["accuracy"] >= 0.9 for r in routing.values())
    scale = (f"SmolLM2-135M, last {len(TUNED)} layers fine-tuned {EXPERT_STEPS} steps x {EXPERT_BATCH} x {SEQ} tokens per "
             f"expert, routers trained on {2 * ROUTER_WINDOWS} windows of {SEQ} tokens, perplexity on {EVAL_TOKENS} held-out "
             f"tokens per domain, routing on {ROUTE_TOKENS}")
    payload = {
        "scale": scale, "base": BASE, "tuned_layers": TUNED, "seq": SEQ,
        "expert_training": {"steps": EXPERT_STEPS, "batch": EXPERT_BATCH, "lr": EXPERT_LR,
                            "data": {"shakespeare": "tiny_shakespeare train", "wikitext": "WikiText-2 valid.txt"}},
        "router_training": {"windows": 2 * ROUTER_WINDOWS, "batch": ROUTER_BATCH, "lr": ROUTER_LR, "steps": len(history),
                            "loss_first10": sum(h["loss"] for h in history[:10]) / 10,
                            "loss_last10": sum(h["loss"] for h in history[-10:]) / 10},
        "evaluation": {"tokens": EVAL_TOKENS, "window": EVAL_WINDOW, "stride": EVAL_WINDOW // 2,
                       "text": {"shakespeare": "tiny_shakespeare test", "wikitext": "WikiText-2 test.txt"}},
        "perplexity": per_domain, "routing": routing, "routing_accuracy_mean": route_acc,
        "goals": {"perplexity_within_5pct_of_better_expert": ppl_ok, "routing_at_least_90pct": route_ok},
        "config": config, "expert_folders": {d: str(f) for d, f in folders.items()},
        "seconds": {"experts_and_data": round(t_experts, 1), "router_training": round(t_router, 1),
                    "total": round(time.perf_counter() - start, 1)},
    }
    line = "; ".join(
        f"{d}: fused ppl {r['fused']:.2f} vs {domains[0]} expert {r[f'{domains[0]}_expert']:.2f}, {domains[1]} expert "
        f"{r[f'{domains[1]}_expert']:.2f}, base {r['base']:.2f} ({r['fused_over_better']:.3f}x the better), routing "
        f"{routing[d]['accuracy']:.1%}" for d, r in per_domain.items())
    line += (f"; goals ppl <= better expert +5%: {'met' if ppl_ok else 'NOT met'}, routing >= 90%: "
             f"{'met' if route_ok else 'NOT met'} (scale: {scale})")
    if SMOKE:
        print("smoke run:", line)
        return
    write_result("compose_multidomain", payload, line)
    print(line)


if __name__ == "__main__":
    main()
