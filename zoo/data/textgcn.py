"""Text classification corpora in TextGCN's release (yao8839836/text_gcn): MR for now.

MR (sentence polarity v1.0, Pang & Lee): 7,108 training and 3,554 test snippets, lower-cased and tokenised with
punctuation as separate tokens, labels 0 (negative) / 1 (positive), from ``$ZOO_DATA/textgcn/mr/``.
"""

from __future__ import annotations

import gzip

from zoo.data import verify_files

__all__ = ["load_mr"]

MR_LABELS = ("negative", "positive")


def load_mr(split: str) -> tuple[list[str], list[int]]:
    """Texts and integer labels of MR's TextGCN ``split`` (``"train"`` or ``"test"``), files verified by sha256."""
    if split not in ("train", "test"):
        raise ValueError(f"expected split 'train' or 'test', got {split!r}")
    text_path, label_path = verify_files("textgcn", [f"mr/text_{split}.txt.gz", f"mr/label_{split}.txt.gz"])
    texts = [line.strip() for line in gzip.open(text_path, "rt", encoding="utf-8", errors="replace")]
    labels = [int(line) for line in gzip.open(label_path, "rt") if line.strip()]
    texts = texts[: len(labels)] if len(texts) > len(labels) and not any(texts[len(labels) :]) else texts
    if len(texts) != len(labels):
        raise ValueError(f"MR {split}: {len(texts)} texts but {len(labels)} labels in {text_path.parent}")
    return texts, labels
