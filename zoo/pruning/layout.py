"""The tile-wise (TW / TVW) sparsity layout of one layer: which output columns are kept, how they are cut into tiles,
and which input rows every tile keeps.

Papers: Guo et al., "Accelerating Sparse DNN Models without Hardware-Support via Tile-Wise Sparsity" (SC 2020,
arXiv 2008.13006) and "Accelerating Sparse DNNs Based on Tiled GEMM" (arXiv 2402.10876, TVW). Independent
implementation, MIT licensed.

GEMM view: y[M×N] = x[M×K]·W[K×N] + b, with the torch weight ``(N, K)`` = Wᵀ. A layout is the contract between the
pruner (``zoo.pruning.patterns``), which produces it, and the executors (``zoo.pruning.tvw``, the Triton kernel),
which consume it. It is plain JSON (lists of ints) and goes into a pruned checkpoint's ``config.json``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["TileLayout"]


def _int_lists(name: str, value: object) -> list[list[int]]:
    if isinstance(value, Tensor) or not isinstance(value, (list, tuple)):
        raise ValueError(
            f"expected `{name}` as a list of lists of ints (one list per tile), got {type(value).__name__}"
        )
    out = []
    for t, ids in enumerate(value):
        if isinstance(ids, Tensor):
            ids = ids.tolist()
        if not isinstance(ids, (list, tuple)) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise ValueError(f"expected `{name}[{t}]` as a list of ints, got {ids!r:.80}")
        out.append([int(i) for i in ids])
    return out


@dataclass
class TileLayout:
    """TW layout of one layer: kept output columns cut into tiles of at most `tile` columns, each tile with its own
    kept K rows.

    Tile t computes y[:, cols[t]] = x[:, rows[t]] · W[rows[t], cols[t]] (a dense [M × K_t] · [K_t × N_t] GEMM);
    output columns in no tile are pruned and output the bias. With ``nm = (n, m)`` (TVW), every column of a tile
    keeps at most n non-zeros in each group of m consecutive kept rows, in the compacted order ``rows[t]`` (what
    sparse tensor cores consume), so each tile's row count is a multiple of m.

    Args:
        in_features: K.
        out_features: N.
        tile: G, the most kept columns one tile holds (128 in the papers).
        cols: per tile, kept output-column ids, strictly ascending within the tile; tiles are disjoint.
        rows: per tile, kept input (K) ids, strictly ascending.
        nm: ``(n, m)``, e.g. ``(2, 4)``: n:m sparsity along the compacted rows inside every tile; None: dense tiles.
    """

    in_features: int
    out_features: int
    tile: int
    cols: list[list[int]]
    rows: list[list[int]]
    nm: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        for name in ("in_features", "out_features", "tile"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"expected `{name}` as a positive int, got {v!r}")
        self.cols = _int_lists("cols", self.cols)
        self.rows = _int_lists("rows", self.rows)
        if len(self.cols) != len(self.rows):
            raise ValueError(
                f"expected one row list per tile, got {len(self.cols)} column lists and {len(self.rows)} row lists"
            )
        if self.nm is not None:
            nm = tuple(self.nm)
            if len(nm) != 2 or not all(isinstance(v, int) for v in nm) or not 0 < nm[0] <= nm[1]:
                raise ValueError(f"expected `nm` as (n, m) with 0 < n <= m, e.g. (2, 4), or None; got {self.nm!r}")
            self.nm = (int(nm[0]), int(nm[1]))
        seen: set[int] = set()
        for t, (cols, rows) in enumerate(zip(self.cols, self.rows)):
            if len(cols) > self.tile:
                raise ValueError(f"tile {t} has {len(cols)} columns, expected at most tile={self.tile}")
            for what, ids, bound in (("column", cols, self.out_features), ("row", rows, self.in_features)):
                if ids and (ids[0] < 0 or ids[-1] >= bound):
                    bad = [i for i in ids if not 0 <= i < bound]
                    raise ValueError(f"tile {t}: {what} ids {bad[:5]} out of range [0, {bound})")
                if any(a >= b for a, b in zip(ids, ids[1:])):
                    raise ValueError(f"tile {t}: {what} ids must be strictly ascending, got {ids[:8]}...")
            clash = seen.intersection(cols)
            if clash:
                raise ValueError(
                    f"tiles must be disjoint: columns {sorted(clash)[:5]} of tile {t} are in an earlier tile"
                )
            seen.update(cols)
            if self.nm is not None and len(rows) % self.nm[1]:
                raise ValueError(
                    f"tile {t} keeps {len(rows)} rows, expected a multiple of m={self.nm[1]} for nm={self.nm}; pad the "
                    "row list with ids whose weights are zero (TileLayout.from_mask does)"
                )

    # -- JSON ---------------------------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The layout as a JSON-able dict (ints and lists of ints; ``nm`` as ``[n, m]`` or None)."""
        return {
            "in_features": self.in_features,
            "out_features": self.out_features,
            "tile": self.tile,
            "cols": [list(c) for c in self.cols],
            "rows": [list(r) for r in self.rows],
            "nm": list(self.nm) if self.nm is not None else None,
        }

    @classmethod
    def from_dict(cls, d: dict) -> TileLayout:
        """Inverse of ``to_dict``; validates like the constructor."""
        if isinstance(d, TileLayout):
            return d
        if not isinstance(d, dict):
            raise ValueError(f"expected a dict from TileLayout.to_dict(), got {type(d).__name__}")
        missing = [k for k in ("in_features", "out_features", "tile", "cols", "rows") if k not in d]
        if missing:
            raise ValueError(f"TileLayout dict is missing keys {missing}; got keys {sorted(d)}")
        nm = d.get("nm")
        return cls(d["in_features"], d["out_features"], d["tile"], d["cols"], d["rows"], tuple(nm) if nm else None)

    # -- derived ------------------------------------------------------------------------------------------------------
    @classmethod
    def from_mask(cls, mask_nk: Tensor, tile: int = 128, nm: tuple[int, int] | None = None) -> TileLayout:
        """Derive a layout that covers any ``(N, K)`` mask.

        Kept columns are the columns with a non-zero, in order, cut every ``tile`` kept columns; a tile's rows are
        the union of the non-zero rows of its columns. With ``nm = (n, m)`` the row list is padded to a multiple of m
        with the smallest unused row ids (their weights are zero), and the mask must then be n:m along the compacted
        rows of every tile; a mask pruned with TVW on a different row list may fail that check: pass the pruner's own
        layout (``module.tvw_layout``) instead.

        Raises:
            ValueError: the mask is not 2-D, or not n:m in the compacted order.
        """
        if mask_nk.dim() != 2:
            raise ValueError(f"expected a mask of shape (N, K), got {tuple(mask_nk.shape)}")
        if isinstance(tile, bool) or not isinstance(tile, int) or tile < 1:
            raise ValueError(f"expected `tile` as a positive int, got {tile!r}")
        mask = mask_nk.detach().to("cpu", torch.bool)
        n_out, k_in = mask.shape
        kept = mask.any(dim=1).nonzero().view(-1)
        cols, rows = [], []
        for tcols in kept.split(tile):
            sub = mask[tcols]  # [N_t, K]
            used = sub.any(dim=0)
            if nm is not None and int(used.sum()) % nm[1]:
                pad = nm[1] - int(used.sum()) % nm[1]
                free = (~used).nonzero().view(-1)
                if free.numel() < pad:
                    raise ValueError(f"cannot pad a tile's {int(used.sum())} rows to a multiple of m={nm[1]}: K={k_in}")
                used = used.clone()
                used[free[:pad]] = True
            trows = used.nonzero().view(-1)
            if nm is not None:
                n, m = nm
                per_group = sub[:, trows].view(len(tcols), -1, m).sum(dim=2)  # [N_t, K_t / m]
                if bool((per_group > n).any()):
                    raise ValueError(
                        f"the mask is not {n}:{m} along the compacted rows of tile {len(cols)} (a group of {m} kept "
                        f"rows holds {int(per_group.max())} non-zeros in one column); pass the pruner's layout "
                        "(module.tvw_layout) or nm=None"
                    )
            cols.append(tcols.tolist())
            rows.append(trows.tolist())
        return cls(k_in, n_out, tile, cols, rows, tuple(nm) if nm is not None else None)

    @property
    def num_tiles(self) -> int:
        """Number of tiles."""
        return len(self.cols)

    def mask(self) -> Tensor:
        """Bool ``(N, K)`` mask of the tile structure (rows × cols of each tile), without the n:m part."""
        mask = torch.zeros(self.out_features, self.in_features, dtype=torch.bool)
        for cols, rows in zip(self.cols, self.rows):
            if cols and rows:
                mask[torch.tensor(cols)[:, None], torch.tensor(rows)[None, :]] = True
        return mask

    def nnz(self) -> int:
        """Stored weights: Σ_t K_t·N_t, times n/m for TVW (the non-zeros the n:m format keeps)."""
        dense = sum(len(c) * len(r) for c, r in zip(self.cols, self.rows))
        return dense * self.nm[0] // self.nm[1] if self.nm is not None else dense

    def density(self) -> float:
        """Fraction of the ``N × K`` weights that may be non-zero: the tile structure's density (``mask().mean()``),
        times n/m for TVW (TW 50% + 2:4 → 0.25)."""
        return self.nnz() / (self.in_features * self.out_features)

    def pruned_cols(self) -> list[int]:
        """Output columns in no tile (they output the bias)."""
        kept = {c for cols in self.cols for c in cols}
        return [c for c in range(self.out_features) if c not in kept]
