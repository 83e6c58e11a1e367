"""Capability extractor: activations of any model on a set of texts -> a 512-D fingerprint.

UMAF's seed fixed the input width and left an untrained extractor in training mode (a
model's similarity to itself 0.916). Here the input processor makes any width fit: each
view's activations (texts x features) are normalized (L2 per text, or layer norm),
centered, and projected on their top ``components`` principal directions (signs fixed
by skewness, scaled by singular values, zero-padded below that count), so a model of
width 384 and one of 768 give the encoder the same shape. Each text is one token of a
transformer encoder without positions (the set of texts has no order), the mean of its
outputs goes through a 2-layer projection head, and the result is L2-normalized.
Training is supervised-contrastive (SupCon): random subsets of texts of views with the
same capability label are pulled together, others pushed apart. ``fingerprint`` always
runs in eval mode without gradients, so a model's similarity to itself is exactly 1.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from graftkit.errors import TransferError
from graftkit.progress import progress_bar

SETTINGS_FILE = "extractor.json"
WEIGHTS_FILE = "extractor.safetensors"


@dataclass
class ExtractorSettings:
    components: int = 64
    normalization: str = "l2"  # "l2" | "layer"
    hidden: int = 512
    layers: int = 4
    heads: int = 8
    ff: int = 2048
    dim: int = 512
    dropout: float = 0.1


class CapabilityExtractor(nn.Module):
    """Input processor + transformer encoder + projection head."""

    def __init__(self, settings: ExtractorSettings | None = None):
        super().__init__()
        s = self.settings = settings or ExtractorSettings()
        if s.normalization not in ("l2", "layer"):
            raise TransferError(f"normalization {s.normalization!r} is unknown", hint="choose 'l2' or 'layer'")
        if s.hidden % s.heads:
            raise TransferError(f"hidden {s.hidden} is not divisible by heads {s.heads}", hint="e.g. hidden 512 with 8 heads")
        self.inp = nn.Linear(s.components, s.hidden)
        layer = nn.TransformerEncoderLayer(s.hidden, s.heads, s.ff, s.dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, s.layers, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.Linear(s.hidden, s.hidden), nn.GELU(), nn.Linear(s.hidden, s.dim))
        self.eval()

    def process(self, acts: torch.Tensor) -> torch.Tensor:
        """(texts, any width) -> (texts, components): normalized, centered, principal coordinates."""
        if acts.dim() != 2 or acts.shape[0] < 2:
            raise TransferError(f"activations must be (texts, features) with at least 2 texts, got {tuple(acts.shape)}",
                                hint="pool each text's activations to one vector first")
        x = acts.float()
        if not torch.isfinite(x).all():
            raise TransferError("activations contain NaN or Inf", hint="check the model's weights and inputs")
        x = nn.functional.normalize(x, dim=1) if self.settings.normalization == "l2" else nn.functional.layer_norm(x, x.shape[1:])
        x = x - x.mean(0)
        u, s, _ = torch.linalg.svd(x, full_matrices=False)
        k = min(self.settings.components, s.numel())
        coords = u[:, :k] * (s[:k] / s.pow(2).sum().sqrt().clamp_min(1e-12)) * x.shape[0] ** 0.5
        coords = coords * torch.sign(coords.pow(3).sum(0) + 1e-12)  # sign of each direction from its skew
        return nn.functional.pad(coords, (0, self.settings.components - k))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(batch, texts, components) -> (batch, dim), unit length."""
        h = self.encoder(self.inp(tokens)).mean(1)
        return nn.functional.normalize(self.head(h), dim=-1)

    @torch.no_grad()
    def fingerprint(self, acts: torch.Tensor) -> torch.Tensor:
        """The fingerprint of one view (eval mode: deterministic)."""
        was = self.training
        self.eval()
        try:
            return self(self.process(acts).unsqueeze(0))[0]
        finally:
            self.train(was)

    def save(self, folder: str | Path, overwrite: bool = False) -> Path:
        from safetensors.torch import save_file

        from graftkit.io.atomic import atomic_directory

        with atomic_directory(folder, overwrite=overwrite) as tmp:
            save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(tmp / WEIGHTS_FILE))
            (tmp / SETTINGS_FILE).write_text(json.dumps(asdict(self.settings), indent=2))
        return Path(folder)

    @classmethod
    def load(cls, folder: str | Path) -> CapabilityExtractor:
        from safetensors.torch import load_file

        folder = Path(folder)
        if not (folder / SETTINGS_FILE).is_file() or not (folder / WEIGHTS_FILE).is_file():
            raise TransferError(f"{folder} is not a saved extractor (needs {SETTINGS_FILE} and {WEIGHTS_FILE})",
                                hint="train one with train_extractor(...) and save it with extractor.save(folder)")
        model = cls(ExtractorSettings(**json.loads((folder / SETTINGS_FILE).read_text())))
        model.load_state_dict(load_file(str(folder / WEIGHTS_FILE)))
        return model.eval()


def similarity(a: torch.Tensor, b: torch.Tensor, metric: str = "cosine", temperature: float = 0.1) -> float:
    """cosine; pearson (correlation of the coordinates); kl: symmetric KL of softmax(fp / temperature), as a similarity exp(-KL)."""
    a, b = a.float().flatten(), b.float().flatten()
    if a.shape != b.shape:
        raise TransferError(f"fingerprints of sizes {a.numel()} and {b.numel()} cannot be compared",
                            hint="make both with the same extractor")
    if metric == "cosine":
        return float(nn.functional.cosine_similarity(a, b, dim=0))
    if metric == "pearson":
        return float(torch.corrcoef(torch.stack([a, b]))[0, 1])
    if metric == "kl":
        p, q = torch.log_softmax(a / temperature, 0), torch.log_softmax(b / temperature, 0)
        kl = 0.5 * (float((p.exp() * (p - q)).sum()) + float((q.exp() * (q - p)).sum()))
        return float(torch.exp(torch.tensor(-kl)))
    raise TransferError(f"unknown similarity {metric!r}", hint="choose cosine, kl or pearson")


def supcon_loss(z: torch.Tensor, labels: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Supervised contrastive loss (Khosla et al. 2020) over unit vectors ``z``."""
    sim = z @ z.T / temperature
    eye = torch.eye(len(z), dtype=torch.bool)
    sim = sim.masked_fill(eye, -1e9)
    pos = (labels[:, None] == labels[None, :]) & ~eye
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    has = pos.any(1)
    return -(log_prob * pos).sum(1)[has].div(pos.sum(1)[has]).mean()


def train_extractor(extractor: CapabilityExtractor, views: list[tuple[torch.Tensor, int]], steps: int = 200,
                    batch: int = 16, subset: float = 0.75, lr: float = 3e-4, temperature: float = 0.1,
                    seed: int = 0) -> list[float]:
    """Train contrastively on ``views`` = (activations (texts x width), capability label); returns the losses.

    Each step draws ``batch`` views, each seen through a random ``subset`` of its texts
    (the augmentation: the same capability on other inputs), so two draws of one view are
    positives as well.
    """
    labels = sorted({label for _, label in views})
    if len(labels) < 2:
        raise TransferError("contrastive training needs views of at least two capabilities", hint="add views of another task")
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(extractor.parameters(), lr=lr, weight_decay=1e-2)
    losses = []
    extractor.train()
    try:
        with progress_bar("train extractor", steps) as advance:
            for _ in range(steps):
                pick = torch.randint(0, len(views), (batch,), generator=g).tolist()
                tokens, ys = [], []
                for i in pick:
                    acts, y = views[i]
                    n = max(2, int(subset * acts.shape[0]))
                    rows = torch.randperm(acts.shape[0], generator=g)[:n]
                    tokens.append(extractor.process(acts[rows]))
                    ys.append(y)
                n_min = min(t.shape[0] for t in tokens)
                z = extractor(torch.stack([t[:n_min] for t in tokens]))
                loss = supcon_loss(z, torch.tensor(ys), temperature)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                losses.append(float(loss.detach()))
                advance(1)
    finally:
        extractor.eval()
    return losses
