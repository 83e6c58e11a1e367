"""Zip-merging two models trained on disjoint halves of Fashion-MNIST's classes (ZipIt! setting).

Model A learns classes 0-4, model B classes 5-9 (each a 5-way head; MLP 784-512-512-512,
different seeds). The joint 10-way prediction of every merged model is the argmax over
A's logits followed by B's. Compared: the ensemble (both models run in full), the
permutation merge (Re-Basin activation matching, trunk averaged, heads kept), ZipIt
(greedy within- and across-model merging, alpha 0.3, beta 0.5) with all hidden layers
merged and partially (first 1 or 2 layers), each with and without REPAIR. Goal (issue
5): zip within 10 points of the ensemble. Anchor (ZipIt, CIFAR-10 5+5, ResNet-20x4):
Re-Basin 46.2, ZipIt 79.1, partial 83.8, ensemble 87.4.

Run: nice -n 10 timeout 1800 .venv/bin/python benchmarks/zip.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from align_common import image_data, mlp, train  # noqa: E402
from results_file import write_result  # noqa: E402

from graftkit.align.zip import zip_merge  # noqa: E402

WIDTHS = [784, 512, 512, 512, 5]
TRAIN_PER_MODEL = 6000
EPOCHS = 5


class Ensemble(nn.Module):
    def __init__(self, a: nn.Module, b: nn.Module):
        super().__init__()
        self.a, self.b = a, b

    def forward(self, x):
        return torch.cat([self.a(x), self.b(x)], dim=-1)


@torch.no_grad()
def joint_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    pred = torch.cat([model(x[i:i + 1000]).argmax(1) for i in range(0, len(x), 1000)])
    return float((pred == y).float().mean())


def main() -> None:
    torch.set_num_threads(1)
    x, y, xt, yt = image_data("fashion_mnist")
    first, second = y < 5, y >= 5
    xa, ya = x[first][:TRAIN_PER_MODEL], y[first][:TRAIN_PER_MODEL]
    xb, yb = x[second][:TRAIN_PER_MODEL], y[second][:TRAIN_PER_MODEL] - 5
    t0 = time.perf_counter()
    a = train(mlp(WIDTHS, 0), xa, ya, EPOCHS, seed=0)
    b = train(mlp(WIDTHS, 1), xb, yb, EPOCHS, seed=1)
    train_s = time.perf_counter() - t0
    # probe: 1000 images of each task, as ZipIt computes its correlations on both tasks' data
    probe = [torch.cat([xa[:1000], xb[:1000]])[i:i + 500] for i in range(0, 2000, 500)]
    xt, yt = xt[:5000], yt[:5000]  # the first 5000 test images (2 shared cores)
    rows: dict[str, float] = {"ensemble": joint_accuracy(Ensemble(a, b), xt, yt)}
    share: dict[str, dict] = {}
    seconds: dict[str, float] = {}
    variants = [("permutation merge", dict(matcher="permute")), ("zip (all layers)", dict()),
                ("zip partial (1 layer)", dict(stop_at=1)), ("zip partial (2 layers)", dict(stop_at=2))]
    for label, kwargs in variants:
        for fix in (False, True):
            t = time.perf_counter()
            result = zip_merge(a, b, probe, repair_batches=probe if fix else None, **kwargs)
            name = label + (" + REPAIR" if fix else "")
            seconds[name] = round(time.perf_counter() - t, 2)
            rows[name] = joint_accuracy(result.model, xt, yt)
            share[name] = result.cross_model_share()
    own_a = joint_accuracy(a, xt[yt < 5], yt[yt < 5])
    own_b = joint_accuracy(b, xt[yt >= 5], yt[yt >= 5] - 5)
    ens = rows["ensemble"]
    best_zip = max((k for k in rows if k.startswith("zip (all")), key=lambda k: rows[k])
    result_json = {
        "setup": f"MLP {'-'.join(map(str, WIDTHS))} per task, {TRAIN_PER_MODEL} images each, {EPOCHS} epochs; "
                 "joint 10-way accuracy on the first 5000 test images",
        "train_seconds": round(train_s, 1), "per_task_accuracy": {"A on 0-4": round(own_a, 4), "B on 5-9": round(own_b, 4)},
        "joint_accuracy": {k: round(v, 4) for k, v in rows.items()}, "cross_model_merged_share": share,
        "merge_seconds": seconds,
        "goals": {"zip_within_10_points_of_ensemble": ens - rows[best_zip] <= 0.10, "zip_variant": best_zip},
    }
    line = (f"Fashion-MNIST 5+5 joint accuracy: ensemble {100 * ens:.1f}%, permutation merge "
            f"{100 * rows['permutation merge + REPAIR']:.1f}% (+REPAIR), zip all layers {100 * rows['zip (all layers)']:.1f}% / "
            f"{100 * rows['zip (all layers) + REPAIR']:.1f}% (+REPAIR), partial 1 layer "
            f"{100 * rows['zip partial (1 layer) + REPAIR']:.1f}% (+REPAIR); best zip {100 * (ens - rows[best_zip]):.1f} points "
            f"below the ensemble (goal <= 10)")
    write_result("zip", result_json, line)
    print(result_json["joint_accuracy"])
    print(line)


if __name__ == "__main__":
    main()
