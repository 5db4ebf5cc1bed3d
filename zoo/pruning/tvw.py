"""Execution of tile-wise (TW) and tile-vector-wise (TVW) sparse layers: the compact format, ``TVWLinear`` /
``TVWConv2d``, the reference / CPU / Triton paths and ``to_tvw``.

Papers: Guo et al., "Accelerating Sparse DNN Models without Hardware-Support via Tile-Wise Sparsity" (SC 2020,
arXiv 2008.13006; upstream clevercool/TileSparsity, Apache-2.0, whose CUDA kernel runs one dense GEMM per tile of
kept columns over the tile's kept rows) and "Accelerating Sparse DNNs Based on Tiled GEMM" (arXiv 2402.10876, TVW:
2:4 inside the tiles). Independent implementation, MIT licensed.

GEMM view: y[M×N] = x[M×K]·W[K×N] + b, the torch weight ``(N, K)`` = Wᵀ. For a ``TileLayout``, tile t computes

    y[:, cols_t] = x[:, rows_t] · W_t + b[cols_t],   W_t = W[rows_t, cols_t] of shape [K_t × N_t],

and every output column in no tile (or in a tile without rows) outputs its bias. Tiles whose row lists are identical
(e.g. no K pruning) are merged into one group and computed by a single GEMM.

Compact format (``TVWPacked``), per group g of tiles with K_g rows and N_g columns:

* dense tiles: the block W_g [K_g × N_g], row-major, at the group's offset in the flat ``values``;
* n:m tiles (TVW): only the non-zeros, [K_g·n/m × N_g] (stored row j·n + s is the s-th kept weight of group j of m
  compacted rows), and ``meta`` (int8, same shape): the position 0..m−1 of each stored value inside its group.

Paths of ``tvw_matmul`` (one signature): ``"reference"`` (masked dense product, the oracle), ``"cpu"`` (per group:
gather of x's kept columns, one ``addmm`` into a compact output, then one gather that restores the column order;
pure PyTorch, so it also runs on CUDA and has a backward), ``"triton"`` (``zoo.pruning.kernels.tvw_triton``,
imported on first use), ``"auto"`` (triton for CUDA inputs when triton is installed and no gradient is needed, cpu
otherwise). CPUs have no 2:4 hardware: the CPU path multiplies the decompressed tiles, zeros included, so TVW runs at
the speed of its TW part there (``scripts/bench_tvw.py`` measures both).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.pruning.layout import TileLayout
from zoo.pruning.reference import masked_linear

__all__ = [
    "PATHS",
    "TVWPacked",
    "pack",
    "unpack",
    "tvw_matmul",
    "TVWLinear",
    "TVWConv2d",
    "TVWConv1d",
    "to_tvw",
    "tvw_layouts",
]

PATHS = ("auto", "reference", "cpu", "triton")


# -- the compact format -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Group:
    """Tiles with one row list, computed by one GEMM: rows ``row_ids[rs:rs+k]``, columns ``col_ids[cs:cs+n]``."""

    tiles: tuple[int, ...]
    rs: int
    k: int  # K_g, kept rows
    cs: int
    n: int  # N_g, kept columns of all its tiles
    vs: int  # offset in the flat values
    all_rows: bool  # rows == range(K): no gather


@dataclass(frozen=True)
class _Plan:
    """Everything about the format that follows from the layout alone (Python ints, no tensors)."""

    groups: tuple[_Group, ...]
    row_ids: tuple[int, ...]
    col_ids: tuple[int, ...]
    bias_cols: tuple[int, ...]  # pruned columns and columns of tiles without rows
    identity: bool  # col_ids + bias_cols == range(N): the compact output is the output
    tiles: tuple[tuple[int, ...], ...]  # per non-empty tile: row_start, K_t, col_start, N_t, value offset, ld
    numel: int  # stored values


def _plan(layout: TileLayout) -> _Plan:
    n_nz, m_nz = layout.nm or (1, 1)
    bias_cols = set(layout.pruned_cols())
    by_rows: dict[tuple[int, ...], list[int]] = {}
    for t, (cols, rows) in enumerate(zip(layout.cols, layout.rows)):
        if not cols:
            continue
        if not rows:
            bias_cols.update(cols)
            continue
        by_rows.setdefault(tuple(rows), []).append(t)
    groups, row_ids, col_ids, tiles, vs = [], [], [], [], 0
    for rows, members in by_rows.items():
        cols = [c for t in members for c in layout.cols[t]]
        k, n = len(rows), len(cols)
        group = _Group(
            tiles=tuple(members),
            rs=len(row_ids),
            k=k,
            cs=len(col_ids),
            n=n,
            vs=vs,
            all_rows=k == layout.in_features,
        )
        off = 0
        for t in members:
            nt = len(layout.cols[t])
            tiles.append((group.rs, k, group.cs + off, nt, vs + off, n))
            off += nt
        groups.append(group)
        row_ids += rows
        col_ids += cols
        vs += k * n_nz // m_nz * n
    bias_cols = sorted(bias_cols)
    identity = col_ids + bias_cols == list(range(layout.out_features))
    return _Plan(tuple(groups), tuple(row_ids), tuple(col_ids), tuple(bias_cols), identity, tuple(tiles), vs)


@dataclass
class TVWPacked:
    """A layer's weights in the compact TW / TVW format (see the module docstring).

    Attributes:
        layout: the tile structure.
        values: flat ``[nnz]``; per group the compact block [K_g × N_g] (n:m: its non-zeros [K_g·n/m × N_g]).
        meta: int8 ``[nnz]`` for n:m layouts (position of each stored value in its group of m rows), else None.
        row_ids: int64, the kept rows of every group, concatenated.
        order: int64 ``(N,)``, the compact output order: the kept columns of every group (its tiles in order), then
            the columns that output the bias (``col_ids`` and ``bias_cols`` are its two parts).
        inv: int64 ``(N,)``, position of every output column in ``order``; None when ``order`` is the identity.
        tiles: int32 ``[T, 6]`` for the kernel, one row per non-empty tile: row start (in ``row_ids``), K_t, column
            start (in ``order``), N_t, offset of the tile's first value, leading dimension (its group's N_g).
        groups: the Python view of the same structure used by the CPU path.
    """

    layout: TileLayout
    values: Tensor
    meta: Tensor | None
    row_ids: Tensor
    order: Tensor
    inv: Tensor | None
    tiles: Tensor
    groups: tuple[_Group, ...]
    _blocks: list[Tensor] | None = field(default=None, repr=False, compare=False)
    _kernel: tuple | None = field(default=None, repr=False, compare=False)  # the Triton kernel's aligned copy

    @property
    def in_features(self) -> int:
        return self.layout.in_features

    @property
    def out_features(self) -> int:
        return self.layout.out_features

    @property
    def kept(self) -> int:
        """Number of computed output columns (the length of ``col_ids``)."""
        return sum(g.n for g in self.groups)

    @property
    def col_ids(self) -> Tensor:
        """int64, the computed output columns in compact order."""
        return self.order[: self.kept]

    @property
    def bias_cols(self) -> Tensor:
        """int64, the output columns that output the bias (pruned, or in a tile without rows)."""
        return self.order[self.kept :]

    @classmethod
    def from_tensors(cls, layout: TileLayout, values: Tensor, meta: Tensor | None = None) -> TVWPacked:
        """Wrap stored ``values`` (and ``meta`` for n:m) of ``layout``; the index tensors go to ``values.device``."""
        plan = _plan(layout)
        if values.dim() != 1 or values.numel() != plan.numel:
            raise ValueError(f"expected flat values of {plan.numel} elements for the layout, got {tuple(values.shape)}")
        if (layout.nm is not None) != (meta is not None):
            need, got = ("needs", "None") if layout.nm else ("takes no", "a tensor")
            raise ValueError(f"a layout with nm={layout.nm} {need} meta; got meta={got}")
        if meta is not None and meta.shape != values.shape:
            raise ValueError(f"expected meta of the values' shape {tuple(values.shape)}, got {tuple(meta.shape)}")
        idx = _index_tensors(plan, values.device)
        return cls(layout, values, meta, *idx, groups=plan.groups)

    def blocks(self) -> list[Tensor]:
        """The dense compact block W_g [K_g × N_g] of every group (views of ``values`` for dense tiles; decompressed,
        zeros included, for n:m tiles, cached unless gradients flow through the values)."""
        if self._blocks is not None:
            return self._blocks
        out = []
        for g in self.groups:
            if self.meta is None:
                out.append(self.values[g.vs : g.vs + g.k * g.n].view(g.k, g.n))
                continue
            n_nz, m_nz = self.layout.nm
            ks = g.k * n_nz // m_nz
            nz = self.values[g.vs : g.vs + ks * g.n].view(ks, g.n)
            pos = self.meta[g.vs : g.vs + ks * g.n].view(ks, g.n).long()
            base = torch.arange(ks, device=nz.device) // n_nz * m_nz  # first compacted row of each stored row's group
            out.append(nz.new_zeros(g.k, g.n).scatter(0, base[:, None] + pos, nz))
        if not (self.values.requires_grad and torch.is_grad_enabled()) or self.meta is None:
            self._blocks = out
        return out


def _index_tensors(plan: _Plan, device: torch.device) -> tuple[Tensor, Tensor, Tensor | None, Tensor]:
    """row_ids, order, inv, tiles of ``TVWPacked``."""
    row_ids = torch.tensor(plan.row_ids, dtype=torch.long, device=device)
    order = torch.tensor(plan.col_ids + plan.bias_cols, dtype=torch.long, device=device)
    inv = (
        None
        if plan.identity
        else torch.empty_like(order).index_copy_(0, order, torch.arange(order.numel(), device=device))
    )
    tiles = torch.tensor(plan.tiles, dtype=torch.int32, device=device).view(-1, 6)
    return row_ids, order, inv, tiles


def _nm_compress(block: Tensor, n: int, m: int, where: str) -> tuple[Tensor, Tensor]:
    """[K_g × N_g] with at most n non-zeros per group of m rows → (non-zeros [K_g·n/m × N_g], int8 positions)."""
    k, cols = block.shape
    groups = block.view(k // m, m, cols)
    nonzero = groups != 0
    count = nonzero.sum(dim=1)
    if bool((count > n).any()):
        j, c = (count > n).nonzero()[0].tolist()
        raise ValueError(
            f"{where}: column {c} has {int(count[j, c])} non-zeros in compacted rows {j * m}..{j * m + m - 1}, "
            f"expected at most {n} for nm=({n}, {m}); apply the n:m mask to the weight first (pack(weight, layout, "
            "mask=mask))"
        )
    pos = torch.arange(m, device=block.device).view(1, m, 1)
    key = torch.where(nonzero, pos, pos + m)  # non-zeros first, then zeros, each in row order
    idx = key.topk(n, dim=1, largest=False).values % m
    idx = idx.sort(dim=1).values  # [K_g/m, n, N_g], ascending positions
    vals = groups.gather(1, idx)
    return vals.reshape(k // m * n, cols), idx.reshape(k // m * n, cols).to(torch.int8)


def pack(weight_nk: Tensor, layout: TileLayout, mask: Tensor | None = None) -> TVWPacked:
    """Pack a ``(N, K)`` weight into the compact format of ``layout``.

    Weights outside the layout's tiles are dropped. With n:m tiles, every group of m compacted rows of a column must
    hold at most n non-zeros (multiply by the pruner's mask first, or pass it as ``mask``).

    Args:
        weight_nk: ``(N, K)`` (``nn.Linear.weight``; conv weights reshaped to ``(cout, cin·kh·kw)``).
        layout: the tile structure.
        mask: optional bool ``(N, K)``; the weight is multiplied by it first. It must lie inside the layout's tiles.

    Raises:
        ValueError: shape mismatch, a mask entry outside the tiles, or a tile that is not n:m.
    """
    shape = (layout.out_features, layout.in_features)
    if tuple(weight_nk.shape) != shape:
        raise ValueError(f"expected a weight of shape (N, K) = {shape} for this layout, got {tuple(weight_nk.shape)}")
    weight_nk = weight_nk.detach()
    if mask is not None:
        if tuple(mask.shape) != shape:
            raise ValueError(f"expected a mask of shape (N, K) = {shape}, got {tuple(mask.shape)}")
        mask = mask.to(weight_nk.device, torch.bool)
        outside = mask & ~layout.mask().to(mask.device)
        if bool(outside.any()):
            n, k = outside.nonzero()[0].tolist()
            raise ValueError(
                f"the mask keeps {int(outside.sum())} weights outside the layout's tiles (first at column {n}, row "
                f"{k}); derive the layout from this mask (TileLayout.from_mask) or fix the mask"
            )
        weight_nk = weight_nk * mask.to(weight_nk.dtype)
    plan = _plan(layout)
    row_ids, order, inv, tiles = _index_tensors(plan, weight_nk.device)
    values, metas = [], []
    for g in plan.groups:
        rows = row_ids[g.rs : g.rs + g.k]
        cols = order[g.cs : g.cs + g.n]
        block = weight_nk.index_select(0, cols).index_select(1, rows).t()  # [K_g, N_g]
        if layout.nm is not None:
            vals, meta = _nm_compress(block, *layout.nm, where=f"tiles {list(g.tiles)}")
            metas.append(meta.reshape(-1))
            block = vals
        values.append(block.reshape(-1))
    values = torch.cat(values) if values else weight_nk.new_zeros(0)
    meta = None
    if layout.nm is not None:
        meta = torch.cat(metas) if metas else torch.zeros(0, dtype=torch.int8, device=weight_nk.device)
    return TVWPacked(layout, values.contiguous(), meta, row_ids, order, inv, tiles, plan.groups)


def unpack(packed: TVWPacked) -> Tensor:
    """The masked ``(N, K)`` weight back from the compact format (zeros outside the tiles; exact round trip)."""
    w = packed.values.new_zeros(packed.out_features, packed.in_features)
    for g, block in zip(packed.groups, packed.blocks()):
        rows = packed.row_ids[g.rs : g.rs + g.k]
        cols = packed.col_ids[g.cs : g.cs + g.n]
        w[cols[:, None], rows[None, :]] = block.t()
    return w


# -- execution --------------------------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _has_triton() -> bool:
    return importlib.util.find_spec("triton") is not None


def _needs_grad(x: Tensor, packed: TVWPacked, bias: Tensor | None) -> bool:
    if not torch.is_grad_enabled():
        return False
    return x.requires_grad or packed.values.requires_grad or (bias is not None and bias.requires_grad)


def tvw_matmul(x: Tensor, packed: TVWPacked, bias: Tensor | None = None, path: str = "auto") -> Tensor:
    """y = x · (W ⊙ mask)ᵀ + b on the compact format.

    Args:
        x: ``[..., K]``.
        packed: the layer's compact weights (``pack``).
        bias: ``(N,)`` or None.
        path: ``"auto"``, ``"reference"``, ``"cpu"`` or ``"triton"`` (see the module docstring).

    Returns:
        ``[..., N]`` in x's dtype; pruned output columns hold the bias (0 without bias).
    """
    k, n = packed.in_features, packed.out_features
    if x.shape[-1] != k:
        raise ValueError(f"expected x of shape [..., K={k}], got {tuple(x.shape)}")
    if bias is not None and tuple(bias.shape) != (n,):
        raise ValueError(f"expected bias of shape ({n},), got {tuple(bias.shape)}")
    if path not in PATHS:
        raise ValueError(f"expected path in {PATHS}, got {path!r}")
    if x.dtype != packed.values.dtype:
        raise ValueError(
            f"x is {x.dtype} but the packed weights are {packed.values.dtype}; convert one (e.g. module.to(x.dtype))"
        )
    grad = _needs_grad(x, packed, bias)
    if path == "auto":
        path = "triton" if x.is_cuda and not grad and _has_triton() else "cpu"
    if path == "reference":
        return masked_linear(x, unpack(packed), None, bias)
    if path == "triton":
        if grad:
            raise RuntimeError(
                "the Triton TVW kernel has no backward; use path='cpu' (or 'auto') for training, or run under "
                "torch.no_grad()"
            )
        if not _has_triton():
            raise ModuleNotFoundError("path='triton' needs triton; install the extra with `pip install zoo[kernels]`")
        from zoo.pruning.kernels.tvw_triton import tvw_matmul_triton

        return tvw_matmul_triton(x, packed, bias)
    return _cpu_matmul(x, packed, bias, grad)


def _cpu_matmul(x: Tensor, packed: TVWPacked, bias: Tensor | None, grad: bool) -> Tensor:
    """Per group: gather x's kept columns once (none when the group keeps every row), one ``addmm`` with the compact
    block written straight into its slice of the compact output [M × N] (kept columns, then the bias columns), and
    one gather along N that puts the columns back in order (skipped when the order is the identity).

    Measured on CPU against alternatives: one ``index_copy_`` per tile into the output is slower than the single final
    gather, and ``bmm`` over padded tiles slower than per-group ``addmm``.
    """
    k, n, kept = packed.in_features, packed.out_features, packed.kept
    lead = x.shape[:-1]
    x2 = x.reshape(-1, k)  # [M, K]
    m = x2.shape[0]
    b_c = None if bias is None else bias.index_select(0, packed.order)  # bias in compact order
    parts = []
    y_c = None if grad else x2.new_empty(m, n)  # [M, N] compact order
    for g, w in zip(packed.groups, packed.blocks()):
        xg = x2 if g.all_rows else x2.index_select(1, packed.row_ids[g.rs : g.rs + g.k])  # [M, K_g]
        bg = None if b_c is None else b_c[g.cs : g.cs + g.n]
        if grad:
            parts.append(xg @ w if bg is None else torch.addmm(bg, xg, w))
        elif bg is None:
            torch.mm(xg, w, out=y_c[:, g.cs : g.cs + g.n])
        else:
            torch.addmm(bg, xg, w, out=y_c[:, g.cs : g.cs + g.n])
    if grad:
        if kept < n:
            parts.append(x2.new_zeros(m, n - kept) if b_c is None else b_c[kept:].expand(m, -1))
        y_c = torch.cat(parts, dim=1) if parts else x2.new_zeros(m, n)
    elif kept < n:
        y_c[:, kept:] = 0 if b_c is None else b_c[kept:]
    y = y_c if packed.inv is None else y_c.index_select(1, packed.inv)  # [M, N] original order
    return y.view(*lead, n)


# -- modules ----------------------------------------------------------------------------------------------------------
def _default_meta(layout: TileLayout, plan: _Plan) -> Tensor | None:
    if layout.nm is None:
        return None
    n_nz = layout.nm[0]
    parts = []
    for g in plan.groups:
        ks = g.k * n_nz // layout.nm[1]
        parts.append((torch.arange(ks) % n_nz).to(torch.int8)[:, None].expand(ks, g.n).reshape(-1))
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.int8)


class TVWLinear(nn.Module):
    """A linear layer executed on the compact TW / TVW format.

    y = x · (W ⊙ mask)ᵀ + b, x ``[..., K]`` → y ``[..., N]``; per tile y[:, cols_t] = x[:, rows_t] · W_t + b[cols_t].

    The state dict holds plain tensors only: ``values`` (flat stored weights, a Parameter), ``meta`` (int8, n:m
    layouts only) and ``bias``; the structure is the JSON-able ``layout`` attribute (``layout.to_dict()`` goes into
    ``config.json``). Build the module from the layout, then ``load_state_dict``; or use ``from_linear``.

    Args:
        layout: the tile structure (a ``TileLayout`` or its dict).
        bias: whether the layer has a bias.
        path: execution path for ``forward`` (``"auto"``, ``"reference"``, ``"cpu"``, ``"triton"``).
        device: device of the parameters.
        dtype: dtype of ``values`` and ``bias``.
        abft: check every forward with the input checksum (``zoo.pruning.abft.checked_gemm``): the checksum row
            1ᵀx goes through the same sparse GEMM and is compared with the column sums of the output, with a
            threshold from |W|. The last report is ``abft_report``; ``abft_alarms`` counts calls that mismatched.
            Faults in the stored weights or indices are invisible to this check (they corrupt the checksum row
            the same way); ``zoo.pruning.abft.check_rows`` with clean row sums catches those.
    """

    def __init__(
        self,
        layout: TileLayout | dict,
        bias: bool = True,
        path: str = "auto",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        abft: bool = False,
    ) -> None:
        super().__init__()
        layout = TileLayout.from_dict(layout)
        if path not in PATHS:
            raise ValueError(f"expected path in {PATHS}, got {path!r}")
        self.layout = layout
        self.in_features = layout.in_features
        self.out_features = layout.out_features
        self.path = path
        plan = _plan(layout)
        self._groups = plan.groups
        self.values = nn.Parameter(torch.zeros(plan.numel, device=device, dtype=dtype))
        meta = _default_meta(layout, plan)
        self.register_buffer("meta", None if meta is None else meta.to(device))
        if bias:
            self.bias = nn.Parameter(torch.zeros(layout.out_features, device=device, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        for name, t in zip(("row_ids", "order", "inv", "tiles"), _index_tensors(plan, self.values.device)):
            self.register_buffer(name, t, persistent=False)
        self._cache: tuple[tuple, TVWPacked] | None = None
        self.abft = abft
        self.abft_report = None
        self.abft_alarms = 0

    # -- construction -------------------------------------------------------------------------------------------------
    @classmethod
    def _from_weight(
        cls,
        weight_nk: Tensor,
        bias: Tensor | None,
        mask: Tensor | None,
        layout: TileLayout | dict | None,
        tile: int,
        path: str,
        pack_weights: bool = True,
        **kwargs,
    ) -> TVWLinear:
        weight_nk = weight_nk.detach()
        if layout is None:
            layout = TileLayout.from_mask(mask if mask is not None else weight_nk != 0, tile=tile)
        layout = TileLayout.from_dict(layout)
        module = cls(layout, bias=bias is not None, path=path, device=weight_nk.device, dtype=weight_nk.dtype, **kwargs)
        if not pack_weights:
            return module
        packed = pack(weight_nk, layout, mask=mask)
        with torch.no_grad():
            module.values.copy_(packed.values)
            if packed.meta is not None:
                module.meta.copy_(packed.meta)
            if bias is not None:
                module.bias.copy_(bias.detach())
        return module

    @classmethod
    def from_linear(
        cls,
        linear: nn.Linear,
        mask: Tensor | None = None,
        layout: TileLayout | dict | None = None,
        tile: int = 128,
        path: str = "auto",
    ) -> TVWLinear:
        """Pack an ``nn.Linear`` (weight ``(N, K)``). Without ``layout``, one is derived with
        ``TileLayout.from_mask(mask, tile)``; without ``mask`` either, from the weight's non-zeros."""
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"expected nn.Linear, got {type(linear).__name__}")
        return cls._from_weight(linear.weight, linear.bias, mask, layout, tile, path)

    @classmethod
    def from_conv1d(
        cls,
        conv1d: nn.Module,
        mask: Tensor | None = None,
        layout: TileLayout | dict | None = None,
        tile: int = 128,
        path: str = "auto",
    ) -> TVWLinear:
        """Pack a transformers ``Conv1D`` (GPT-2 style, weight ``(K, N)``, y = x·W + b); ``mask`` in the weight's
        ``(K, N)`` shape."""
        w = conv1d.weight
        if w.dim() != 2:
            raise TypeError(f"expected a transformers Conv1D with a 2-D (K, N) weight, got {tuple(w.shape)}")
        mask_nk = None if mask is None else mask.t()
        return cls._from_weight(w.t(), conv1d.bias, mask_nk, layout, tile, path)

    # -- execution ----------------------------------------------------------------------------------------------------
    def packed(self) -> TVWPacked:
        """The compact weights as a ``TVWPacked`` view of this module's tensors (no copy)."""
        v, meta = self.values, self.meta
        if self.values.requires_grad and torch.is_grad_enabled():
            return self._wrap(v, meta)
        key = (v.data_ptr(), v._version, v.dtype, v.device, None if meta is None else (meta.data_ptr(), meta._version))
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, self._wrap(v.detach(), meta))
        return self._cache[1]

    def _wrap(self, values: Tensor, meta: Tensor | None) -> TVWPacked:
        idx = (self.row_ids, self.order, self.inv, self.tiles)
        return TVWPacked(self.layout, values, meta, *idx, groups=self._groups)

    def forward(self, x: Tensor) -> Tensor:
        """x ``[..., K]`` → ``[..., N]``."""
        if not self.abft:
            return tvw_matmul(x, self.packed(), self.bias, path=self.path)
        from zoo.pruning.abft import checked_gemm

        packed = self.packed()
        magnitude = self._wrap(packed.values.detach().abs(), packed.meta)
        flat = x.reshape(-1, self.in_features)
        y, report = checked_gemm(
            lambda a: tvw_matmul(a, packed, None, path=self.path),
            flat,
            abs_gemm=lambda a: tvw_matmul(a, magnitude, None, path=self.path),
        )
        self.abft_report = report
        self.abft_alarms += int(report.detected)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*x.shape[:-1], self.out_features)

    def weight_nk(self) -> Tensor:
        """The equivalent dense masked weight ``(N, K)``."""
        return unpack(self.packed())

    def to_linear(self) -> nn.Linear:
        """A dense ``nn.Linear`` with the masked weight (for export or checks)."""
        linear = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None)
        linear = linear.to(self.values.device, self.values.dtype)
        with torch.no_grad():
            linear.weight.copy_(self.weight_nk())
            if self.bias is not None:
                linear.bias.copy_(self.bias)
        return linear

    def extra_repr(self) -> str:
        lay = self.layout
        nm = f", nm={lay.nm[0]}:{lay.nm[1]}" if lay.nm else ""
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, tiles={lay.num_tiles}, "
            f"tile={lay.tile}{nm}, density={lay.density():.4f}, bias={self.bias is not None}, path={self.path!r}"
        )


def _pair(v: int | tuple[int, ...]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


class TVWConv2d(TVWLinear):
    """A 2-D convolution executed as im2col (``F.unfold``) + the TVW GEMM.

    x ``[B, cin, H, W]`` → cols ``[B, L, K = cin·kh·kw]`` → y ``[B, L, cout]`` → ``[B, cout, H_out, W_out]``; equals
    ``F.conv2d(x, W ⊙ mask, b, stride, padding, dilation)`` with the weight's ``(cout, cin·kh·kw)`` GEMM view. Only
    ``groups=1`` and zero padding.

    Args:
        layout: the tile structure of the ``(cout, cin·kh·kw)`` view.
        in_channels: cin.
        kernel_size: (kh, kw).
        stride, padding, dilation: as in ``nn.Conv2d`` (padding as ints).
        bias, path, device, dtype: as in ``TVWLinear``.
    """

    def __init__(
        self,
        layout: TileLayout | dict,
        in_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        bias: bool = True,
        path: str = "auto",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(layout, bias=bias, path=path, device=device, dtype=dtype)
        self.in_channels = in_channels
        self.out_channels = self.out_features
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride)
        self.padding = _pair(padding)
        self.dilation = _pair(dilation)
        expected = in_channels * self.kernel_size[0] * self.kernel_size[1]
        if expected != self.in_features:
            raise ValueError(
                f"expected a layout with K = in_channels·kh·kw = {expected}, got in_features={self.in_features}"
            )

    _conv_type: type[nn.Module] = nn.Conv2d

    @classmethod
    def from_conv(
        cls,
        conv: nn.Conv1d | nn.Conv2d,
        mask: Tensor | None = None,
        layout: TileLayout | dict | None = None,
        tile: int = 128,
        path: str = "auto",
    ) -> TVWConv2d:
        """Pack an ``nn.Conv2d`` (``TVWConv1d.from_conv``: an ``nn.Conv1d``); ``mask`` in the weight's shape or its
        ``(cout, cin·kh·kw)`` GEMM view."""
        if type(conv) is not cls._conv_type:
            raise TypeError(f"expected {cls._conv_type.__name__}, got {type(conv).__name__}")
        _, w_nk, mask_nk, extra = _gemm_view(type(conv).__name__, conv, mask)
        return cls._from_weight(w_nk, conv.bias, mask_nk, layout, tile, path, **extra)

    def _conv(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        cols = F.unfold(x, self.kernel_size, self.dilation, self.padding, self.stride)  # [B, K, L]
        y = tvw_matmul(cols.transpose(1, 2), self.packed(), self.bias, path=self.path)  # [B, L, N]
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.kernel_size, self.stride, self.padding, self.dilation
        ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
        wo = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
        return y.transpose(1, 2).reshape(b, self.out_features, ho, wo).contiguous()  # [B, N, H_out, W_out]

    def forward(self, x: Tensor) -> Tensor:
        """x ``[B, cin, H, W]`` (or unbatched ``[cin, H, W]``) → ``[B, cout, H_out, W_out]``."""
        if x.dim() == 3:
            return self._conv(x.unsqueeze(0)).squeeze(0)
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected x of shape [B, {self.in_channels}, H, W], got {tuple(x.shape)}")
        return self._conv(x)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding}, dilation={self.dilation}, " + super().extra_repr()
        )


class TVWConv1d(TVWConv2d):
    """A 1-D convolution as a ``TVWConv2d`` of height 1: x ``[B, cin, L]`` → ``[B, cout, L_out]``; the GEMM view of
    the weight ``(cout, cin, k)`` is ``(cout, cin·k)``."""

    _conv_type = nn.Conv1d

    def forward(self, x: Tensor) -> Tensor:
        """x ``[B, cin, L]`` (or unbatched ``[cin, L]``) → ``[B, cout, L_out]``."""
        if x.dim() == 2:
            return self._conv(x[None, :, None, :])[0, :, 0]
        if x.dim() != 3 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected x of shape [B, {self.in_channels}, L], got {tuple(x.shape)}")
        return self._conv(x.unsqueeze(2)).squeeze(2)


def _conv_args(conv: nn.Conv1d | nn.Conv2d) -> dict:
    if conv.groups != 1:
        raise ValueError(
            f"TVW convolutions support groups=1 only, got groups={conv.groups}; leave grouped/depthwise convolutions "
            "out of the pruning targets"
        )
    if conv.padding_mode != "zeros":
        raise ValueError(f"TVW convolutions support padding_mode='zeros' only, got {conv.padding_mode!r}")
    padding = conv.padding
    if isinstance(padding, str):
        if padding == "valid":
            padding = (0,) * len(conv.kernel_size)
        else:  # "same" (stride 1): total padding d·(k − 1) per side pair, symmetric only when even
            total = [d * (k - 1) for d, k in zip(conv.dilation, conv.kernel_size)]
            if any(t % 2 for t in total):
                raise ValueError(
                    f"padding='same' with kernel {conv.kernel_size} and dilation {conv.dilation} pads asymmetrically, "
                    "which F.unfold cannot do; use explicit integer padding"
                )
            padding = tuple(t // 2 for t in total)
    return {"kernel_size": conv.kernel_size, "stride": conv.stride, "padding": padding, "dilation": conv.dilation}


# -- whole models -----------------------------------------------------------------------------------------------------
def _is_hf_conv1d(module: nn.Module) -> bool:
    return type(module).__name__ == "Conv1D" and type(module).__module__.startswith("transformers")


def _gemm_view(name: str, module: nn.Module, mask: Tensor | None) -> tuple[type, Tensor, Tensor | None, dict]:
    """(TVW class, weight ``(N, K)``, mask ``(N, K)``, constructor extras) of a supported layer."""
    if not (isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)) or _is_hf_conv1d(module)):
        raise TypeError(
            f"{name}: cannot execute a {type(module).__name__} in the TVW format (supported: nn.Linear, nn.Conv1d, "
            "nn.Conv2d with groups=1, transformers Conv1D); remove its mask or leave it out of the pruning targets"
        )
    w = module.weight
    if isinstance(module, nn.Linear):
        return TVWLinear, w, mask, {}
    if isinstance(module, (nn.Conv1d, nn.Conv2d)):
        extra = _conv_args(module)
        cls = TVWConv2d
        if isinstance(module, nn.Conv1d):  # as a conv2d of height 1
            cls, extra = TVWConv1d, {k: (0 if k == "padding" else 1, v[0]) for k, v in extra.items()}
        w_nk = w.reshape(w.shape[0], -1)  # (cout, cin·kh·kw), F.unfold's order
        return (
            cls,
            w_nk,
            None if mask is None else mask.reshape(w_nk.shape),
            {**extra, "in_channels": module.in_channels},
        )
    return TVWLinear, w.t(), None if mask is None else mask.t(), {}  # transformers Conv1D, weight (K, N)


def _convert(
    name: str, module: nn.Module, layout: TileLayout | None, tile: int, path: str, pack_weights: bool
) -> TVWLinear:
    mask = getattr(module, "tvw_mask", None)
    cls, w_nk, mask_nk, extra = _gemm_view(name, module, None)
    if mask is not None:
        if tuple(mask.shape) != tuple(module.weight.shape):
            raise ValueError(
                f"{name}: expected tvw_mask of the weight's shape {tuple(module.weight.shape)}, got {tuple(mask.shape)}"
            )
        mask_nk = _gemm_view(name, module, mask)[2]
    new = cls._from_weight(w_nk, module.bias, mask_nk, layout, tile, path, pack_weights, **extra)
    return new.train(module.training)


def to_tvw(
    model: nn.Module,
    layouts: dict[str, TileLayout | dict] | None = None,
    path: str = "auto",
    tile: int = 128,
    pack_weights: bool = True,
) -> nn.Module:
    """Swap, in place, every layer that carries a mask (or is named in ``layouts``) for its TVW module.

    A pruned layer carries ``tvw_mask`` (bool, the weight's shape) and, for TW/TVW, ``tvw_layout``
    (``TileLayout.to_dict()``), as ``zoo.pruning.patterns`` attaches them. The layout of a layer is, in order:
    ``layouts[name]``, its ``tvw_layout``, or ``TileLayout.from_mask(mask, tile)`` (dense tiles). To rebuild a saved
    TVW model, call ``to_tvw(dense_model, layouts, pack_weights=False)`` with the layouts from ``config.json`` and
    then load the state dict strictly.

    Args:
        model: the model; modified in place.
        layouts: optional layouts by qualified module name.
        path: execution path of the new modules.
        tile: tile width for derived layouts.
        pack_weights: pack each layer's (masked) weights; False builds zero-filled TVW modules of the right shapes
            (a skeleton to load a state dict into).

    Returns:
        The model (the new module itself when ``model`` is a masked layer).

    Raises:
        KeyError: a name in ``layouts`` is not a module of the model.
        TypeError: a masked module is of an unsupported type (named in the message).
    """
    layouts = {name: TileLayout.from_dict(lay) for name, lay in (layouts or {}).items()}
    modules = dict(model.named_modules())
    unknown = sorted(set(layouts) - set(modules))
    if unknown:
        raise KeyError(f"layouts name modules that the model does not have: {unknown[:5]}")
    targets = [
        name
        for name, module in modules.items()
        if not isinstance(module, TVWLinear)
        and (name in layouts or isinstance(getattr(module, "tvw_mask", None), Tensor))
    ]
    for name in targets:
        module = modules[name]
        layout = layouts.get(name)
        if layout is None and getattr(module, "tvw_layout", None) is not None:
            layout = TileLayout.from_dict(module.tvw_layout)
        new = _convert(name or type(module).__name__, module, layout, tile, path, pack_weights)
        if not name:
            return new
        parent_name, _, child = name.rpartition(".")
        setattr(modules[parent_name], child, new)
    return model


def tvw_layouts(model: nn.Module) -> dict[str, dict]:
    """``{qualified name: layout.to_dict()}`` of every TVW module in ``model`` (what ``config.json`` records)."""
    return {name: m.layout.to_dict() for name, m in model.named_modules() if isinstance(m, TVWLinear)}
