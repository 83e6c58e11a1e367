"""CALM's key-value arithmetic toy at small scale (goal: composition >= 80%, each model alone <= 10%).

- augmenting model: a 2-layer Llama trained from scratch on "kI = nV" (500 keys, values 0..9);
- anchor model: a 4-layer Llama trained from scratch on "nA + nB = nC" (arithmetic over numbers);
- composition: both frozen, the anchor's layer 0 attends (cross-attention fusion units, gated,
  starting as the identity) to the augmenting model's last layer; only the units train,
  on "kI + kJ = n(vI+vJ)" with keys from 20% of the keys; accuracy on pairs of held-out keys.

The anchor never saw a key, so its key embeddings are untrained random vectors; they are set to
one shared vector (every key reads as the same unknown token to the anchor), so that the anchor
side carries no key identity the units could memorize.

Why an earlier version plateaued at 64.3% (100 keys): the units learn a map from "the augmenting
model's representation of value v" to "the anchor's number v" only for values that occur among
the training keys. With 100 keys, the random 20-key training split held no key of value 8, so the
18.75% of held-out keys with value 8 could never be answered, and a pair of held-out keys was
answerable only if neither had value 8: 0.8125^2 = 66.0%, the ceiling it reached (64.3%). A linear
probe on the augmenting model's hidden states, fitted on the 20 training keys, also stops at 81.2%
of held-out keys at every layer. CALM's key-value task has far more keys than values, so every
value occurs among its training keys; here 500 keys (100 training keys) do the same, and the
benchmark records the ceiling the split allows (``answerable_held_out_pairs``).

Deviation from CALM, stated: the augmenting model reads each key in its own training format
("kI =", once per key, as two linked inputs) instead of the anchor's sequence; CALM runs both
models on one sequence. All models share one vocabulary.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_file import write_result  # noqa: E402

from graftkit import zoo  # noqa: E402
from graftkit.compose.fusion import Link, LinkedModel  # noqa: E402

KEYS, MAXV = 500, 9
BATCH = 256
LINK_LAYERS = (0,)  # anchor layers that read the augmenting model (100-key runs: layers 0 and 1 gave 63.8%, layer 0 64.3%)
TRAIN_FRACTION = 0.2
SEEDS = (0, 1, 2)
# vocabulary: 0 pad, 1 '=', 2 '+', 3.. numbers n0..n18, then keys
EQ, PLUS, N0 = 1, 2, 3
K0 = N0 + 2 * MAXV + 1
VOCAB = K0 + KEYS


def num(v: int) -> int:
    return N0 + v


def key(i: int) -> int:
    return K0 + i


def model(layers: int, seed: int):
    return zoo.tiny("llama", seed=seed, vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=layers,
                    num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=16).train()


def train_lm(net, batches, steps: int, lr: float, answer_pos: int, full: torch.Tensor, min_steps: int = 0) -> int:
    """Cross-entropy on the answer token only; stops early (after ``min_steps``) once ``full`` (the whole task) is solved."""
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.0)
    for step in range(steps):
        x = batches()
        logits = net(input_ids=x[:, :answer_pos]).logits[:, -1]
        loss = F.cross_entropy(logits, x[:, answer_pos])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step >= min_steps and step % 25 == 24 and accuracy(lambda y: net(input_ids=y).logits[:, -1], full, answer_pos) == 1.0:
            break
    net.eval()
    return step + 1


def accuracy(predict, data: torch.Tensor, answer_pos: int) -> float:
    with torch.no_grad():
        pred = predict(data[:, :answer_pos]).argmax(-1)
    return float((pred == data[:, answer_pos]).float().mean())


def run_seed(seed: int) -> dict:
    """One full run (values, split, both experts, units) from ``seed``; seed 0 is the run the docs quote first."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    values = [rng.randint(0, MAXV) for _ in range(KEYS)]
    keys = list(range(KEYS))
    rng.shuffle(keys)
    n_train = int(TRAIN_FRACTION * KEYS)
    train_keys, test_keys = keys[:n_train], keys[n_train:]
    start = time.perf_counter()

    # augmenting model: key -> value, all keys
    aug = model(2, seed=1 + 10 * seed)
    kv = torch.tensor([[key(i), EQ, num(values[i])] for i in range(KEYS)])
    aug_steps = train_lm(aug, lambda: kv[torch.randint(0, KEYS, (BATCH,))], steps=4000, lr=3e-3, answer_pos=2, full=kv,
                         min_steps=300)  # past 100%: well separated values
    aug_kv_acc = accuracy(lambda x: aug(input_ids=x).logits[:, -1], kv, 2)

    # anchor: arithmetic over numbers
    anchor = model(4, seed=2 + 10 * seed)
    sums = torch.tensor([[num(a), PLUS, num(b), EQ, num(a + b)] for a in range(MAXV + 1) for b in range(MAXV + 1)])
    anchor_steps = train_lm(anchor, lambda: sums[torch.randint(0, len(sums), (BATCH,))], steps=3000, lr=3e-3,
                            answer_pos=4, full=sums)
    anchor_sum_acc = accuracy(lambda x: anchor(input_ids=x).logits[:, -1], sums, 4)
    with torch.no_grad():  # keys are unknown to the anchor: one shared (untrained) embedding for all of them
        emb = anchor.get_input_embeddings().weight
        emb[K0:] = emb[K0:].mean(0)
    print(f"experts: kv {aug_kv_acc:.3f} after {aug_steps} steps, arithmetic {anchor_sum_acc:.3f} after {anchor_steps} steps", flush=True)
    t_experts = time.perf_counter() - start

    def composed(pool: list[int], n: int, seed: int) -> torch.Tensor:
        g = random.Random(seed)
        rows = []
        for _ in range(n):
            i, j = g.choice(pool), g.choice(pool)
            rows.append([key(i), PLUS, key(j), EQ, num(values[i] + values[j])])
        return torch.tensor(rows)

    seen_values = {values[i] for i in train_keys}
    answerable = sum(values[i] in seen_values for i in test_keys) / len(test_keys)
    train_set = composed(train_keys, 8000, 1 + 10 * seed)
    test_set = composed(test_keys, 2000, 2 + 10 * seed)

    anchor_alone = accuracy(lambda x: anchor(input_ids=x).logits[:, -1], test_set, 4)
    aug_alone = accuracy(lambda x: aug(input_ids=x).logits[:, -1], test_set, 4)

    links = [Link(layer, other, 1, "cross_attention", (("heads", 4),)) for layer in LINK_LAYERS for other in ("key_a", "key_b")]
    linked = LinkedModel(anchor, {"key_a": aug, "key_b": aug}, links)

    def run(x: torch.Tensor) -> torch.Tensor:
        eq = torch.full((x.shape[0], 1), EQ)
        other = {"key_a": (torch.cat([x[:, :1], eq], 1), None), "key_b": (torch.cat([x[:, 2:3], eq], 1), None)}
        return linked(x, other_inputs=other).logits[:, -1]

    opt = torch.optim.AdamW(linked.parameters(), lr=2e-3, weight_decay=0.01)
    max_steps, steps = 2000, 0
    t0 = time.perf_counter()
    linked.train()
    for step in range(max_steps):
        batch = train_set[torch.randint(0, len(train_set), (BATCH,))]
        loss = F.cross_entropy(run(batch[:, :4]), batch[:, 4])
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps = step + 1
        if step % 50 == 49:
            linked.eval()
            train_acc = accuracy(run, train_set[:500], 4)
            linked.train()
            print(f"fusion step {steps}: training-keys accuracy {train_acc:.3f}", flush=True)
            if train_acc >= 0.95:
                break
    linked.eval()
    t_units = time.perf_counter() - t0
    comp_test = accuracy(run, test_set, 4)
    comp_train = accuracy(run, train_set[:2000], 4)
    print(f"seed {seed}: held-out composed {comp_test:.3f}, anchor alone {anchor_alone:.3f}, augmenting alone {aug_alone:.3f}",
          flush=True)
    return {
        "seed": seed, "values_among_training_keys": sorted(seen_values), "answerable_held_out_pairs": answerable ** 2,
        "augmenting_key_value_accuracy": aug_kv_acc, "anchor_arithmetic_accuracy": anchor_sum_acc,
        "held_out_keys": {"anchor_alone": anchor_alone, "augmenting_alone": aug_alone, "composed": comp_test},
        "training_keys_composed": comp_train, "fusion_steps": steps, "augmenting_steps": aug_steps,
        "anchor_steps": anchor_steps, "trainable_params": sum(p.numel() for p in linked.parameters()),
        "gates": linked.gates(), "seconds": {"experts": round(t_experts, 1), "fusion_units": round(t_units, 1)},
    }


def main() -> None:
    torch.set_num_threads(1)
    runs = [run_seed(seed) for seed in SEEDS]
    worst = {k: max(r["held_out_keys"][k] for r in runs) for k in ("anchor_alone", "augmenting_alone")}
    composed = [r["held_out_keys"]["composed"] for r in runs]
    mean = sum(composed) / len(composed)
    goal_met = min(composed) >= 0.8 and worst["anchor_alone"] <= 0.1 and worst["augmenting_alone"] <= 0.1
    experts_ok = all(r["augmenting_key_value_accuracy"] == 1.0 and r["anchor_arithmetic_accuracy"] == 1.0 for r in runs)
    seconds = sum(sum(r["seconds"].values()) for r in runs)
    payload = {
        "keys": KEYS, "train_keys": int(TRAIN_FRACTION * KEYS), "values": f"0..{MAXV}", "seeds": list(SEEDS),
        "batch": BATCH, "link_layers": list(LINK_LAYERS),
        "held_out_composed": {"mean": mean, "min": min(composed), "max": max(composed)},
        "held_out_alone_worst": worst, "goal_met": goal_met, "experts_solve_their_tasks": experts_ok, "runs": runs,
        "previous_100_key_run": {"composed": 0.6435, "answerable_held_out_pairs": 0.66,
                                 "why": "no training key had value 8 (random 20-key split), so 18.75% of held-out keys "
                                        "had a value the units never mapped"},
        "anchor_calm": {"composed": 0.843, "augmenting": 0.007, "anchor": 0.0},
    }
    line = (f"CALM key-value arithmetic ({KEYS} keys, units trained on 20%, {len(SEEDS)} seeds): held-out keys composed "
            f"{mean:.1%} mean (min {min(composed):.1%}) vs anchor alone <= {worst['anchor_alone']:.1%}, augmenting alone "
            f"<= {worst['augmenting_alone']:.1%} (CALM: 84.3 / 0.0 / 0.7); goal >= 80% with each <= 10%: "
            f"{'met' if goal_met else 'NOT met'}; experts solve their own tasks (100%): {'yes' if experts_ok else 'no'}; "
            f"{seconds:.0f}s CPU")
    write_result("compose_calm_kv", payload, line)
    print(line)


if __name__ == "__main__":
    main()
