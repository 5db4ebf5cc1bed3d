"""Document graphs of TextSSL (arXiv 2112.06386): sentence-level word co-occurrence graphs and their candidates.

A document is a list of sentences, each a list of word ids (already cleaned and truncated, see
``zoo.data.textssl``). Two graphs are built from it, with one schema, so that every model reads the same fields:

* ``"sentence"`` (the paper's graph; the "disjoint" baseline and TextSSL): the **disjoint union of sentence
  graphs**. Each sentence has one node per distinct word; a word in k sentences has k nodes. Intra-sentence edges
  come from a sliding window of ``window`` words: every unordered pair of distinct words inside a window adds one
  count in both directions, and an edge's weight is its count divided by the sentence's number of windows (a
  sentence shorter than the window is one window). **Candidate edges** join every node of sentence s to every node of
  sentence s + 1, in that direction only (from the lower to the higher node index, as in the official code); TextSSL
  learns which of them to keep.
* ``"document"`` (the WordCooc baseline): one node per distinct word of the document, the union of all sentence
  co-occurrences (counts summed over sentences, divided by the total number of windows), no candidates.

Sentences without any co-occurrence pair (a single distinct word) are dropped, as the official code drops sentences
with fewer than 2 pairs; a document left with no sentence keeps its first sentence, so that no graph is empty.

Fields of the returned ``torch_geometric.data.Data``: ``word`` ``[N]`` (word id of each node; the model looks up
its vector), ``sent`` ``[N]`` (sentence index), ``edge_index`` ``[2, E]`` and ``edge_weight`` ``[E]`` (intra edges),
``cand_index`` ``[2, C]`` (candidates; empty for ``"document"``), ``num_nodes``; ``y`` when a label is given. PyG
offsets ``edge_index`` and ``cand_index`` by the node count when it batches graphs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import torch

__all__ = ["GRAPHS", "cooccurrence", "document_graph"]

GRAPHS = ("sentence", "document")


def cooccurrence(words: Sequence[int], window: int = 3) -> tuple[Counter, int]:
    """Pair counts of one sentence and its number of windows.

    Returns:
        ``(counts, windows)``: ``counts[(a, b)]`` for every ordered pair of distinct words a ≠ b that share a window
        (both orders counted), ``windows = max(1, len(words) - window + 1)``.
    """
    if window < 2:
        raise ValueError(f"expected a window of at least 2 words, got {window}")
    n_win = max(1, len(words) - window + 1)
    counts: Counter = Counter()
    for start in range(n_win):
        seen = sorted(set(words[start : start + window]))
        for i, a in enumerate(seen):
            for b in seen[i + 1 :]:
                counts[(a, b)] += 1
                counts[(b, a)] += 1
    return counts, n_win


def document_graph(sentences: Sequence[Sequence[int]], graph: str = "sentence", window: int = 3, label=None):
    """The ``graph`` (``"sentence"`` or ``"document"``) of one document; see the module docstring.

    Args:
        sentences: word ids per sentence; at least one non-empty sentence.
        graph: ``"sentence"`` (disjoint sentence graphs + adjacent-sentence candidates) or ``"document"``.
        window: sliding-window length.
        label: optional class index stored as ``y``.
    """
    from torch_geometric.data import Data

    if graph not in GRAPHS:
        raise ValueError(f"expected graph in {GRAPHS}, got {graph!r}")
    sentences = [list(s) for s in sentences if len(s)]
    if not sentences:
        raise ValueError("a document needs at least one non-empty sentence (got none after cleaning)")
    stats = [cooccurrence(s, window) for s in sentences]
    kept = [i for i, (c, _) in enumerate(stats) if c] or [0]
    sentences, stats = [sentences[i] for i in kept], [stats[i] for i in kept]

    if graph == "document":
        vocab = sorted({w for s in sentences for w in s})
        node = {w: i for i, w in enumerate(vocab)}
        total: Counter = Counter()
        for counts, _ in stats:
            total.update(counts)
        n_win = sum(w for _, w in stats)
        pairs = sorted(total)
        src = [node[a] for a, _ in pairs]
        dst = [node[b] for _, b in pairs]
        weight = [total[p] / n_win for p in pairs]
        words, sent = vocab, [0] * len(vocab)
        cand = torch.empty(2, 0, dtype=torch.long)
    else:
        words, sent, src, dst, weight, offsets = [], [], [], [], [], []
        for s_id, (sentence, (counts, n_win)) in enumerate(zip(sentences, stats)):
            vocab = sorted(set(sentence))
            node = {w: len(words) + i for i, w in enumerate(vocab)}
            offsets.append((len(words), len(vocab)))
            words += vocab
            sent += [s_id] * len(vocab)
            for (a, b), c in sorted(counts.items()):
                src.append(node[a])
                dst.append(node[b])
                weight.append(c / n_win)
        parts = []
        for (o1, n1), (o2, n2) in zip(offsets, offsets[1:]):
            a = torch.arange(o1, o1 + n1).repeat_interleave(n2)
            b = torch.arange(o2, o2 + n2).repeat(n1)
            parts.append(torch.stack([a, b]))
        cand = torch.cat(parts, 1) if parts else torch.empty(2, 0, dtype=torch.long)
    data = Data(
        word=torch.tensor(words, dtype=torch.long),
        sent=torch.tensor(sent, dtype=torch.long),
        edge_index=torch.tensor([src, dst], dtype=torch.long).view(2, -1),
        edge_weight=torch.tensor(weight, dtype=torch.float32),
        cand_index=cand,
        num_nodes=len(words),
    )
    if label is not None:
        data.y = torch.tensor([int(label)], dtype=torch.long)
    return data
