"""Linear interpolation between two models and the loss barrier along the path.

The barrier (Frankle et al. 2020; Git Re-Basin) is the largest excess loss along the
straight line between two models: max over alpha of L((1-alpha) A + alpha B) minus
the mean of L(A) and L(B). Near zero means the two models sit in one linearly
connected basin, which is what alignment is for.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from graftkit.errors import AlignmentError


def lerp_params(
    params_a: dict[str, torch.Tensor], params_b: dict[str, torch.Tensor], alpha: float
) -> dict[str, torch.Tensor]:
    """(1 - alpha) A + alpha B for every floating-point tensor (others taken from A)."""
    missing = [k for k in params_a if k not in params_b]
    if missing:
        raise AlignmentError(f"model B lacks tensor {missing[0]}", hint="interpolate models of one architecture")
    out = {}
    for name, a in params_a.items():
        b = params_b[name]
        if a.shape != b.shape:
            raise AlignmentError(
                f"tensor {name}: shapes {tuple(a.shape)} and {tuple(b.shape)} differ",
                hint="interpolation needs equal shapes; use OT fusion for different widths",
            )
        out[name] = torch.lerp(a.float(), b.float(), alpha).to(a.dtype) if a.is_floating_point() else a
    return out


def interpolate_model(model_a: nn.Module, model_b: nn.Module, alpha: float) -> nn.Module:
    """A copy of ``model_a`` holding the interpolated weights (and buffers)."""
    out = copy.deepcopy(model_a)
    out.load_state_dict(lerp_params(model_a.state_dict(), model_b.state_dict(), alpha))
    return out


@torch.no_grad()
def evaluate_classifier(model: nn.Module, batches: Iterable[tuple[Any, torch.Tensor]]) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of a classifier over (inputs, labels) batches.

    Inputs may be a tensor or a dict of tensors (tokenizer output); the output may be a
    tensor of logits or an object with ``.logits``.
    """
    model.eval()
    loss_sum, correct, n = 0.0, 0, 0
    for inputs, labels in batches:
        out = model(**inputs) if isinstance(inputs, dict) else model(inputs)
        logits = getattr(out, "logits", out)
        if not torch.isfinite(logits).all():
            raise AlignmentError("the model produced NaN or Inf logits", hint="check the weights being evaluated")
        loss_sum += float(nn.functional.cross_entropy(logits.float(), labels, reduction="sum"))
        correct += int((logits.argmax(-1) == labels).sum())
        n += labels.shape[0]
    if n == 0:
        raise AlignmentError("no evaluation data", hint="pass at least one (inputs, labels) batch")
    return loss_sum / n, correct / n


def loss_barrier(losses: list[float]) -> float:
    """max over the path of L(alpha) - mean(L(A), L(B)); ``losses`` run from A (first) to B (last)."""
    return max(losses) - 0.5 * (losses[0] + losses[-1])


@dataclass
class Curve:
    """Loss and accuracy along the path from A (alpha 0) to B (alpha 1)."""

    alphas: list[float]
    losses: list[float]
    accuracies: list[float]
    label: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def barrier(self) -> float:
        return loss_barrier(self.losses)

    @property
    def midpoint(self) -> tuple[float, float]:
        """(loss, accuracy) at the alpha closest to 0.5."""
        i = min(range(len(self.alphas)), key=lambda k: abs(self.alphas[k] - 0.5))
        return self.losses[i], self.accuracies[i]

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "alphas": self.alphas, "losses": self.losses,
                "accuracies": self.accuracies, "barrier": self.barrier, **self.extra}


def interpolation_curve(
    model_a: nn.Module,
    model_b: nn.Module,
    evaluate: Callable[[nn.Module], tuple[float, float]],
    steps: int = 11,
    fix: Callable[[nn.Module, float], nn.Module] | None = None,
    label: str = "",
) -> Curve:
    """Evaluate ``steps`` evenly spaced models from A to B.

    ``evaluate(model) -> (loss, accuracy)``; ``fix(model, alpha)`` is applied to each
    interpolated model first (REPAIR, BatchNorm reset) and returns the model to score.
    """
    if steps < 2:
        raise AlignmentError(f"steps must be at least 2, got {steps}", hint="use e.g. --steps 11")
    from graftkit.progress import track

    alphas = [i / (steps - 1) for i in range(steps)]
    losses, accs = [], []
    for alpha in track(alphas, f"interpolating {label}".strip()):
        model = interpolate_model(model_a, model_b, alpha)
        if fix is not None and 0.0 < alpha < 1.0:
            model = fix(model, alpha)
        loss, acc = evaluate(model)
        losses.append(loss)
        accs.append(acc)
    return Curve(alphas, losses, accs, label)


def plot_curves(curves: list[Curve], path: str | Path, title: str = "") -> Path:
    """A PNG with test loss and accuracy against alpha, one line per curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for c in curves:
        name = f"{c.label} (barrier {c.barrier:.3f})" if c.label else f"barrier {c.barrier:.3f}"
        ax_loss.plot(c.alphas, c.losses, marker="o", label=name)
        ax_acc.plot(c.alphas, c.accuracies, marker="o", label=c.label or None)
    ax_loss.set_xlabel("alpha (0 = A, 1 = B)")
    ax_loss.set_ylabel("loss")
    ax_acc.set_xlabel("alpha (0 = A, 1 = B)")
    ax_acc.set_ylabel("accuracy")
    ax_loss.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
