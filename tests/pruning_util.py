"""Shared helpers of the pruning tests."""

import torch

from zoo.pruning.layout import TileLayout


def random_layout(k, n, tile, col_keep=0.6, row_keep=0.5, nm=None, empty_tile=False, seed=0):
    """A TW layout with random kept columns (cut every `tile`) and random rows per tile (a multiple of m for nm)."""
    g = torch.Generator().manual_seed(seed)
    cols = torch.randperm(n, generator=g)[: max(1, round(n * col_keep))].sort().values
    tiles = [c.tolist() for c in cols.split(tile)]
    rows = []
    for _ in tiles:
        kt = max(1, round(k * row_keep))
        if nm:
            kt = max(nm[1], kt // nm[1] * nm[1])
        rows.append(torch.randperm(k, generator=g)[:kt].sort().values.tolist())
    if empty_tile and len(rows) > 1:
        rows[1] = []  # a tile whose columns keep no rows: they output the bias
    return TileLayout(k, n, tile, tiles, rows, nm)
