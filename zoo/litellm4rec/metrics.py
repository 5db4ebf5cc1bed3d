"""Full-ranking metrics of next-item prediction with one target per user.

With the target's 1-based rank r among all candidate items, Recall@K = 1[r ≤ K] (equal to HR@K with one target)
and NDCG@K = 1[r ≤ K] / log2(r + 1). ``tests/test_litellm4rec_data.py`` checks these against torchmetrics'
``RetrievalRecall`` / ``RetrievalNormalizedDCG``; this vectorised form avoids building one retrieval query per user.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["KS", "target_ranks", "list_ranks", "rank_metrics", "mask_scores"]

KS = (5, 10, 20)


def mask_scores(scores: Tensor, seen: Tensor | None = None) -> Tensor:
    """Scores ``[B, N + 1]`` with the padding column 0 and, when given, the items of ``seen`` ``[B, S]`` (0-padded)
    set to -inf, so that neither is ever ranked or recommended."""
    scores = scores.clone()
    scores[:, 0] = -math.inf
    if seen is not None and seen.numel():
        scores.scatter_(1, seen, -math.inf)
        scores[:, 0] = -math.inf
    return scores


def target_ranks(scores: Tensor, target: Tensor) -> Tensor:
    """1-based rank ``[B]`` of ``target`` ``[B]`` in each row of ``scores`` ``[B, N + 1]``: 1 + the number of items
    scored strictly higher (ties go to the target)."""
    t = scores.gather(1, target[:, None])
    return (scores > t).sum(1) + 1


def list_ranks(items: Tensor, target: Tensor, missing: int) -> Tensor:
    """1-based rank ``[B]`` of ``target`` ``[B]`` in recommendation lists ``items`` ``[B, K]`` (best first), or
    ``missing`` where the list does not hold it."""
    hit = items == target[:, None]
    first = hit.long().argmax(1) + 1
    return torch.where(hit.any(1), first, torch.full_like(first, missing))


def rank_metrics(ranks: Tensor, ks: tuple[int, ...] = KS) -> dict[str, Tensor]:
    """Per-user ``recall@K`` and ``ndcg@K`` ``[B]`` (float) from target ranks ``[B]`` (ranks past the list: any value
    greater than max(ks), e.g. a large integer)."""
    ranks = ranks.double()
    out = {}
    for k in ks:
        hit = (ranks <= k).double()
        out[f"recall@{k}"] = hit
        out[f"ndcg@{k}"] = hit / torch.log2(ranks.clamp(max=1e9) + 1)
    return out
