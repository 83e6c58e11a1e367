"""A small ViT trained from a config on an image dataset, saved as ``ViTForImageClassification``.

The presets fit 28x28 grayscale digits and clothes on CPU: a 4x4 grid of patches
(7x7 pixels for 28x28), a few layers of width 64-128. Images go in as they come from the loaders,
(N, C, H, W) in [0, 1]; the saved image processor only rescales 0..255 to [0, 1], so
``pipeline("image-classification")`` sees what training saw.
"""

from __future__ import annotations

from pathlib import Path

import torch

from graftkit.data.evaluate import image_accuracy
from graftkit.data.finetune.common import (
    FinetuneResult,
    FinetuneSettings,
    batches,
    optimize,
    schedule,
    set_threads,
    tail_mean,
)
from graftkit.data.types import Dataset
from graftkit.errors import DataError
from graftkit.io.atomic import atomic_directory

PRESETS = {
    "vit-tiny": dict(hidden_size=64, num_hidden_layers=4, num_attention_heads=4, intermediate_size=128),
    "vit-small": dict(hidden_size=128, num_hidden_layers=6, num_attention_heads=4, intermediate_size=256),
}
DEFAULTS = dict(steps=1500, lr=1e-3, batch_size=64, max_length=0, val_size=2000)


def _patch(side: int) -> int:
    """The largest patch that tiles the image exactly into at least 4x4 patches (28 -> 7, 8 -> 2, 25 -> 5).

    Few, large patches train much faster on CPU: on MNIST, patch 7 (16 tokens) reached a
    training loss of 0.29 after 525 steps where patch 4 (49 tokens) was at 0.78 after 600.
    """
    return next(p for p in range(max(1, side // 4), 0, -1) if side % p == 0)


def build_vit(preset: str, dataset: Dataset, seed: int):
    from transformers import ViTConfig, ViTForImageClassification

    images = dataset.train.images
    if images is None:
        raise DataError(f"{preset} trains on images; {dataset.name!r} is {dataset.kind}", hint="pick mnist, fashion_mnist or digits")
    _, channels, height, width = images.shape
    if height != width:
        raise DataError(f"{dataset.name}: images are {height}x{width}; the ViT presets need square images")
    id2label = dict(enumerate(dataset.label_names))
    config = ViTConfig(image_size=height, patch_size=_patch(height), num_channels=channels, num_labels=dataset.num_labels,
                       id2label=id2label, label2id={v: k for k, v in id2label.items()}, hidden_dropout_prob=0.0,
                       attention_probs_dropout_prob=0.0, **PRESETS[preset])
    torch.manual_seed(seed)
    return ViTForImageClassification(config)


def train_vit(base: str | Path, dataset: Dataset, out: Path, settings: FinetuneSettings, overwrite: bool = False) -> FinetuneResult:
    """Train a ViT preset (or continue an HF image classifier folder) on ``dataset``."""
    from transformers import AutoModelForImageClassification, ViTImageProcessor

    s = settings.filled(DEFAULTS)
    set_threads(s.threads)
    if str(base) in PRESETS:
        model = build_vit(str(base), dataset, s.seed)
    else:
        torch.manual_seed(s.seed)
        model = AutoModelForImageClassification.from_pretrained(base)
    train = dataset.train
    labels = torch.tensor(train.labels)
    optimizer = torch.optim.AdamW(model.parameters(), lr=s.lr, weight_decay=0.05)
    scheduler = schedule(optimizer, s.steps, s.warmup)

    def loss_of(idx: list[int]) -> torch.Tensor:
        index = torch.tensor(idx)
        return model(pixel_values=train.images[index], labels=labels[index]).loss

    losses, seconds = optimize(model, optimizer, scheduler, batches(len(train), s.batch_size, s.steps, s.seed),
                               loss_of, f"train {base} on {dataset.name}", s.steps)
    val = dataset.validation.head(s.val_size) if s.val_size else dataset.validation
    result = image_accuracy(model, val, description="validate")
    record = FinetuneResult(
        output=str(out), base=str(base), task=dataset.name, recipe="image-classification", metric="accuracy",
        value=float(result.accuracy), validation_n=result.n, validation_loss=result.loss, train_seconds=round(seconds, 2),
        final_train_loss=tail_mean(losses), settings=vars(s), label_names=list(dataset.label_names),
    )
    side = int(train.images.shape[-1])
    processor = ViTImageProcessor(do_resize=False, do_rescale=True, rescale_factor=1 / 255, do_normalize=False,
                                  size={"height": side, "width": side})
    with atomic_directory(out, overwrite=overwrite) as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        record.write(tmp)
    return record
