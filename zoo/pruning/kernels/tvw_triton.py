"""Triton kernel of the tile-wise (TW / TVW) sparse GEMM.

Papers: Guo et al., SC 2020 (arXiv 2008.13006; upstream ``StreamMaskedGEMM`` in clevercool/TileSparsity,
Apache-2.0) and arXiv 2402.10876 (TVW). Independent implementation, MIT licensed.

y[M×N] = x[M×K]·(W ⊙ mask)[K×N] + b on ``zoo.pruning.tvw.TVWPacked``. One program per (M-block, tile, N-block of
the tile): it loads only the tile's kept K rows of x (through the tile's row-id list; x is passed transposed,
[K, M], so that each gathered row is a contiguous, vectorisable run along M), multiplies them by the tile's
compact weight block [K_t × N_t] with an fp32 accumulator, adds the bias and stores into the tile's original output
columns (col-id list). Output columns in no tile get the bias in a separate step (one ``index_copy_``). When every
tile keeps all K rows (column-only TW, ``col_share=1``) there is no gather: x is read in place, row-major.

For n:m tiles (TVW) the kernel reads only the stored non-zeros [K_t·n/m × N_t] and their int8 positions and
rebuilds the dense [BLOCK_K × BLOCK_N] block in registers (``tl.where`` over the n slots) before ``tl.dot``; the
multiply itself is dense (Triton exposes no sparse tensor-core MMA), so this saves weight traffic, not MACs.

Plain pointer arithmetic only (no block pointers, no autotuning): runs under ``TRITON_INTERPRET=1`` and on Triton
3.6+. fp32 uses ``input_precision="ieee"`` unless ``torch.backends.cuda.matmul.allow_tf32`` is set; fp16/bf16
inputs accumulate in fp32 (bf16 ``tl.dot`` is wrong under the interpreter: test it on GPUs only).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import triton
import triton.language as tl
from torch import Tensor

from zoo.pruning.tvw import TVWPacked

__all__ = ["tvw_matmul_triton"]

ALIGN = 16  # elements: every tile's block starts and every block row begins on a 16-element boundary


def _aligned(packed: TVWPacked) -> tuple[Tensor, Tensor | None, Tensor]:
    """(values, meta, tiles) re-laid for the kernel: each tile's block [R_t × N_t] (R_t = K_t, or K_t·n/m stored rows)
    padded to a row length of a multiple of ``ALIGN`` and stored at a multiple of ``ALIGN``, so that the kernel can
    issue wide loads (the packed format's group blocks have arbitrary widths N_g). Built once and cached on
    ``packed`` while its values are unchanged (same storage, same version counter)."""
    vals, meta = packed.values, packed.meta
    key = (vals.data_ptr(), vals._version, vals.device, vals.dtype, None if meta is None else meta._version)
    if packed._kernel is not None and packed._kernel[0] == key:
        return packed._kernel[1]
    n_nz, m_nz = packed.layout.nm or (1, 1)
    out_v, out_m, tiles, off = [], [], [], 0
    for rs, k_t, cs, n_t, vo, ld in packed.tiles.tolist():
        r = k_t * n_nz // m_nz
        width = -(-n_t // ALIGN) * ALIGN
        span = (r - 1) * ld + n_t
        out_v.append(F.pad(vals.narrow(0, vo, span).as_strided((r, n_t), (ld, 1)), (0, width - n_t)).reshape(-1))
        if meta is not None:
            out_m.append(F.pad(meta.narrow(0, vo, span).as_strided((r, n_t), (ld, 1)), (0, width - n_t)).reshape(-1))
        tiles.append([rs, k_t, cs, n_t, off, width])
        off += r * width
    res = (
        torch.cat(out_v).detach(),
        torch.cat(out_m) if meta is not None else None,
        torch.tensor(tiles, dtype=torch.int32, device=vals.device).view(-1, 6),
    )
    packed._kernel = (key, res)
    return res


@triton.jit
def _tvw_kernel(
    x_ptr,
    w_ptr,
    meta_ptr,
    bias_ptr,
    y_ptr,
    row_ids_ptr,
    col_ids_ptr,
    tiles_ptr,
    M,
    stride_xm,
    stride_xk,
    stride_ym,
    stride_yn,
    HAS_BIAS: tl.constexpr,
    SPARSE: tl.constexpr,
    ALL_ROWS: tl.constexpr,
    COMPACT_OUT: tl.constexpr,
    NM_N: tl.constexpr,
    NM_M: tl.constexpr,
    IEEE: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    ALIGN: tl.constexpr,
):
    pid_m = tl.program_id(0)
    tile = tl.program_id(1)
    pid_n = tl.program_id(2)
    entry = tiles_ptr + tile * 6  # row start, K_t, col start, N_t, value offset, ld
    row_start = tl.load(entry)
    k_t = tl.load(entry + 1)
    col_start = tl.load(entry + 2)
    n_t = tl.load(entry + 3)
    val_off = tl.multiple_of(tl.load(entry + 4), ALIGN).to(tl.int64)  # _aligned(): vectorisable weight loads
    ld = tl.multiple_of(tl.load(entry + 5), ALIGN).to(tl.int64)
    n0 = pid_n * BLOCK_N
    if n0 < n_t:  # tiles narrower than the grid's N extent: the extra programs do nothing
        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_n = n0 + tl.arange(0, BLOCK_N)
        m_ok = offs_m < M
        n_ok = offs_n < n_t
        x_rows = x_ptr + offs_m.to(tl.int64)[:, None] * stride_xm  # [BLOCK_M, 1]
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for k0 in range(0, k_t, BLOCK_K):
            offs_k = k0 + tl.arange(0, BLOCK_K)
            k_ok = offs_k < k_t
            if ALL_ROWS:  # every tile keeps all K rows in order: no gather
                rows = offs_k
            else:
                rows = tl.load(row_ids_ptr + row_start + offs_k, mask=k_ok, other=0)
            a = tl.load(x_rows + rows[None, :] * stride_xk, mask=m_ok[:, None] & k_ok[None, :], other=0.0)
            wk_ok = k_ok[:, None] & n_ok[None, :]
            if SPARSE:
                # compacted row k = group·m + p; its value is the stored row group·n + s whose position is p
                group = offs_k // NM_M
                p = offs_k % NM_M
                w = tl.zeros((BLOCK_K, BLOCK_N), dtype=w_ptr.dtype.element_ty)
                for s in tl.static_range(NM_N):
                    off = val_off + (group * NM_N + s).to(tl.int64)[:, None] * ld + offs_n[None, :]
                    v = tl.load(w_ptr + off, mask=wk_ok, other=0.0)
                    pos = tl.load(meta_ptr + off, mask=wk_ok, other=-1)
                    w = tl.where(pos.to(tl.int32) == p[:, None], v, w)
            else:
                off = val_off + offs_k.to(tl.int64)[:, None] * ld + offs_n[None, :]
                w = tl.load(w_ptr + off, mask=wk_ok, other=0.0)
            if IEEE:
                acc = tl.dot(a, w, acc, input_precision="ieee")
            else:
                acc = tl.dot(a, w, acc)
        cols = tl.load(col_ids_ptr + col_start + offs_n, mask=n_ok, other=0)
        if HAS_BIAS:
            acc += tl.load(bias_ptr + cols, mask=n_ok, other=0.0).to(tl.float32)[None, :]
        if COMPACT_OUT:  # y is the compact [M, kept] output: contiguous columns, wide stores
            y = y_ptr + offs_m.to(tl.int64)[:, None] * stride_ym + (col_start + offs_n)[None, :] * stride_yn
        else:
            y = y_ptr + offs_m.to(tl.int64)[:, None] * stride_ym + cols[None, :] * stride_yn
        tl.store(y, acc.to(y_ptr.dtype.element_ty), mask=m_ok[:, None] & n_ok[None, :])


def _pow2(v: int) -> int:
    return 1 << max(v - 1, 0).bit_length()


def tvw_matmul_triton(
    x: Tensor,
    packed: TVWPacked,
    bias: Tensor | None = None,
    *,
    block_m: int = 128,
    block_n: int | None = None,
    block_k: int = 64,
    num_warps: int | None = None,
    num_stages: int = 3,
    compact_out: bool | None = None,
) -> Tensor:
    """y = x · (W ⊙ mask)ᵀ + b with the Triton kernel; the signature of ``zoo.pruning.tvw.tvw_matmul`` (no backward).

    Args:
        x: ``[..., K]``, fp32, fp16 or bf16, the dtype of ``packed.values``.
        packed: the compact weights (``zoo.pruning.tvw.pack``), on x's device.
        bias: ``(N,)`` or None.
        block_m, block_n, block_k: program tile sizes (powers of two ≥ 16; ``block_n`` defaults to the layout's tile
            width capped at 128; ``block_k`` must be a multiple of m for n:m layouts).
        num_warps, num_stages: launch parameters (GPU only). The defaults are the fastest of the sweep in
            ``scripts/bench_tvw.py --sweep`` on an H200 (fp16, BERT-base FFN shapes, 75% sparse).
        compact_out: write the computed columns to a compact [M, kept] buffer and scatter it into y with one
            ``index_copy_`` (default: when the output order is not the identity) instead of scattered stores.

    Returns:
        ``[..., N]`` in x's dtype.
    """
    k, n = packed.in_features, packed.out_features
    if x.shape[-1] != k:
        raise ValueError(f"expected x of shape [..., K={k}], got {tuple(x.shape)}")
    if x.dtype != packed.values.dtype:
        raise ValueError(
            f"x is {x.dtype} but the packed weights are {packed.values.dtype}; convert one (module.to(dtype))"
        )
    if x.device != packed.values.device:
        raise ValueError(f"x is on {x.device} but the packed weights on {packed.values.device}; move one")
    nm = packed.layout.nm
    block_n = block_n or min(128, max(16, _pow2(packed.layout.tile)))
    if nm is not None and block_k % nm[1]:
        raise ValueError(f"block_k={block_k} must be a multiple of m={nm[1]} for nm={nm}")
    lead = x.shape[:-1]
    x2 = x.reshape(-1, k)  # [M, K], any strides
    m = x2.shape[0]
    y = torch.empty(m, n, dtype=x.dtype, device=x.device)
    if packed.bias_cols.numel():
        if bias is None:
            y.index_fill_(1, packed.bias_cols, 0)
        else:
            y.index_copy_(1, packed.bias_cols, bias.to(y.dtype).index_select(0, packed.bias_cols).expand(m, -1))
    if packed.tiles.shape[0] and m:
        values, meta, tiles = _aligned(packed)
        widest = max(len(c) for c in packed.layout.cols)
        grid = (triton.cdiv(m, block_m), tiles.shape[0], triton.cdiv(widest, block_n))
        ieee = x.dtype == torch.float32 and not torch.backends.cuda.matmul.allow_tf32
        all_rows = all(g.all_rows for g in packed.groups)
        # gathered rows of x^T [K, M] are contiguous along M (coalesced loads); x itself when nothing is gathered
        xs = x2 if all_rows else x2.t().contiguous()
        stride_m, stride_k = (x2.stride(0), x2.stride(1)) if all_rows else (1, m)
        compact = packed.inv is not None if compact_out is None else compact_out
        out = torch.empty(m, packed.kept, dtype=x.dtype, device=x.device) if compact else y
        _tvw_kernel[grid](
            xs,
            values,
            meta if meta is not None else values,
            bias if bias is not None else values,
            out,
            packed.row_ids,
            packed.order,
            tiles,
            m,
            stride_m,
            stride_k,
            out.stride(0),
            out.stride(1),
            HAS_BIAS=bias is not None,
            SPARSE=nm is not None,
            ALL_ROWS=all_rows,
            COMPACT_OUT=compact,
            NM_N=nm[0] if nm else 1,
            NM_M=nm[1] if nm else 1,
            IEEE=ieee,
            BLOCK_M=block_m,
            BLOCK_N=block_n,
            BLOCK_K=block_k,
            ALIGN=ALIGN,
            num_warps=num_warps or (8 if nm is not None and block_n >= 128 else 4),
            num_stages=num_stages,
        )
        if compact:
            y.index_copy_(1, packed.col_ids, out)
    return y.view(*lead, n)
