"""Triton kernels of ``zoo.pruning`` (``tvw_triton``: the TW / TVW sparse GEMM); import the submodule where it is used,
so that ``import zoo.pruning`` never imports triton."""
