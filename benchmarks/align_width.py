"""OT fusion across widths: a 128-wide MLP fused into a 64-wide one (OTFusion), on MNIST and digits.

MLP in-128-128-10 (wide, seed 1) and in-64-64-10 (narrow, seed 0), trained on the same
data. OT fusion carries the wide model into the narrow basis (exact EMD or Sinkhorn;
ground cost from activations or weights) and averages it with the narrow parent
(narrow_weight 0.5, OTFusion's setting) or keeps it alone (narrow_weight 0: the wide
model compressed); each with and without REPAIR. Goal (issue 5): within 3 points of the
narrow parent after REPAIR on MNIST (headline: ot_fuse's defaults, weight cost and
EMD; in a first run with shorter training the weight cost beat the activation cost on
both data sets, MNIST 88.0% vs 86.1% and digits 95.0% vs 93.6% with REPAIR; in the
recorded run the activation cost is better on MNIST). Anchor measured on digits: 94.8% one-shot, 95.4%
with REPAIR, narrow parent 98.4%.

Run: nice -n 10 timeout 1800 .venv/bin/python benchmarks/align_width.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from align_common import batches, image_data, mlp, train  # noqa: E402
from results_file import write_result  # noqa: E402

from graftkit.align.interpolate import evaluate_classifier  # noqa: E402
from graftkit.align.ot import ot_fuse  # noqa: E402

SETTINGS = {"mnist": (784, 40), "digits": (64, 150)}  # input size, epochs


def run(name: str) -> dict:
    inputs, epochs = SETTINGS[name]
    x, y, xt, yt = image_data(name)
    narrow = train(mlp([inputs, 64, 64, 10], 0), x, y, epochs, seed=0)
    wide = train(mlp([inputs, 128, 128, 10], 1), x, y, epochs, seed=1)
    test = batches(xt, yt)
    acc = lambda m: evaluate_classifier(m, test)[1]  # noqa: E731
    probe = [xx for xx, _ in batches(x[:3000], y[:3000], 500)]
    rows = {"narrow parent (64)": acc(narrow), "wide parent (128)": acc(wide)}
    timing = {}
    for cost in ("activation", "weight"):
        for exact in (True, False):
            solver = "emd" if exact else "sinkhorn"
            for nw in (0.5, 0.0):
                what = "fused with narrow" if nw else "wide alone"
                for fix in (False, True):
                    t0 = time.perf_counter()
                    out = ot_fuse(wide, narrow, probe, cost=cost, exact=exact, reg=0.01, narrow_weight=nw,
                                  repair_batches=probe if fix else None)
                    label = f"{cost} cost, {solver}, {what}{' + REPAIR' if fix else ''}"
                    timing[label] = round(time.perf_counter() - t0, 2)
                    rows[label] = acc(out.model)
    return {"train_images": len(x), "test_images": len(xt), "accuracy": {k: round(v, 4) for k, v in rows.items()},
            "seconds": timing}


def main() -> None:
    torch.set_num_threads(1)
    result = {"setup": "MLP in-128-128-10 into in-64-64-10, Adam one-cycle; uniform marginals; probe 3000 train images"}
    for name in ("mnist", "digits"):
        result[name] = run(name)
        print(name, result[name]["accuracy"], flush=True)
    m = result["mnist"]["accuracy"]
    parent = m["narrow parent (64)"]
    best_label = max((k for k in m if k.endswith("REPAIR")), key=lambda k: m[k])
    main_label = "weight cost, emd, fused with narrow + REPAIR"  # ot_fuse defaults
    result["goals"] = {"mnist_within_3_points_of_narrow_after_repair": parent - m[main_label] <= 0.03,
                       "headline": main_label, "best_repaired": best_label}
    d = result["digits"]["accuracy"]
    line = (f"MNIST 128->64 OT fusion (weight cost, EMD, averaged with narrow) {100 * m[main_label.replace(' + REPAIR', '')]:.1f}% "
            f"one-shot, {100 * m[main_label]:.1f}% + REPAIR vs narrow parent {100 * parent:.1f}% "
            f"(gap {100 * (parent - m[main_label]):.1f} points, goal <= 3); wide alone compressed + REPAIR "
            f"{100 * m['weight cost, emd, wide alone + REPAIR']:.1f}%; best activation-cost variant + REPAIR "
            f"{100 * max(v for k, v in m.items() if k.startswith('activation') and k.endswith('REPAIR')):.1f}%; digits: {100 * d[main_label.replace(' + REPAIR', '')]:.1f}% / "
            f"{100 * d[main_label]:.1f}% vs narrow {100 * d['narrow parent (64)']:.1f}% (anchor 94.8 / 95.4 vs 98.4)")
    write_result("align_width", result, line)
    print(line)


if __name__ == "__main__":
    main()
