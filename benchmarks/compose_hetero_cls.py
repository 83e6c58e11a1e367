"""Heterogeneous classification: MiniLM-L6 (384 wide) and mpnet (768 wide, another tokenizer) layers fused.

The fused model takes MiniLM's embeddings and layers 0-3, then two fused layers that mix
MiniLM's layers 4/5 with mpnet's layers 10/11 (linear adapters 384 <-> 768, pooled router,
re-tokenization through the text since the tokenizers differ), plus a linear task head.
Baselines: each expert alone, frozen, with a linear head on its mean-pooled last hidden
state. Everyone trains for the same number of steps on the same N_TRAIN examples per task
(SST-2, AG News) and is scored on N_EVAL validation examples by graftkit.data.evaluate.
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
from graftkit.data.evaluate import classification_accuracy, pool  # noqa: E402

N_TRAIN = int(sys.argv[1]) if len(sys.argv) > 1 else 800
N_EVAL = int(sys.argv[2]) if len(sys.argv) > 2 else 400
BATCH, EPOCHS, MAX_LEN = 16, 1, 64
DRY = "--dry" in sys.argv  # a smoke run: nothing written


def sample(split, n, seed):
    idx = sorted(random.Random(seed).sample(range(len(split)), min(n, len(split))))
    return split.subset(idx)


def expert_alone(folder: Path, train, valid, num_labels: int) -> float:
    """Frozen encoder + linear head trained on its mean-pooled features with the same steps and batch."""
    from transformers import AutoModel, AutoTokenizer

    tok, enc = AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder).eval()
    head = torch.nn.Linear(enc.config.hidden_size, num_labels)
    opt = torch.optim.AdamW(head.parameters(), lr=1e-3)
    order = list(range(len(train.texts)))
    random.Random(0).shuffle(order)
    for _ in range(EPOCHS):
        for i in range(0, len(order), BATCH):
            idx = order[i : i + BATCH]
            batch = tok([train.texts[j] for j in idx], padding=True, truncation=True, max_length=MAX_LEN, return_tensors="pt")
            with torch.no_grad():
                feats = pool(enc(**batch), batch["attention_mask"], "mean")
            loss = torch.nn.functional.cross_entropy(head(feats), torch.tensor([train.labels[j] for j in idx]))
            opt.zero_grad(); loss.backward(); opt.step()
    return classification_accuracy(enc, valid, tok, head=head, pooling="mean", max_length=MAX_LEN).accuracy


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)  # thread hand-offs dominate on the shared, loaded machine
    minilm, mpnet = zoo.get("all-MiniLM-L6-v2"), zoo.get("all-mpnet-base-v2")
    config = {"models": [{"name": "minilm", "path": str(minilm)}, {"name": "mpnet", "path": str(mpnet)}],
              "layers": [[["minilm", i]] for i in range(4)] + [[["minilm", 4], ["mpnet", 10]], [["minilm", 5], ["mpnet", 11]]],
              "adapter_type": "linear", "router_type": "pooled", "retokenize": True}
    results = {}
    for task in ("sst2", "agnews"):
        ds = load_dataset(task)
        train, valid = sample(ds.train, N_TRAIN, 0), sample(ds.validation, N_EVAL, 1)
        n_labels = len(ds.label_names)
        t0 = time.perf_counter()
        alone = {"minilm": expert_alone(minilm, train, valid, n_labels), "mpnet": expert_alone(mpnet, train, valid, n_labels)}
        t1 = time.perf_counter()
        runtime = MoLRuntime(config)
        trainer = MoLTrainer(runtime, TrainingConfig(adapter_lr=3e-4, router_lr=1e-3, head_lr=1e-3, batch_size=BATCH,
                                                     epochs=EPOCHS, max_length=MAX_LEN), num_labels=n_labels)
        trainer.train_classification(train)
        fused = trainer.evaluate(valid, max_length=MAX_LEN).accuracy
        with torch.no_grad():
            enc = runtime.tokenizer(valid.texts[:32], padding=True, truncation=True, max_length=MAX_LEN, return_tensors="pt")
            stats = runtime(enc["input_ids"], enc["attention_mask"], return_router_stats=True).router_stats
        results[task] = {"minilm_alone": alone["minilm"], "mpnet_alone": alone["mpnet"], "fused": fused,
                         "router_mean_prob": [s["mean_prob"] for s in stats if len(s["experts"]) > 1],
                         "seconds": {"experts_alone": round(t1 - t0, 1), "fused": round(time.perf_counter() - t1, 1)}}
        print(task, results[task], flush=True)
    line = "; ".join(f"{t}: fused {r['fused']:.1%} vs MiniLM alone {r['minilm_alone']:.1%}, mpnet alone {r['mpnet_alone']:.1%}"
                     for t, r in results.items())
    line += (f" ({N_TRAIN} train / {N_EVAL} validation examples, {EPOCHS} epoch, same steps for all; baselines train a "
             f"linear head on the frozen expert, the fused model also trains its adapters and router, so it has more "
             f"trainable parameters; no goal set)")
    if DRY:
        print("dry run:", line)
        return
    write_result("compose_hetero_cls", {"n_train": N_TRAIN, "n_eval": N_EVAL, "batch": BATCH, "epochs": EPOCHS,
                                        "max_length": MAX_LEN, "config": config, "results": results}, line)
    print(line)


if __name__ == "__main__":
    main()
