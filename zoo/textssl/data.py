"""``TextSSLDataModule``: document graphs of R8, R52 or MR (``zoo.data.textssl``) for the textssl family.

The corpus comes cleaned, truncated and split (train / val = 10% of train / test) from
``zoo.data.textssl.load_corpus``. The vocabulary is every cleaned word of the corpus (the cleaning itself keeps only
TextGCN's corpus vocabulary: no stop words, frequency ≥ 5), so that pretrained vectors (MiniLM, GloVe) cover the test
documents' words as they would for any new text; labels are never used for it. Vectors that are learned from text
(``word2vec``) are trained on the training documents only; words they have not seen get U(−0.01, 0.01).

When the LightningModule already carries a vocabulary (a pretrained checkpoint, or ``init_from``), the graphs are
built with that vocabulary (words outside it are dropped) and no vectors are computed: the checkpoint holds them.

Graphs are built once per setting and cached under ``$ZOO_CACHE/textssl/`` (``torch.save`` of the graph lists).
"""

from __future__ import annotations

import hashlib
import json

import lightning as L
import torch

from zoo.data import cache_root, save_cache
from zoo.textssl.graph import GRAPHS, document_graph

__all__ = ["TextSSLDataModule", "encode"]


def encode(sentences, index: dict[str, int]) -> list[list[int]]:
    """Word ids per sentence; words outside ``index`` are dropped (and so are sentences left empty)."""
    out = [[index[w] for w in s if w in index] for s in sentences]
    return [s for s in out if s]


class TextSSLDataModule(L.LightningDataModule):
    """Per-document graphs for TextSSL and its baselines.

    Args:
        dataset: ``"r8"``, ``"r52"``, ``"mr"`` or ``"20ng"``.
        graph: ``"sentence"`` (disjoint sentence graphs with adjacent-sentence candidates: TextSSL and the disjoint
            baseline) or ``"document"`` (WordCooc).
        vectors: ``"minilm"``, ``"minilm-encoded"``, ``"smollm2"``, ``"word2vec"``, ``"random"`` or ``"glove"`` (then
            ``glove_path``), or several joined by ``+`` (``"minilm+smollm2"``: the tables side by side); see
            :func:`zoo.data.textssl.word_vectors`.
        window: co-occurrence window.
        max_words: truncation of each document (whole sentences).
        val_fraction: share of the training documents held out for validation.
        split_seed: seed of that split (fixed across training seeds).
        batch_size: documents per training batch (evaluation uses 256).
        vector_seed: seed of word2vec and of the random vectors of unseen words.
        glove_path: a GloVe text file for ``vectors="glove"``.
        limit: keep only the first ``limit`` documents of each split (smoke tests).
        root: data root (default ``$ZOO_DATA``).
    """

    def __init__(
        self,
        dataset: str = "r8",
        graph: str = "sentence",
        vectors: str = "minilm",
        window: int = 3,
        max_words: int = 350,
        val_fraction: float = 0.1,
        split_seed: int = 0,
        batch_size: int = 64,
        vector_seed: int = 0,
        glove_path: str | None = None,
        limit: int | None = None,
        root: str | None = None,
    ) -> None:
        super().__init__()
        if graph not in GRAPHS:
            raise ValueError(f"expected graph in {GRAPHS}, got {graph!r}")
        self.save_hyperparameters()
        self.vocab: list[str] | None = None
        self.vectors: torch.Tensor | None = None
        self.labels: list[str] | None = None
        self.graphs: dict[str, list] = {}

    def _model_vocab(self) -> list[str] | None:
        module = getattr(self.trainer, "lightning_module", None) if self.trainer is not None else None
        vocab = getattr(module, "vocab", None)
        return list(vocab) if vocab else None

    def setup(self, stage: str | None = None) -> None:
        if self.graphs:
            return
        from zoo.data.textssl import load_corpus

        h = self.hparams
        corpus = load_corpus(h.dataset, h.root, val_fraction=h.val_fraction, split_seed=h.split_seed,
                             max_words=h.max_words)  # fmt: skip
        self.labels = list(corpus["train"].features["label"].names)
        splits = {name: corpus[name] for name in ("train", "val", "test")}
        if h.limit:
            splits = {k: v.select(range(min(h.limit, len(v)))) for k, v in splits.items()}
        vocab = self._model_vocab()
        if vocab is None:
            from zoo.data.textssl import word_vectors

            words = sorted({w for d in splits.values() for doc in d["sentences"] for s in doc for w in s})
            vocab = ["<unk>", *words]
            self.vectors = word_vectors(vocab, h.vectors, train_sentences=splits["train"]["sentences"],
                                        seed=h.vector_seed, path=h.glove_path)  # fmt: skip
        self.vocab = vocab
        key = json.dumps({**{k: h[k] for k in ("dataset", "graph", "window", "max_words", "val_fraction",
                                                "split_seed", "limit")}, "vocab": vocab}, sort_keys=True)  # fmt: skip
        path = cache_root() / "textssl" / f"{h.dataset}-{h.graph}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.pt"
        if path.exists():
            self.graphs = torch.load(path, weights_only=False)
            return
        index = {w: i for i, w in enumerate(vocab)}
        from tqdm.auto import tqdm

        for name, split in splits.items():
            graphs = []
            for doc, label in tqdm(zip(split["sentences"], split["label"]), total=len(split),
                                   desc=f"{h.dataset} {name} graphs", leave=False):  # fmt: skip
                ids = encode(doc, index) or [[0]]  # a document left without known words: one <unk> node
                graphs.append(document_graph(ids, h.graph, h.window, label))
            self.graphs[name] = graphs
        save_cache(self.graphs, path)

    def _loader(self, name: str, shuffle: bool):
        from torch_geometric.loader import DataLoader

        size = self.hparams.batch_size if shuffle else 256
        return DataLoader(self.graphs[name], batch_size=size, shuffle=shuffle)

    def train_dataloader(self):
        return self._loader("train", True)

    def val_dataloader(self):
        return self._loader("val", False)

    def test_dataloader(self):
        return self._loader("test", False)

    def predict_dataloader(self):
        return self._loader("test", False)
