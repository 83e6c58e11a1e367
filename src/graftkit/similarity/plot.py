"""Heatmap PNG of a layer-by-layer similarity matrix (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from graftkit.similarity.matrix import LayerSimilarity


def heatmap(result: LayerSimilarity, path: str | Path, *, annotate: bool | None = None) -> Path:
    """Rows: layers of model A (input side at the bottom); columns: layers of model B.

    Values are written into the cells when both sides have at most 16 layers
    (``annotate`` overrides). Returns the written path.
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    matrix = result.matrix.double().numpy()
    rows, cols = matrix.shape
    if annotate is None:
        annotate = rows <= 16 and cols <= 16
    width = min(14.0, 2.5 + 0.55 * cols)
    height = min(12.0, 2.0 + 0.45 * rows)
    fig, ax = plt.subplots(figsize=(width, height), dpi=110)
    low = min(0.0, float(matrix.min()))
    image = ax.imshow(matrix, origin="lower", cmap="magma", vmin=low, vmax=1.0, aspect="auto")
    ax.set_xticks(range(cols), result.layers_b, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(rows), result.layers_a, fontsize=8)
    ax.set_xlabel(result.model_b)
    ax.set_ylabel(result.model_a)
    ax.set_title(f"{result.metric}, {result.pooling} pooling, n={result.n}", fontsize=10)
    if annotate:
        for i in range(rows):
            for j in range(cols):
                value = matrix[i, j]
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                        color="black" if value > 0.6 else "white")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
