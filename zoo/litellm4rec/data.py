"""Batches of item sequences for next-item prediction (ML-1m, leave-one-out), shared by every model of the family.

Training: each epoch draws, per user, one window of at most ``max_len + 1`` consecutive items of the training part
of the sequence (``window="random"``: a uniformly random end from the global RNG, so ``seed_everything``
fixes it; ``"last"``: SASRec's last window);
the input is the window without its last item and the targets are the window shifted by one. Inputs are
**left-padded** with 0 to ``max_len``, so the last column is always the most recent item.

Evaluation: one row per user; the input is the last ``max_len`` items of the history (validation: the training
part; test: everything before the last item), the target is the next item, and ``seen`` lists every item of the
*whole* history, which the full ranking excludes (no item is rated twice in ML-1m, so a target is never in it).

Batch keys: ``input`` [B, L] (long), ``target`` ([B, L] in training, 0 = no loss; [B] in evaluation), and in
evaluation ``seen`` [B, S] (0-padded) and ``user`` [B] (row of the user in ``MovieLens.sequences``).
"""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from zoo.data.movielens import leave_one_out, load_movielens

__all__ = ["SeqRecDataModule", "left_pad", "collate_eval"]


def left_pad(rows: list[list[int]], length: int) -> torch.Tensor:
    """``[len(rows), length]`` long tensor of the last ``length`` items of each row, left-padded with 0."""
    out = torch.zeros(len(rows), length, dtype=torch.long)
    for r, row in enumerate(rows):
        row = row[-length:]
        if row:
            out[r, length - len(row) :] = torch.as_tensor(row)
    return out


def collate_eval(examples: list[tuple[int, list[int], int]], max_len: int) -> dict:
    """Evaluation batch from ``(user, history, target)`` triples."""
    users, hist, target = zip(*examples)
    width = max(len(h) for h in hist)
    return {
        "input": left_pad(list(hist), max_len),
        "target": torch.as_tensor(target, dtype=torch.long),
        "seen": left_pad(list(hist), width),
        "user": torch.as_tensor(users, dtype=torch.long),
    }


class _TrainWindows(Dataset):
    def __init__(self, sequences: list[list[int]], max_len: int, window: str) -> None:
        self.sequences, self.max_len, self.window = sequences, max_len, window

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, i: int) -> list[int]:
        seq = self.sequences[i]
        n = self.max_len + 1
        end = len(seq)
        if self.window == "random" and len(seq) > n:
            end = int(torch.randint(n, len(seq) + 1, (1,)))  # global RNG: seeded by seed_everything
        return seq[max(0, end - n) : end]


class _EvalRows(Dataset):
    def __init__(self, rows: list[tuple[int, list[int], int]]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int):
        return self.rows[i]


class SeqRecDataModule(L.LightningDataModule):
    """ML-1m sequences with the leave-one-out protocol (see the module docstring).

    Args:
        dataset: ``"ml-1m"`` (the only one with item text here).
        max_len: maximum history length L fed to a model (50).
        window: ``"random"`` or ``"last"`` training window per user and epoch.
        batch_size: training sequences per batch.
        eval_batch_size: users per evaluation batch.
        limit_users: use only the first N users (smoke tests); None for all.
        num_workers: DataLoader workers.
    """

    def __init__(
        self,
        dataset: str = "ml-1m",
        max_len: int = 50,
        window: str = "random",
        batch_size: int = 128,
        eval_batch_size: int = 256,
        limit_users: int | None = None,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        if dataset != "ml-1m":
            raise ValueError(f"expected dataset 'ml-1m' (the data set with item text here), got {dataset!r}")
        if window not in ("random", "last"):
            raise ValueError(f"expected window 'random' or 'last', got {window!r}")
        if max_len < 1:
            raise ValueError(f"expected max_len >= 1, got {max_len}")
        self.save_hyperparameters()
        self.data = None

    def prepare_data(self) -> None:
        load_movielens()

    def setup(self, stage: str | None = None) -> None:
        if self.data is not None:
            return
        self.data = load_movielens()
        seqs = self.data.sequences[: self.hparams.limit_users]
        splits = [leave_one_out(s) for s in seqs]
        self.train_sequences = [s["train"] for s in splits]
        self.val_rows = [(u, *s["val"]) for u, s in enumerate(splits)]
        self.test_rows = [(u, *s["test"]) for u, s in enumerate(splits)]
        self._train = _TrainWindows(self.train_sequences, self.hparams.max_len, self.hparams.window)

    @property
    def num_items(self) -> int:
        return self.data.num_items

    def _collate_train(self, windows: list[list[int]]) -> dict:
        L_ = self.hparams.max_len
        return {"input": left_pad([w[:-1] for w in windows], L_), "target": left_pad([w[1:] for w in windows], L_)}

    def _collate_eval(self, rows) -> dict:
        return collate_eval(rows, self.hparams.max_len)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(
            self._train,
            batch_size=self.hparams.batch_size,
            shuffle=True,
            collate_fn=self._collate_train,
            num_workers=self.hparams.num_workers,
        )

    def _eval_loader(self, rows) -> DataLoader:
        return DataLoader(
            _EvalRows(rows),
            batch_size=self.hparams.eval_batch_size,
            collate_fn=self._collate_eval,
            num_workers=self.hparams.num_workers,
        )

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader(self.val_rows)

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader(self.test_rows)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()
