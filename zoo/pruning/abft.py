"""Algorithm-based fault tolerance (ABFT) for structured-sparse GEMMs, with an N:M emulator that injects faults.

Paper: C. Peltekis, D. Filippas, G. Dimitrakopoulos, "Error Checking for Sparse Systolic Tensor Arrays",
arXiv:2402.10850 (2024). No official code is public; this is a reconstruction from the abstract and the notes in
``papers/tvw.md`` (the paper's exact scheme is unconfirmed), written for this package (MIT).

Both checks wrap ``y = x Wᵀ`` (x [M, K], W [N, K], y [M, N]) computed by any GEMM callable, so they compose with
every execution path (the TW/TVW reference, CPU and Triton paths, the N:M emulator below, a plain matmul):

* **Input (column) checksum**, :func:`checked_gemm`: per block of R rows, IC = 𝟏ᵀ x_block goes through the *same*
  GEMM as one more row (for integers as several rows of balanced base-2⁸ digits), predicted P = IC Wᵀ, actual
  S = 𝟏ᵀ y_block. An error confined to one output element or to one data row moves S and not P, so it is always
  seen (up to the float threshold). **Blind spot:** a fault in a stored weight or index (or in the selection mux)
  acts on the checksum row too, so P and S move together and agree.
* **Row checksum**, :func:`row_checksum` + :func:`check_rows`: per tile t of output columns, w̄_t = Σ_{n∈t} W[n, :]
  from the clean weights (one dense extra column), predicted (x w̄_t)[m], actual Σ_{n∈t} y[m, n]. It catches
  corrupted stored weights and indices; errors within one row of one tile can cancel.

Integers (int8 × int8 → int32) compare exactly, modulo 2³² when the GEMM output is int32 (wrap-around accumulators).
Floats compare against a rounding-error bound τ (see :func:`checked_gemm` and :func:`check_rows`).

The emulator (:func:`pack_nm`, :func:`nm_gemm`, :class:`Fault`) models an N:M systolic array: every kept weight is
stored with its position in its group of M, and the position drives a multiplexer that selects the x entry.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor

__all__ = [
    "ABFTReport",
    "checked_gemm",
    "RowChecksum",
    "row_checksum",
    "check_rows",
    "balanced_digits",
    "recombine_digits",
    "NMPacked",
    "nm_mask",
    "pack_nm",
    "nm_gemm",
    "Fault",
    "FAULT_SITES",
    "apply_fault",
    "inject_random_fault",
]

Gemm = Callable[[Tensor], Tensor]

# Unit roundoff u = 2^-p (p = significand bits) of the float formats the checks accept.
_UNIT_ROUNDOFF = {torch.float64: 2.0**-53, torch.float32: 2.0**-24, torch.float16: 2.0**-11, torch.bfloat16: 2.0**-8}
_INT_INPUTS = (torch.int8, torch.int16, torch.int32)
_INT_OF_SIZE = {1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}

FAULT_SITES = ("output", "accumulator", "weight", "index")


# ---------------------------------------------------------------------------------------------------------------------
# Reports and shared helpers
# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class ABFTReport:
    """Outcome of one checksum comparison (a handful of small tensors; no copies of x or y).

    Attributes:
        scheme: ``"input"`` (entries are (row block, output column)) or ``"row"`` (entries are (row, column tile)).
        residual: actual − predicted checksum, [B, N] for ``"input"``, [M, T] for ``"row"``; int64 for integers
            (reduced to [−2³¹, 2³¹) when compared modulo 2³²), float64 for floats.
        threshold: τ, float64 with the shape of ``residual`` (zero for integers).
        mismatch: bool, ``~(|residual| <= threshold)``; non-finite residuals (inf, NaN) count as mismatches.
        detected: whether any entry mismatches.
        modulus: 2³² (or 2^bits of the GEMM's integer output) when compared with wrap-around, else ``None``.
    """

    scheme: str
    residual: Tensor
    threshold: Tensor
    mismatch: Tensor
    detected: bool
    modulus: int | None = None

    @property
    def alarms(self) -> Tensor:
        """Indices [A, 2] of the mismatching entries: (block, column) or (row, tile)."""
        return self.mismatch.nonzero()


def _wrap(t: Tensor, bits: int) -> Tensor:
    """Two's-complement reduction of an int64 tensor to [−2^(bits−1), 2^(bits−1)), i.e. t mod 2^bits, signed."""
    half = 1 << (bits - 1)
    return torch.remainder(t + half, 1 << bits) - half


def _block_sums(t: Tensor, block_rows: int) -> Tensor:
    """Sums of consecutive blocks of ``block_rows`` rows (the last one ragged): [M, ...] → [⌈M/R⌉, ...]."""
    m = t.shape[0]
    ids = torch.arange(m, device=t.device) // block_rows
    out = torch.zeros((-(-m // block_rows), *t.shape[1:]), dtype=t.dtype, device=t.device)
    return out.index_add_(0, ids, t)


def _check_x(x: Tensor, name: str = "x") -> None:
    if x.dim() != 2 or x.shape[0] == 0:
        raise ValueError(f"expected {name} of shape [M, K] with M >= 1, got {tuple(x.shape)}; flatten leading dims")
    if not x.is_floating_point() and x.dtype not in _INT_INPUTS:
        raise TypeError(
            f"expected {name} of dtype int8/int16/int32 or float16/bfloat16/float32/float64, got {x.dtype}; "
            "cast unsigned activations to int8 (7-bit ReLU outputs fit) or int16"
        )


def _check_out(y: Tensor, rows: int, x: Tensor, what: str) -> None:
    if y.dim() != 2 or y.shape[0] != rows:
        raise ValueError(
            f"expected the {what} to return [{rows}, N] for an input of shape {tuple(x.shape)}, got {tuple(y.shape)}; "
            "the callable must map [M, K] to [M, N] for any M"
        )
    if x.is_floating_point() != y.is_floating_point():
        raise TypeError(
            f"the {what} returned {y.dtype} for {x.dtype} inputs; integer inputs need an integer output (int32 "
            "accumulate) and float inputs a float output"
        )


def _roundoffs(x: Tensor, y: Tensor, unit_roundoff: float | None) -> tuple[float, float, float]:
    """(u_acc, u_in, u_out): accumulator, input format, and output rounding when coarser than the accumulator."""
    u_acc = unit_roundoff if unit_roundoff is not None else (2.0**-53 if x.dtype == torch.float64 else 2.0**-24)
    u_in = _UNIT_ROUNDOFF[x.dtype]
    u_out = _UNIT_ROUNDOFF.get(y.dtype, 0.0)
    return u_acc, u_in, (u_out if u_out > u_acc else 0.0)


# ---------------------------------------------------------------------------------------------------------------------
# Digit-serial arithmetic
# ---------------------------------------------------------------------------------------------------------------------


def balanced_digits(v: Tensor, bits: int = 8) -> Tensor:
    """Split integers into balanced base-2^b digits, the operands of a b-bit datapath.

    v = Σ_d 2^{b·d} D_d with D_d ∈ [−2^{b−1}, 2^{b−1} − 1] (for b = 8: [−128, 127], i.e. int8). The number of digits D
    is the fewest that represent every entry: ⌈(b + ⌈log₂ R⌉)/b⌉ for the input checksum of R b-bit rows in the worst
    case, 2 for R = 196 rows of int8.

    Args:
        v: integer tensor of any shape with |v| < 2⁶².
        bits: digit width b (1 ≤ b ≤ 32).

    Returns:
        int64 [D, *v.shape], least significant digit first.
    """
    if v.is_floating_point() or v.is_complex() or v.dtype == torch.bool:
        raise TypeError(f"expected an integer tensor, got {v.dtype}; round floats explicitly before splitting")
    if not 1 <= bits <= 32:
        raise ValueError(f"expected 1 <= bits <= 32, got {bits}")
    base, half = 1 << bits, 1 << (bits - 1)
    rest = v.to(torch.int64)
    digits = []
    for _ in range(64 // bits + 2):
        digit = torch.remainder(rest + half, base) - half
        digits.append(digit)
        rest = torch.div(rest - digit, base, rounding_mode="floor")  # exact: rest − digit ≡ 0 (mod base)
        if not bool(rest.any()):
            return torch.stack(digits)
    raise ValueError(f"values too large to split into {bits}-bit digits (need |v| < 2^62), max |v| = {v.abs().max()}")


def recombine_digits(parts: Tensor, bits: int = 8, modulus_bits: int | None = None) -> Tensor:
    """Recombine digit-serial partial results: P = Σ_d 2^{b·d} parts_d (Horner, exact in int64).

    With ``modulus_bits = w`` every step is reduced to [−2^{w−1}, 2^{w−1}), which gives P mod 2^w as a w-bit
    wrap-around accumulator would hold it, and never overflows int64.

    Args:
        parts: integer [D, ...], e.g. ``D_d Wᵀ`` for every digit row D_d of :func:`balanced_digits`.
        bits: digit width b.
        modulus_bits: reduce modulo 2^w (signed), or ``None`` for the exact value.

    Returns:
        int64 [...].
    """
    if parts.is_floating_point() or parts.dim() == 0:
        raise TypeError(f"expected integer digit results [D, ...], got {parts.dtype} of shape {tuple(parts.shape)}")
    acc = torch.zeros(parts.shape[1:], dtype=torch.int64, device=parts.device)
    for d in range(parts.shape[0] - 1, -1, -1):
        acc = acc * (1 << bits) + parts[d].to(torch.int64)
        if modulus_bits is not None:
            acc = _wrap(acc, modulus_bits)
    return acc


# ---------------------------------------------------------------------------------------------------------------------
# Input (column) checksum
# ---------------------------------------------------------------------------------------------------------------------


def checked_gemm(
    gemm: Gemm,
    x: Tensor,
    *,
    abs_gemm: Gemm | None = None,
    c: float = 4.0,
    block_rows: int | None = None,
    unit_roundoff: float | None = None,
) -> tuple[Tensor, ABFTReport]:
    """Run ``gemm`` once on x plus its input-checksum rows and compare predicted and actual column sums.

    Per block b of R consecutive rows, IC_b = 𝟏ᵀ x_b [K] is appended to x and goes through the same (bias-free) GEMM:
    predicted P_b = IC_b Wᵀ [N], actual S_b = 𝟏ᵀ y_b [N]; in exact arithmetic P_b = S_b.

    * Integers: IC is wider than the input format, so it goes in as balanced digits (:func:`balanced_digits`,
      base 2^bits of x), one row per digit and block, and P_b = Σ_d 2^{8d} (D_{b,d} Wᵀ) (:func:`recombine_digits`).
      The comparison is exact; modulo 2^w when the GEMM returns w-bit integers (int32: P ≡ S mod 2³², valid when
      the accumulators wrap around). Threshold 0.
    * Floats: IC is summed in float64 and rounded to x's dtype. Alarm where |S_b,n − P_b,n| > τ_b,n with
      τ_b,n = c · (K·u + u_in + u_out) · A_b,n,   A_b = (𝟏ᵀ|x_b|) |W|ᵀ,
      from |fl(xᵀw) − xᵀw| ≤ γ_K |x|ᵀ|w| (γ_K ≈ K·u) applied to P and to every row of S; u is the accumulator's unit
      roundoff (2⁻²⁴ for fp32, also for fp16/bf16 inputs with fp32 accumulate; 2⁻⁵³ for float64), u_in the
      rounding of IC to x's dtype (2⁻¹¹ fp16, 2⁻⁸ bf16), u_out the rounding of y when its dtype is coarser than the
      accumulator. c ≥ 2 makes τ a bound to first order in u; the default 4 leaves margin. K is the full K, an upper
      bound of the kept K of any sparse pattern. A comes from ``abs_gemm`` (the same GEMM with |W|) applied to the
      rows 𝟏ᵀ|x_b|. Without it A is *estimated* as √K · Σ_{m∈b} |y_m,n|, which bounds A when the K products of an
      output cancel no worse than random signs; a looser, not guaranteed threshold: pass ``abs_gemm`` where a false
      alarm must be impossible.

    Detection: an error confined to one output element, or to one row of a block, is detected when it moves S by more
    than τ − |clean residual| (always, for integers). Several errors in one column of a block can cancel. Faults in
    the stored weights or indices pass through the data rows and the checksum rows alike, so P and S agree: this
    scheme cannot see them (use :func:`check_rows`).

    Args:
        gemm: ``[M', K] → [M', N]``, the bias-free (sparse) product x Wᵀ for any number of rows M'.
        x: [M, K], integer (int8/int16/int32) or float (fp16/bf16/fp32/fp64).
        abs_gemm: the same product with |W|, for the float threshold.
        c: safety factor of the float threshold.
        block_rows: R, rows per checksum block (default: all M rows, one block).
        unit_roundoff: override of u, e.g. 2⁻¹¹ for a TF32 GEMM.

    Returns:
        ``(y, report)`` with y = gemm(x) [M, N] (the data rows of the single GEMM call) and an input-scheme
        :class:`ABFTReport` of shape [⌈M/R⌉, N].
    """
    _check_x(x)
    m, k = x.shape
    r = m if block_rows is None else int(block_rows)
    if r < 1:
        raise ValueError(f"expected block_rows >= 1 (or None for all rows), got {block_rows}")
    if not x.is_floating_point():
        bits = torch.iinfo(x.dtype).bits
        digits = balanced_digits(_block_sums(x.to(torch.int64), r), bits)  # [D, B, K]
        n_digits, n_blocks = digits.shape[:2]
        y_all = gemm(torch.cat([x, digits.reshape(n_digits * n_blocks, k).to(x.dtype)]))
        _check_out(y_all, m + n_digits * n_blocks, x, "gemm")
        y = y_all[:m]
        out_bits = torch.iinfo(y_all.dtype).bits
        modulus_bits = None if out_bits >= 64 else out_bits
        predicted = recombine_digits(y_all[m:].reshape(n_digits, n_blocks, -1), bits, modulus_bits)
        residual = _block_sums(y.to(torch.int64), r) - predicted
        if modulus_bits is not None:
            residual = _wrap(residual, modulus_bits)
        mismatch = residual != 0
        threshold = torch.zeros(residual.shape, dtype=torch.float64, device=x.device)
        modulus = None if modulus_bits is None else 1 << modulus_bits
        return y, ABFTReport("input", residual, threshold, mismatch, bool(mismatch.any()), modulus)

    ic = _block_sums(x.to(torch.float64), r)  # [B, K]
    ic_row = ic.to(x.dtype)
    if not bool(torch.isfinite(ic_row).all()) and bool(torch.isfinite(ic).all()):
        raise ValueError(
            f"the input checksum row overflows {x.dtype} (max |1ᵀx| = {ic.abs().max():.3g} over blocks of {r} rows); "
            "pass a smaller block_rows"
        )
    y_all = gemm(torch.cat([x, ic_row]))
    _check_out(y_all, m + ic.shape[0], x, "gemm")
    y = y_all[:m]
    u_acc, u_in, u_out = _roundoffs(x, y, unit_roundoff)
    residual = _block_sums(y.to(torch.float64), r) - y_all[m:].to(torch.float64)
    if abs_gemm is not None:
        magnitude = abs_gemm(_block_sums(x.to(torch.float64).abs(), r).to(x.dtype))
        _check_out(magnitude, ic.shape[0], x, "abs_gemm")
        magnitude = magnitude.to(torch.float64)
    else:
        magnitude = math.sqrt(k) * _block_sums(y.to(torch.float64).abs(), r)
    threshold = c * (k * u_acc + u_in + u_out) * magnitude
    mismatch = ~(residual.abs() <= threshold)
    return y, ABFTReport("input", residual, threshold, mismatch, bool(mismatch.any()))


# ---------------------------------------------------------------------------------------------------------------------
# Row checksum (per tile of output columns)
# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class RowChecksum:
    """Row checksums of a clean weight W [N, K], one per tile t of output columns.

    Attributes:
        wbar: w̄_t = Σ_{n∈t} W[n, :], [T, K]; int64 for integer weights, float64 otherwise.
        wabs: Σ_{n∈t} |W[n, :]|, [T, K] float64, the magnitudes behind the float threshold.
        tile: tile id of every output column, [N] int64; −1 for a column in no tile (not checked).
    """

    wbar: Tensor
    wabs: Tensor
    tile: Tensor

    @property
    def n_tiles(self) -> int:
        """Number of tiles T."""
        return self.wbar.shape[0]


def _tile_ids(n: int, tiles: int | Sequence[Sequence[int] | Tensor], device: torch.device) -> tuple[Tensor, int]:
    if isinstance(tiles, int):
        if tiles < 1:
            raise ValueError(f"expected a tile width >= 1, got {tiles}")
        return torch.arange(n, device=device) // tiles, -(-n // tiles)
    tile = torch.full((n,), -1, dtype=torch.int64, device=device)
    for t, group in enumerate(tiles):
        cols = torch.as_tensor(group, dtype=torch.int64, device=device).reshape(-1)
        if cols.numel() and (int(cols.min()) < 0 or int(cols.max()) >= n):
            raise ValueError(f"tile {t} holds columns outside [0, {n}): {cols.tolist()}")
        if cols.unique().numel() != cols.numel() or bool((tile[cols] >= 0).any()):
            raise ValueError(f"tile {t} repeats a column or shares one with an earlier tile; tiles must be disjoint")
        tile[cols] = t
    return tile, len(tiles)


def row_checksum(weight: Tensor, tiles: int | Sequence[Sequence[int] | Tensor]) -> RowChecksum:
    """Precompute the row checksums w̄_t = W_t 𝟏 from clean weights (do this when packing, before any fault).

    Args:
        weight: clean W [N, K] (a ``Linear.weight``; pruned entries zero).
        tiles: a tile width G (contiguous tiles of G output columns, the last one ragged) or a list of disjoint
            column groups (e.g. the kept columns of every TW tile); columns in no group are not checked.

    Returns:
        The :class:`RowChecksum` for :func:`check_rows`.
    """
    if weight.dim() != 2:
        raise ValueError(f"expected weight of shape [N, K], got {tuple(weight.shape)}")
    n, k = weight.shape
    tile, n_tiles = _tile_ids(n, tiles, weight.device)
    cols = (tile >= 0).nonzero().squeeze(1)
    w = weight.to(torch.float64 if weight.is_floating_point() else torch.int64)
    wbar = torch.zeros(n_tiles, k, dtype=w.dtype, device=w.device).index_add_(0, tile[cols], w[cols])
    wabs = torch.zeros(n_tiles, k, dtype=torch.float64, device=w.device)
    wabs.index_add_(0, tile[cols], w[cols].to(torch.float64).abs())
    return RowChecksum(wbar, wabs, tile)


def check_rows(
    x: Tensor, y: Tensor, checksum: RowChecksum, *, c: float = 4.0, unit_roundoff: float | None = None
) -> ABFTReport:
    """Compare the row sums of every output tile with the dense extra column x w̄_t.

    Predicted P[m, t] = (x w̄_t)[m], actual S[m, t] = Σ_{n∈t} y[m, n], both computed here beside the GEMM (int64 or
    float64, the role of the extra checksum column). Integers compare exactly, modulo 2^w for a w-bit integer y.
    Floats alarm where |S − P| > τ[m, t] = c · (K·u + u_out) · Σ_k |x[m, k]| Σ_{n∈t} |W[n, k]| (c ≥ 1 is a bound to
    first order in u; u, u_out as in :func:`checked_gemm`).

    Because w̄ comes from the clean weights, a corrupted stored weight or index moves S and not P: detected. Any error
    confined to one output column is detected; errors within one row of one tile can cancel.

    Args:
        x: the GEMM input [M, K].
        y: the GEMM output to check [M, N], from any execution path.
        checksum: :func:`row_checksum` of the clean weight.
        c: safety factor of the float threshold.
        unit_roundoff: override of the accumulator's u.

    Returns:
        A row-scheme :class:`ABFTReport` of shape [M, T].
    """
    _check_x(x)
    m, k = x.shape
    n = checksum.tile.numel()
    if y.dim() != 2 or tuple(y.shape) != (m, n) or checksum.wbar.shape[1] != k:
        raise ValueError(
            f"expected y of shape [{m}, {n}] and a checksum over K = {k}, got y {tuple(y.shape)} and "
            f"K = {checksum.wbar.shape[1]}; build the checksum from the weight [N, K] of this GEMM"
        )
    _check_out(y, m, x, "GEMM output y")
    cols = (checksum.tile >= 0).nonzero().squeeze(1)
    tids = checksum.tile[cols]
    if not x.is_floating_point():
        if checksum.wbar.is_floating_point():
            raise TypeError("integer inputs need a checksum of integer weights; build it from the int weight")
        predicted = x.to(torch.int64) @ checksum.wbar.t()
        actual = torch.zeros(m, checksum.n_tiles, dtype=torch.int64, device=y.device)
        actual.index_add_(1, tids, y[:, cols].to(torch.int64))
        out_bits = torch.iinfo(y.dtype).bits
        residual = actual - predicted
        modulus = None
        if out_bits < 64:
            residual, modulus = _wrap(residual, out_bits), 1 << out_bits
        mismatch = residual != 0
        threshold = torch.zeros(residual.shape, dtype=torch.float64, device=x.device)
        return ABFTReport("row", residual, threshold, mismatch, bool(mismatch.any()), modulus)
    xd = x.to(torch.float64)
    predicted = xd @ checksum.wbar.to(torch.float64).t()
    actual = torch.zeros(m, checksum.n_tiles, dtype=torch.float64, device=y.device)
    actual.index_add_(1, tids, y[:, cols].to(torch.float64))
    u_acc, _, u_out = _roundoffs(x, y, unit_roundoff)
    threshold = c * (k * u_acc + u_out) * (xd.abs() @ checksum.wabs.t())
    residual = actual - predicted
    mismatch = ~(residual.abs() <= threshold)
    return ABFTReport("row", residual, threshold, mismatch, bool(mismatch.any()))


# ---------------------------------------------------------------------------------------------------------------------
# N:M structured-sparse GEMM emulator
# ---------------------------------------------------------------------------------------------------------------------


def _check_nm(weight: Tensor, n: int, m: int) -> None:
    if weight.dim() != 2:
        raise ValueError(f"expected weight of shape [N, K], got {tuple(weight.shape)}")
    if not 1 <= n <= m <= 256:
        raise ValueError(f"expected an N:M pattern with 1 <= N <= M <= 256, got {n}:{m}")
    if weight.shape[1] % m:
        raise ValueError(f"expected K divisible by M = {m}, got K = {weight.shape[1]}; pad K with zero columns")


def nm_mask(weight: Tensor, n: int, m: int) -> Tensor:
    """N:M mask along K: in every group of m consecutive entries of a row keep the n largest |w| (ties: lower index).

    Args:
        weight: W [N_out, K], K divisible by m.
        n: kept entries per group.
        m: group size.

    Returns:
        bool [N_out, K].
    """
    _check_nm(weight, n, m)
    rows, k = weight.shape
    magnitude = weight.to(torch.float64).abs().reshape(rows, k // m, m)  # float64: |−128| of int8 stays exact
    keep = torch.sort(-magnitude, dim=-1, stable=True).indices[..., :n]
    return torch.zeros_like(magnitude, dtype=torch.bool).scatter_(-1, keep, True).reshape(rows, k)


@dataclass(frozen=True)
class NMPacked:
    """A weight [N, K] under an N:M pattern along K, as an N:M systolic array stores it.

    Attributes:
        values: kept values [N, K/m, n] in the weight's dtype; zero in the spare slots of groups with fewer than n kept.
        indices: position of every slot inside its group of m, [N, K/m, n] uint8 (kept positions ascending, then the
            spare slots on unused positions); it drives the selection mux: slot j of group g multiplies x[:, g·m + idx].
        n: kept entries per group.
        m: group size.
    """

    values: Tensor
    indices: Tensor
    n: int
    m: int

    @property
    def shape(self) -> tuple[int, int]:
        """(N, K) of the dense weight."""
        return self.values.shape[0], self.values.shape[1] * self.m

    @property
    def index_bits(self) -> int:
        """Width of one stored index, ⌈log₂ m⌉ (at least 1)."""
        return max(1, math.ceil(math.log2(self.m)))

    def columns(self) -> Tensor:
        """Global K index of every slot, [N, K/m · n] int64 in array order (group-major): g·m + idx."""
        g = torch.arange(self.values.shape[1], device=self.indices.device).view(1, -1, 1)
        return (g * self.m + self.indices.to(torch.int64)).reshape(self.values.shape[0], -1)

    def dense(self) -> Tensor:
        """The masked dense weight [N, K] (zeros at pruned positions)."""
        n_out, k = self.shape
        out = torch.zeros(n_out, k, dtype=self.values.dtype, device=self.values.device)
        return out.scatter_(1, self.columns(), self.values.reshape(n_out, -1))

    def abs(self) -> NMPacked:
        """The same pattern with |values| (int8 widened to int16 so that |−128| is exact): the ``abs_gemm`` weight."""
        values = self.values.to(torch.int16) if self.values.dtype == torch.int8 else self.values
        return replace(self, values=values.abs())


def pack_nm(weight: Tensor, n: int, m: int, mask: Tensor | None = None) -> NMPacked:
    """Pack W [N, K] into N:M values and indices.

    Args:
        weight: W [N, K] (a ``Linear.weight``), K divisible by m.
        n: kept entries per group.
        m: group size.
        mask: bool [N, K] with at most n kept per group (default :func:`nm_mask`).

    Returns:
        The :class:`NMPacked` weight; ``packed.dense() == weight * mask``.
    """
    _check_nm(weight, n, m)
    rows, k = weight.shape
    if mask is None:
        mask = nm_mask(weight, n, m)
    elif tuple(mask.shape) != (rows, k):
        raise ValueError(f"expected a mask of shape {(rows, k)}, got {tuple(mask.shape)}")
    mask3 = mask.to(torch.bool).reshape(rows, k // m, m)
    most = int(mask3.sum(-1).max())
    if most > n:
        raise ValueError(f"the mask keeps up to {most} of {m} entries in a group, {n}:{m} allows {n}; prune it first")
    position = torch.arange(m, device=weight.device)
    order = ((~mask3).to(torch.int64) * m + position).argsort(dim=-1)[..., :n]  # kept positions first, ascending
    kept = torch.where(mask3, weight.reshape(rows, k // m, m), torch.zeros((), dtype=weight.dtype))
    return NMPacked(kept.gather(-1, order).contiguous(), order.to(torch.uint8), n, m)


def _acc_dtype(x: Tensor, packed: NMPacked) -> torch.dtype:
    if x.is_floating_point() != packed.values.is_floating_point():
        raise TypeError(f"x ({x.dtype}) and the packed weight ({packed.values.dtype}) must both be integer or float")
    if not x.is_floating_point():
        return torch.int64
    return torch.float64 if torch.float64 in (x.dtype, packed.values.dtype) else torch.float32


def _finish(acc: Tensor) -> Tensor:
    """Exact int64 sums → int32 with two's-complement wrap-around (the int32 accumulator); floats unchanged."""
    return _wrap(acc, 32).to(torch.int32) if acc.dtype == torch.int64 else acc


def nm_gemm(x: Tensor, packed: NMPacked, fault: Fault | None = None) -> Tensor:
    """y = x Wᵀ as an N:M systolic array computes it: every stored index selects one x entry (the mux), times the value.

    y[m, j] = Σ_g Σ_{s<n} x[m, g·M + idx[j, g, s]] · val[j, g, s]. Integer inputs (int8 × int8): exact products and
    sums, returned as int32 with wrap-around; float inputs: products and sums in float32 (fp16/bf16 inputs with fp32
    accumulate; float64 if either operand is float64), returned in that dtype.

    Args:
        x: [M, K].
        packed: :func:`pack_nm` weight.
        fault: an optional :class:`Fault` (see :func:`apply_fault`).

    Returns:
        y [M, N] (int32 or the float accumulator's dtype).
    """
    _check_x(x)
    acc = _acc_dtype(x, packed)
    n_out, k = packed.shape
    if x.shape[1] != k:
        raise ValueError(f"expected x of shape [M, {k}] for a weight of shape {(n_out, k)}, got {tuple(x.shape)}")
    cols = packed.columns()  # [N, K'] global K index of every slot
    narrow = acc == torch.int64 and x.element_size() <= 2 and packed.values.element_size() <= 2
    product = torch.int32 if narrow else acc  # a 16 × 16-bit product fits int32; the sums are int64, exact
    vals = packed.values.reshape(n_out, -1).to(product)
    xa = x.to(product)
    chunk = max(1, (1 << 22) // max(1, x.shape[0] * cols.shape[1]))
    y = torch.empty(x.shape[0], n_out, dtype=acc, device=x.device)
    for s in range(0, n_out, chunk):
        selected = xa[:, cols[s : s + chunk]]  # [M, chunk, K']: the mux outputs
        y[:, s : s + chunk] = (selected * vals[s : s + chunk]).sum(-1, dtype=acc)
    y = _finish(y)
    return y if fault is None else apply_fault(x, packed, y, fault)


# ---------------------------------------------------------------------------------------------------------------------
# Faults
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    """One hardware fault of the N:M GEMM emulator.

    Sites: ``"output"``, bit ``bit`` of y[row, col]; ``"accumulator"``, bit ``bit`` of the partial sum of y[row, col]
    after ``step + 1`` of its K' = K·n/m multiply-accumulate steps (array order, group-major); ``"weight"``, bit
    ``bit`` of the stored value in slot ``slot`` of group ``group`` of output column ``col`` (it hits every row);
    ``"index"``, bit ``bit`` of that slot's stored index (the mux then selects another x entry, or a zero input when
    the index leaves [0, m)). Bits of floats are bits of their IEEE encoding; integers are two's complement.

    Attributes:
        site: one of :data:`FAULT_SITES`.
        row: output row (output, accumulator).
        col: output column.
        step: accumulation step (accumulator).
        group: group along K (weight, index).
        slot: slot within the group (weight, index).
        bit: bit position (0 = least significant).
        value: ``None`` flips the bit (transient); 0 or 1 sticks it (stuck-at, permanent).
    """

    site: str
    row: int = 0
    col: int = 0
    step: int = 0
    group: int = 0
    slot: int = 0
    bit: int = 0
    value: int | None = None


def _with_bit(t: Tensor, bit: int, value: int | None) -> Tensor:
    """t (any dtype) with one bit of its encoding flipped (value None) or set to value."""
    width = t.element_size() * 8
    as_int = t.view(_INT_OF_SIZE[t.element_size()])
    mask = (1 << bit) - ((1 << width) if bit == width - 1 else 0)  # the bit as a signed width-bit integer
    if value is None:
        out = as_int ^ mask
    elif value:
        out = as_int | mask
    else:
        out = as_int & ~mask
    return out.view(t.dtype)


def _int_with_bit(v: int, bit: int, value: int | None) -> int:
    if value is None:
        return v ^ (1 << bit)
    return v | (1 << bit) if value else v & ~(1 << bit)


def _validate_fault(fault: Fault, x: Tensor, packed: NMPacked, y: Tensor) -> None:
    n_out, _ = packed.shape
    groups, slots = packed.values.shape[1:]
    bound = {
        "output": {"row": y.shape[0], "col": n_out, "bit": y.element_size() * 8},
        "accumulator": {"row": y.shape[0], "col": n_out, "step": groups * slots, "bit": y.element_size() * 8},
        "weight": {"col": n_out, "group": groups, "slot": slots, "bit": packed.values.element_size() * 8},
        "index": {"col": n_out, "group": groups, "slot": slots, "bit": packed.index_bits},
    }
    if fault.site not in bound:
        raise ValueError(f"expected a fault site in {FAULT_SITES}, got {fault.site!r}")
    for name, hi in bound[fault.site].items():
        if not 0 <= getattr(fault, name) < hi:
            raise ValueError(f"{fault.site} fault: expected 0 <= {name} < {hi}, got {getattr(fault, name)} in {fault}")
    if fault.value not in (None, 0, 1):
        raise ValueError(f"expected fault.value None (flip), 0 or 1 (stuck-at), got {fault.value!r}")
    if tuple(y.shape) != (x.shape[0], n_out):
        raise ValueError(f"expected the clean output of shape {(x.shape[0], n_out)}, got {tuple(y.shape)}")


def apply_fault(x: Tensor, packed: NMPacked, y: Tensor, fault: Fault) -> Tensor:
    """``nm_gemm(x, packed, fault)`` from the fault-free ``y = nm_gemm(x, packed)`` in O(M) work.

    A fault touches one output element (output, accumulator) or one output column, all rows (weight, index):
    y'[m, j] = y[m, j] + Δ, with Δ = x[m, k]·(v' − v) for a value v → v' at position k, Δ = (x[m, k'] − x[m, k])·v
    for an index fault selecting k' instead of k, and Δ = p' − p for an accumulator holding p → p' (the rest of the
    accumulation adds the same terms). Integers wrap modulo 2³² (int32); floats add Δ in float64 and round once.

    Args:
        x: the GEMM input [M, K] (including any checksum rows).
        packed: the clean packed weight.
        y: ``nm_gemm(x, packed)`` without fault [M, N].
        fault: the :class:`Fault`.

    Returns:
        A new [M, N] tensor; ``y`` is not modified.
    """
    _validate_fault(fault, x, packed, y)
    acc = _acc_dtype(x, packed)
    wide = torch.int64 if acc == torch.int64 else torch.float64
    out = y.clone()
    j, m = fault.col, packed.m
    if fault.site == "output":
        out[fault.row, j] = _with_bit(y[fault.row, j], fault.bit, fault.value)
        return out
    if fault.site == "accumulator":
        products = x[fault.row, packed.columns()[j]].to(acc) * packed.values[j].reshape(-1).to(acc)
        head = products[: fault.step + 1].sum()  # the register after step + 1 MACs
        if acc == torch.int64:
            held = _wrap(head, 32).to(torch.int32)
            delta = _with_bit(held, fault.bit, fault.value).to(torch.int64) - held.to(torch.int64)
        else:
            held = head.to(y.dtype)
            delta = _with_bit(held, fault.bit, fault.value).to(torch.float64) - held.to(torch.float64)
        changed = y[fault.row, j].to(wide) + delta
        out[fault.row, j] = _finish(changed) if acc == torch.int64 else changed.to(y.dtype)
        return out
    g, s = fault.group, fault.slot
    value = packed.values[j, g, s]
    k_old = g * m + int(packed.indices[j, g, s])
    if fault.site == "weight":
        new = _with_bit(value, fault.bit, fault.value)
        delta = x[:, k_old].to(wide) * new.to(wide) - x[:, k_old].to(wide) * value.to(wide)
    else:
        idx_new = _int_with_bit(int(packed.indices[j, g, s]), fault.bit, fault.value)
        zero = torch.zeros(x.shape[0], dtype=wide, device=x.device)  # a select past m reads a tied-low input
        selected = x[:, g * m + idx_new].to(wide) if idx_new < m else zero
        delta = (selected - x[:, k_old].to(wide)) * value.to(wide)
    changed = y[:, j].to(wide) + delta
    out[:, j] = _finish(changed) if acc == torch.int64 else changed.to(y.dtype)
    return out


def inject_random_fault(
    kind: str, shape: tuple[int, int], generator: torch.Generator | None = None, *, packed: NMPacked
) -> Fault:
    """Draw one random fault of a kind, uniformly over its sites and bits.

    Output and accumulator faults are transient bit flips (32-bit int32/fp32 outputs, 64-bit for float64); weight and
    index faults are stuck-at-0 or -1 (equally likely) on a stored bit, so some leave the value unchanged.

    Args:
        kind: one of :data:`FAULT_SITES`.
        shape: (rows, N) of the output over which output/accumulator faults are drawn; pass the data rows M only to
            keep faults off the checksum rows.
        generator: random source (fixed seed for reproducible campaigns).
        packed: the packed weight (gives K' = K·n/m, value width and index width).

    Returns:
        A :class:`Fault`.
    """
    n_out, _ = packed.shape
    if len(shape) != 2 or shape[1] != n_out or shape[0] < 1:
        raise ValueError(f"expected shape (rows, {n_out}) with rows >= 1, got {tuple(shape)}")

    def draw(hi: int) -> int:
        return int(torch.randint(hi, (1,), generator=generator))

    groups, slots = packed.values.shape[1:]
    out_bits = 64 if packed.values.dtype == torch.float64 else 32
    if kind == "output":
        return Fault("output", row=draw(shape[0]), col=draw(n_out), bit=draw(out_bits))
    if kind == "accumulator":
        return Fault("accumulator", row=draw(shape[0]), col=draw(n_out), step=draw(groups * slots), bit=draw(out_bits))
    if kind in ("weight", "index"):
        bits = packed.values.element_size() * 8 if kind == "weight" else packed.index_bits
        col, group, slot, bit = draw(n_out), draw(groups), draw(slots), draw(bits)
        return Fault(kind, col=col, group=group, slot=slot, bit=bit, value=draw(2))
    raise ValueError(f"expected a fault kind in {FAULT_SITES}, got {kind!r}")
