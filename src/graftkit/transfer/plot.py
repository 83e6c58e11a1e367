"""PNG of fingerprint similarity across models and capabilities (a labelled heat map)."""

from __future__ import annotations

from pathlib import Path

import torch

from graftkit.errors import TransferError


def similarity_matrix(fps: torch.Tensor, metric: str = "cosine") -> torch.Tensor:
    from graftkit.transfer.extractor import similarity

    n = len(fps)
    return torch.tensor([[similarity(fps[i], fps[j], metric) for j in range(n)] for i in range(n)])


def plot_similarity(fps: torch.Tensor, labels: list[str], path: str | Path, metric: str = "cosine",
                    title: str = "capability fingerprints") -> Path:
    """Write a heat map of pairwise fingerprint similarity with its values in the cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if len(labels) != len(fps):
        raise TransferError(f"{len(labels)} labels for {len(fps)} fingerprints", hint="one label per fingerprint")
    m = similarity_matrix(fps, metric).numpy()
    size = max(4.0, 0.6 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    im = ax.imshow(m, cmap="viridis", vmin=min(0.0, float(m.min())), vmax=1.0)
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=7, color="w" if m[i, j] < 0.6 else "k")
    ax.set_title(f"{title} ({metric})")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
