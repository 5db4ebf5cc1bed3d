"""Restricted MNIST (RMNIST) sets of the CONN paper (arXiv 2310.05212) and their 1000-image test set.

Layout under ``$ZOO_DATA/rmnist/`` (as in the authors' ``data/`` folder):
``rmnist.aug0/rmnist_<R>aug0/train/tens/<digit>/nim=<i>.pt`` for R in {5, ..., 10, 20, ..., 50} images per
class, and ``test_data/tens/<digit>/nimabs=<j>.nb=<j>.nim=0.pt``. Each file is one ``1x28x28`` float32 image
in [0, 1]; the training files are pickled NumPy arrays and are opened with an allow-list of exactly the NumPy
globals they need (never a plain unpickler), the test files are tensors. Reading and verifying all of them
takes under a second, so nothing is cached.
"""

from __future__ import annotations

import codecs
import re

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler, TensorDataset

from zoo.data import checksums, verify_files

__all__ = ["PER_CLASS", "load_rmnist", "RMNISTDataModule", "EpochSampler", "IndexedDataset"]

PER_CLASS = (5, 6, 7, 8, 9, 10, 20, 30, 40, 50)
_NUM = re.compile(r"nim(?:abs)?=(\d+)")


def _numpy_globals() -> list:
    from numpy._core.multiarray import _reconstruct

    return [
        (_reconstruct, "numpy.core.multiarray._reconstruct"),
        np.ndarray,
        np.dtype,
        np.dtypes.Float32DType,
        codecs.encode,
    ]


def _files(per_class: int | None) -> list[str]:
    prefix = "test_data/tens/" if per_class is None else f"rmnist.aug0/rmnist_{per_class}aug0/train/tens/"
    names = [n for n in checksums("rmnist") if n.startswith(prefix) and n.endswith(".pt")]
    # order by digit, then by the image number in the name
    return sorted(names, key=lambda n: (int(n[len(prefix)]), int(_NUM.search(n).group(1))))


def load_rmnist(per_class: int | None) -> tuple[Tensor, Tensor]:
    """Load a restricted training set or the test set, verifying every file's sha256.

    Args:
        per_class: R, images per class (one of ``PER_CLASS``), or None for the 1000-image test set.

    Returns:
        images ``[N, 1, 28, 28]`` float32 in [0, 1] and labels ``[N]`` int64, ordered by digit.
    """
    if per_class is not None and per_class not in PER_CLASS:
        raise ValueError(f"expected per_class in {PER_CLASS} (or None for the test set), got {per_class!r}")
    names = _files(per_class)
    paths = verify_files("rmnist", names)
    images = []
    with torch.serialization.safe_globals(_numpy_globals()):
        for path in paths:
            obj = torch.load(path, weights_only=True, map_location="cpu")
            images.append(torch.as_tensor(np.asarray(obj) if not isinstance(obj, Tensor) else obj).float())
    x = torch.stack(images).view(-1, 1, 28, 28)
    y = torch.tensor([int(n.split("/tens/")[1][0]) for n in names])
    return x, y


class IndexedDataset(Dataset):
    """``(image, label, index)`` triples; the index lets a model cache per-sample work."""

    def __init__(self, images: Tensor, labels: Tensor) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor, int]:
        return self.images[i], self.labels[i], i


class EpochSampler(Sampler[int]):
    """Shuffles with a permutation that is a pure function of ``(seed, epoch)``, and can skip the batches an
    interrupted run already consumed, so that a resumed run sees exactly the batches of an uninterrupted one.

    Args:
        n: dataset size.
        seed: base seed.
        shuffle: permute or keep order.
    """

    def __init__(self, n: int, seed: int = 0, shuffle: bool = True) -> None:
        self.n, self.seed, self.shuffle = n, seed, shuffle
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n  # the epoch's length, even when resuming part-way (Lightning counts from the restored step)

    def __iter__(self):
        if self.shuffle:
            order = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 100003 + self.epoch))
        else:
            order = torch.arange(self.n)
        skip, self.skip = self.skip, 0
        return iter(order[skip:].tolist())


class _ResumableLoader(DataLoader):
    """A DataLoader whose position Lightning saves in checkpoints (``state_dict``) and restores on resume.

    ``consumed`` counts the batches the training step has received (the data module's
    ``on_before_batch_transfer`` increments it), not the batches fetched, since Lightning prefetches one ahead.
    """

    consumed = 0

    def __iter__(self):
        self.consumed = 0
        return super().__iter__()

    def state_dict(self) -> dict:
        return {"epoch": self.sampler.epoch, "batches": self.consumed}

    def load_state_dict(self, state: dict) -> None:
        self.sampler.set_epoch(state["epoch"])
        self.sampler.skip = state["batches"] * self.batch_size


class RMNISTDataModule(L.LightningDataModule):
    """Restricted MNIST: train on R images per class, test on the 1000-image test set.

    Batches are ``(images [B, 1, 28, 28], labels [B], indices [B])``. Validation runs on the (raw) training
    set: the paper has no validation split, and nothing is selected on the test set.

    Args:
        per_class: R, images per class, one of 5, 6, 7, 8, 9, 10, 20, 30, 40, 50.
        batch_size: training batch size (paper: 100 for the classifier, 4 for the AE).
        aug_copies: if > 0, the training set is the R-set plus this many augmented copies of every image at
            strength ``aug_alpha`` (the AE's first stage; the paper's "aug6" sets), drawn once from ``seed``.
        aug_alpha: augmentation strength of those copies.
        seed: seeds the shuffling (a pure function of seed and epoch) and the augmented copies.
        num_workers: DataLoader workers.
    """

    def __init__(
        self,
        per_class: int = 10,
        batch_size: int = 100,
        aug_copies: int = 0,
        aug_alpha: float = 1.0,
        seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        if per_class not in PER_CLASS:
            raise ValueError(f"expected per_class in {PER_CLASS}, got {per_class!r}")
        if aug_copies < 0:
            raise ValueError(f"expected aug_copies >= 0, got {aug_copies}")
        self.save_hyperparameters()
        self.per_class, self.batch_size, self.seed, self.num_workers = per_class, batch_size, seed, num_workers
        self.aug_copies, self.aug_alpha = aug_copies, aug_alpha
        self.labels = [str(d) for d in range(10)]

    def setup(self, stage: str | None = None) -> None:
        if not hasattr(self, "train_x"):
            self.train_x, self.train_y = load_rmnist(self.per_class)
            self.test_x, self.test_y = load_rmnist(None)
            self.fit_x, self.fit_y = self.train_x, self.train_y
            if self.aug_copies:
                from zoo.models.conn import augment, sample_augmentation

                g = torch.Generator().manual_seed(self.seed)
                x = self.train_x.repeat(self.aug_copies, 1, 1, 1)  # [copies * N, 1, 28, 28]
                extra = augment(x, sample_augmentation(len(x), self.aug_alpha, g))
                self.fit_x = torch.cat([self.train_x, extra])
                self.fit_y = self.train_y.repeat(self.aug_copies + 1)

    def _loader(self, x: Tensor, y: Tensor, shuffle: bool, batch_size: int) -> DataLoader:
        return _ResumableLoader(
            IndexedDataset(x, y),
            batch_size=batch_size,
            sampler=EpochSampler(len(y), self.seed, shuffle),
            num_workers=self.num_workers,
        )

    def train_dataloader(self) -> DataLoader:
        self._train_loader = self._loader(self.fit_x, self.fit_y, True, self.batch_size)
        return self._train_loader

    def on_before_batch_transfer(self, batch, dataloader_idx: int):
        if self.trainer is not None and self.trainer.training and hasattr(self, "_train_loader"):
            self._train_loader.consumed += 1
        return batch

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.train_x, self.train_y, False, 100)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_x, self.test_y, False, 100)

    def predict_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(self.test_x), batch_size=1000)
