"""Tile-vector-wise (TVW) pruning for any model, with its own execution kernels and ABFT error checks.

Papers: Guo et al., "Accelerating Sparse DNN Models without Hardware-Support via Tile-Wise Sparsity" (SC 2020,
arXiv 2008.13006; upstream clevercool/TileSparsity, Apache-2.0); Guo et al., "Accelerating Sparse DNNs Based on
Tiled GEMM" (arXiv 2402.10876, TVW); Peltekis et al., "Error Checking for Sparse Systolic Tensor Arrays"
(arXiv 2402.10850, ABFT).

* ``patterns``: masks (EW, N:M, BW, TW, TEW, TVW) on the GEMM view of supported layers, magnitude and Taylor
  scores, global thresholds; ``prune_`` and ``sparsity_report``.
* ``callback``: ``TVWPruning``, the Lightning callback (gradual schedule, masks kept through checkpoints).
* ``layout`` / ``tvw``: the compact TW/TVW format, ``TVWLinear`` and ``to_tvw`` (reference, CPU and Triton paths).
* ``abft``: checksums fused into the sparse GEMM, fault injection.

Submodules are imported lazily: ``import zoo.pruning`` loads neither triton nor transformers.
"""

from __future__ import annotations

import importlib

__all__ = ["prune_", "sparsity_report", "make_permanent", "TVWPruning", "to_tvw", "TileLayout"]

_WHERE = {
    "prune_": "patterns",
    "sparsity_report": "patterns",
    "make_permanent": "patterns",
    "TVWPruning": "callback",
    "to_tvw": "tvw",
    "TileLayout": "layout",
}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"zoo.pruning.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'zoo.pruning' has no attribute {name!r}")
