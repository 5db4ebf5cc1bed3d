"""MNIST from the four IDX files (LeCun et al.), verified by sha256, under ``$ZOO_DATA/mnist/``."""

from __future__ import annotations

import gzip

import numpy as np
import torch
from torch import Tensor

from zoo.data import verify_files

__all__ = ["load_mnist"]

FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def _idx(path) -> np.ndarray:
    data = gzip.decompress(path.read_bytes())
    magic = int.from_bytes(data[:4], "big")
    ndim = magic & 0xFF
    if magic >> 8 != 0x08:  # unsigned byte payload
        raise ValueError(f"{path}: expected an IDX file of unsigned bytes, got magic {magic:#x}")
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_mnist(split: str = "train") -> tuple[Tensor, Tensor]:
    """Images ``[N, 1, 28, 28]`` float32 in [0, 1] and labels ``[N]`` int64 of ``split`` (``train``: 60,000,
    ``test``: 10,000)."""
    if split not in FILES:
        raise ValueError(f"expected split in {tuple(FILES)}, got {split!r}")
    images, labels = verify_files("mnist", list(FILES[split]))
    x = torch.from_numpy(_idx(images).copy()).float().div_(255).unsqueeze(1)
    y = torch.from_numpy(_idx(labels).astype(np.int64))
    if len(x) != len(y):
        raise ValueError(f"MNIST {split}: {len(x)} images but {len(y)} labels")
    return x, y
