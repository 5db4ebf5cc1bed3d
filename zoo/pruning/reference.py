"""Pure-PyTorch reference of the sparse products: the masked dense GEMM every execution path must reproduce.

GEMM view: y[M×N] = x[M×K]·(W ⊙ mask)[K×N] + b, with the torch weight and mask in ``(N, K)`` layout. The compacted
executors (``zoo.pruning.tvw`` CPU path, ``zoo.pruning.kernels.tvw_triton``) are tested against these functions.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

__all__ = ["masked_linear", "masked_conv2d"]


def masked_linear(x: Tensor, weight_nk: Tensor, mask_nk: Tensor | None, bias: Tensor | None = None) -> Tensor:
    """y = x · (W ⊙ mask)ᵀ + b, computed densely (no speedup: this is the oracle, not an executor).

    Args:
        x: ``[..., K]``.
        weight_nk: ``(N, K)``.
        mask_nk: bool ``(N, K)``, or None for an already masked weight.
        bias: ``(N,)`` or None.

    Returns:
        ``[..., N]``; a column whose mask is all False outputs its bias (0 without bias).
    """
    if weight_nk.dim() != 2 or x.shape[-1] != weight_nk.shape[1]:
        raise ValueError(
            f"expected x [..., K] and weight (N, K), got x {tuple(x.shape)}, weight {tuple(weight_nk.shape)}"
        )
    if mask_nk is not None:
        if mask_nk.shape != weight_nk.shape:
            raise ValueError(
                f"expected mask of the weight's shape {tuple(weight_nk.shape)}, got {tuple(mask_nk.shape)}"
            )
        weight_nk = weight_nk * mask_nk.to(weight_nk.dtype)
    return F.linear(x, weight_nk, bias)


def masked_conv2d(
    x: Tensor,
    weight: Tensor,
    mask: Tensor | None,
    bias: Tensor | None = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
) -> Tensor:
    """``F.conv2d`` with the weight ``(cout, cin, kh, kw)`` multiplied by ``mask`` (same shape, or the ``(N, K)`` GEMM
    view ``(cout, cin·kh·kw)``); x ``[B, cin, H, W]`` → ``[B, cout, H_out, W_out]``."""
    if mask is not None:
        weight = weight * mask.reshape(weight.shape).to(weight.dtype)
    return F.conv2d(x, weight, bias, stride=stride, padding=padding, dilation=dilation)
