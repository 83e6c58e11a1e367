"""Capability extractor: activations of any model on a fixed probe set -> a 512-D fingerprint.

UMAF's seed fixed the input width and left an untrained extractor in training mode (a
model's similarity to itself 0.916). A first version here fed the encoder each view's own
principal coordinates: any width fit, but a set of principal coordinates has lost which
text is which, so it described the shape of a model's point cloud (model identity) and
retrieval across model families was at chance (0.51).

Now the input is width-independent and keeps text identity (relative representations,
Moschella et al. 2023). Every view's activations come on the same texts: the first
``anchors`` rows are fixed anchor texts, the rest are inputs. Each input text becomes one
token whose features are its similarities to the anchors (normalized, centered on the
anchors' mean, scaled by the anchor Gram's norm: an n x m slice of the Gram matrix,
comparable between widths 384 and 768). With ``delta`` (the default) the token also holds
the change of those similarities relative to the same texts through the *base* model the
capability was added to (unit RMS), which removes most of the model identity: what a
fine-tune changes is the task. Tokens go through a transformer encoder without positions
(the inputs are a set; the anchors give the columns their meaning), their mean through a
2-layer projection head, and the result is L2-normalized.

Training is supervised-contrastive (SupCon): views of the same capability (through other
models, on random subsets of the inputs) are positives, every other capability in the batch
a negative, including the other tasks added to the same base model. ``fingerprint`` runs in
eval mode without gradients, so a model's similarity to itself is exactly 1.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from torch import nn

from graftkit.errors import TransferError
from graftkit.progress import progress_bar

SETTINGS_FILE = "extractor.json"
WEIGHTS_FILE = "extractor.safetensors"


@dataclass
class ExtractorSettings:
    anchors: int = 32  # the first `anchors` rows of every view are the same anchor texts
    delta: bool = True  # also encode the change relative to the base model (needs base activations)
    normalization: str = "l2"  # "l2" | "layer"
    hidden: int = 512
    layers: int = 4
    heads: int = 8
    ff: int = 2048
    dim: int = 512
    dropout: float = 0.1


def _normalize(x: torch.Tensor, how: str) -> torch.Tensor:
    return nn.functional.normalize(x, dim=1) if how == "l2" else nn.functional.layer_norm(x, x.shape[1:])


def anchor_similarities(acts: torch.Tensor, anchors: int, normalization: str = "l2") -> torch.Tensor:
    """(texts, any width) -> (texts, anchors): every text's similarity to the anchor texts (the first rows).

    Centered on the anchors' mean and divided by the anchor Gram's Frobenius norm (times the
    anchor count), so the numbers do not depend on the width or the anisotropy of the model.
    """
    x = _normalize(acts.float(), normalization)
    x = x - x[:anchors].mean(0)
    a = x[:anchors]
    gram_norm = (a @ a.T).norm().clamp_min(1e-12)
    return x @ a.T / gram_norm * anchors


class CapabilityExtractor(nn.Module):
    """Input processor (anchor similarities and their change) + transformer encoder + projection head."""

    def __init__(self, settings: ExtractorSettings | None = None):
        super().__init__()
        s = self.settings = settings or ExtractorSettings()
        if s.normalization not in ("l2", "layer"):
            raise TransferError(f"normalization {s.normalization!r} is unknown", hint="choose 'l2' or 'layer'")
        if s.hidden % s.heads:
            raise TransferError(f"hidden {s.hidden} is not divisible by heads {s.heads}", hint="e.g. hidden 512 with 8 heads")
        if s.anchors < 2:
            raise TransferError(f"anchors {s.anchors} is too few", hint="use at least 2 anchor texts (default 32)")
        self.inp = nn.Linear(s.anchors * (2 if s.delta else 1), s.hidden)
        layer = nn.TransformerEncoderLayer(s.hidden, s.heads, s.ff, s.dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, s.layers, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.Linear(s.hidden, s.hidden), nn.GELU(), nn.Linear(s.hidden, s.dim))
        self.eval()

    def _check(self, acts: torch.Tensor, what: str) -> None:
        m = self.settings.anchors
        if acts.dim() != 2 or acts.shape[0] < m:
            raise TransferError(f"{what} must be (texts, features) with at least the {m} anchor texts first, "
                                f"got {tuple(acts.shape)}",
                                hint=f"pool each text to one vector; put the extractor's {m} anchor texts first")
        if not torch.isfinite(acts).all():
            raise TransferError(f"{what} contain NaN or Inf", hint="check the model's weights and inputs")

    def process(self, acts: torch.Tensor, base: torch.Tensor | None = None) -> torch.Tensor:
        """(texts, any width) [+ the base model on the same texts] -> tokens (inputs, anchors x (1 or 2)).

        The tokens are the input texts after the anchors; with no inputs, the anchors themselves.
        """
        s = self.settings
        self._check(acts, "activations")
        if s.delta and base is None:
            raise TransferError("this extractor encodes the change relative to the base model, but no base activations were given",
                                hint="pass base= the base model's activations on the same texts, or use ExtractorSettings(delta=False)")
        if not s.delta and base is not None:
            raise TransferError("base activations were given to an extractor made with delta=False",
                                hint="drop base= or use ExtractorSettings(delta=True)")
        k = anchor_similarities(acts, s.anchors, s.normalization)
        parts = [k]
        if base is not None:
            self._check(base, "base activations")
            if base.shape[0] != acts.shape[0]:
                raise TransferError(f"base activations cover {base.shape[0]} texts, the view {acts.shape[0]}",
                                    hint="run the base model on exactly the same texts, anchors first")
            d = k - anchor_similarities(base, s.anchors, s.normalization)
            parts.append(d / d.pow(2).mean().sqrt().clamp_min(1e-12))
        tokens = torch.cat(parts, dim=1)
        return tokens[s.anchors:] if acts.shape[0] > s.anchors else tokens

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(batch, texts, features) -> (batch, dim), unit length."""
        h = self.encoder(self.inp(tokens)).mean(1)
        return nn.functional.normalize(self.head(h), dim=-1)

    @torch.no_grad()
    def fingerprint(self, acts: torch.Tensor, base: torch.Tensor | None = None) -> torch.Tensor:
        """The fingerprint of one view (eval mode: deterministic)."""
        was = self.training
        self.eval()
        try:
            return self(self.process(acts, base).unsqueeze(0))[0]
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
        raw = json.loads((folder / SETTINGS_FILE).read_text())
        unknown = sorted(set(raw) - {f.name for f in fields(ExtractorSettings)})
        if unknown:
            raise TransferError(f"{folder / SETTINGS_FILE} has settings {unknown} this version does not know "
                                "(an extractor of the earlier principal-coordinate design)",
                                hint="train and save the extractor again with this version")
        model = cls(ExtractorSettings(**raw))
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


View = tuple  # (activations, label) or (activations, label, base activations)


def train_extractor(extractor: CapabilityExtractor, views: list[View], steps: int = 200, batch: int = 16,
                    subset: float = 0.5, lr: float = 3e-4, temperature: float = 0.1, seed: int = 0) -> list[float]:
    """Train contrastively on ``views``: (activations, capability label[, base activations]); returns the losses.

    Each step draws ``batch`` views, each seen through a random ``subset`` of its input
    texts (the augmentation: the same capability on other inputs; two draws of one view
    are positives too). Views of one label through different models are positives; all
    other labels, including other tasks added to the same base model, are negatives.
    """
    labels = sorted({v[1] for v in views})
    if len(labels) < 2:
        raise TransferError("contrastive training needs views of at least two capabilities", hint="add views of another task")
    tokens_of = [extractor.process(v[0], v[2] if len(v) > 2 else None) for v in views]
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(extractor.parameters(), lr=lr, weight_decay=1e-2)
    losses = []
    extractor.train()
    try:
        with progress_bar("train extractor", steps) as advance:
            for _ in range(steps):
                pick = torch.randint(0, len(views), (batch,), generator=g).tolist()
                n = max(2, int(subset * min(tokens_of[i].shape[0] for i in pick)))
                batch_tokens = torch.stack([tokens_of[i][torch.randperm(tokens_of[i].shape[0], generator=g)[:n]] for i in pick])
                z = extractor(batch_tokens)
                loss = supcon_loss(z, torch.tensor([labels.index(views[i][1]) for i in pick]), temperature)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                losses.append(float(loss.detach()))
                advance(1)
    finally:
        extractor.eval()
    return losses
