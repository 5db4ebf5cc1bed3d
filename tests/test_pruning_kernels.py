"""The Triton TW / TVW kernel against the masked dense reference.

Without CUDA the kernel runs under the Triton interpreter (``TRITON_INTERPRET=1``, set here before the kernel module
is imported) on CPU tensors; with CUDA the same tests run compiled on the GPU, and the ``gpu`` tests add larger
shapes and bf16 (which the interpreter's ``tl.dot`` gets wrong). Interpreter shapes stay within 64–256.
"""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"  # read by triton when the kernel is decorated, i.e. at import

pytest.importorskip("triton", reason="the kernels need triton: pip install zoo[kernels]")

from tests.pruning_util import random_layout  # noqa: E402
from zoo.pruning.layout import TileLayout  # noqa: E402
from zoo.pruning.reference import masked_linear  # noqa: E402
from zoo.pruning.tvw import TVWLinear, pack, tvw_matmul  # noqa: E402

INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
DEVICE = "cpu" if INTERPRET else "cuda"
pytestmark = pytest.mark.kernels


def nm_mask(layout, seed=0):
    """The tile mask with n:m along each tile's compacted rows, random choices."""
    g = torch.Generator().manual_seed(seed)
    n_nz, m_nz = layout.nm
    mask = torch.zeros(layout.out_features, layout.in_features, dtype=torch.bool)
    for cols, rows in zip(layout.cols, layout.rows):
        if cols and rows:
            score = torch.rand(len(cols), len(rows) // m_nz, m_nz, generator=g)
            keep = torch.zeros_like(score, dtype=torch.bool).scatter_(2, score.topk(n_nz, dim=2).indices, True)
            mask[torch.tensor(cols)[:, None], torch.tensor(rows)[None, :]] = keep.view(len(cols), -1)
    return mask


def setup(m, k, n, tile, ck, rk, nm, dtype, seed=0, ints=False, device=DEVICE):
    lay = random_layout(k, n, tile, ck, rk, nm=nm, empty_tile=True, seed=seed)
    mask = lay.mask() if nm is None else nm_mask(lay, seed=seed)
    g = torch.Generator().manual_seed(seed)
    if ints:  # small integers: exact in fp32 whatever the summation order
        w, b, x = (torch.randint(-3, 4, s, generator=g).float() for s in ((n, k), (n,), (m, k)))
    else:
        w, b, x = torch.randn(n, k, generator=g), torch.randn(n, generator=g), torch.randn(m, k, generator=g)
    w, b, x = (t.to(device, dtype) for t in (w, b, x))
    return lay, mask.to(device), w, b, x


CASES = [  # (M, K, N, tile, col_keep, row_keep, nm)
    (64, 96, 128, 32, 0.6, 0.5, None),
    (37, 70, 100, 16, 0.7, 0.4, None),  # ragged everything
    (100, 130, 150, 128, 0.8, 0.6, None),
    (64, 64, 64, 16, 1.0, 1.0, None),  # dense tiles, identity order
    (50, 72, 90, 32, 0.6, 0.5, (2, 4)),
    (64, 128, 96, 16, 0.5, 0.7, (2, 4)),
    (37, 80, 100, 32, 0.6, 1.0, None),  # every tile keeps all rows: the no-gather path
    (64, 64, 96, 16, 0.5, 1.0, (2, 4)),
]


@pytest.mark.parametrize(("m", "k", "n", "tile", "ck", "rk", "nm"), CASES)
def test_kernel_fp32_exact_on_integers(m, k, n, tile, ck, rk, nm):
    lay, mask, w, b, x = setup(m, k, n, tile, ck, rk, nm, torch.float32, ints=True)
    packed = pack(w, lay, mask=mask)
    ref = masked_linear(x, w, mask, b)
    assert torch.equal(tvw_matmul(x, packed, b, path="triton"), ref)
    assert torch.equal(tvw_matmul(x, packed, None, path="triton"), masked_linear(x, w, mask, None))


@pytest.mark.parametrize(("m", "k", "n", "tile", "ck", "rk", "nm"), CASES)
def test_kernel_fp32_and_fp16_match_reference(m, k, n, tile, ck, rk, nm):
    lay, mask, w, b, x = setup(m, k, n, tile, ck, rk, nm, torch.float32, seed=1)
    y = tvw_matmul(x, pack(w, lay, mask=mask), b, path="triton")
    torch.testing.assert_close(y, masked_linear(x, w, mask, b), rtol=1e-5, atol=1e-5)
    h = [t.half() for t in (w, b, x)]
    y16 = tvw_matmul(h[2], pack(h[0], lay, mask=mask), h[1], path="triton")
    assert y16.dtype == torch.float16
    ref = masked_linear(*(t.float() for t in (h[2], h[0])), mask, h[1].float())  # fp16 inputs, fp32 sums
    torch.testing.assert_close(y16.float(), ref, rtol=2e-3, atol=2e-3)


def test_kernel_batch_dims_strides_and_all_pruned():
    lay, mask, w, b, x = setup(48, 64, 80, 16, 0.5, 0.5, None, torch.float32, seed=2)
    packed = pack(w, lay, mask=mask)
    x3 = torch.randn(2, 24, 128, device=DEVICE)[..., ::2]  # [B, T, K], non-contiguous
    torch.testing.assert_close(
        tvw_matmul(x3, packed, b, path="triton"), masked_linear(x3, w, mask, b), rtol=1e-5, atol=1e-5
    )
    empty = pack(w, TileLayout(64, 80, 16, [], []))
    assert torch.equal(tvw_matmul(x, empty, b, path="triton"), b.expand(48, 80))


@pytest.mark.parametrize("block", [(16, 16, 16), (32, 64, 32), (64, 32, 64)])
def test_kernel_block_sizes(block):
    lay, mask, w, b, x = setup(70, 96, 64, 32, 0.8, 0.5, (2, 4), torch.float32, seed=3, ints=True)
    from zoo.pruning.kernels.tvw_triton import tvw_matmul_triton

    bm, bn, bk = block
    y = tvw_matmul_triton(x, pack(w, lay, mask=mask), b, block_m=bm, block_n=bn, block_k=bk)
    assert torch.equal(y, masked_linear(x, w, mask, b))


@pytest.mark.parametrize("compact_out", [True, False])
@pytest.mark.parametrize("nm", [None, (2, 4)])
def test_kernel_output_modes_and_aligned_cache(compact_out, nm):
    """Scattered and compact-then-index_copy stores agree; the aligned weight copy follows in-place updates."""
    from zoo.pruning.kernels.tvw_triton import ALIGN, tvw_matmul_triton

    lay, mask, w, b, x = setup(40, 72, 90, 32, 0.6, 0.5, nm, torch.float32, seed=6, ints=True)
    packed = pack(w, lay, mask=mask)
    assert torch.equal(tvw_matmul_triton(x, packed, b, compact_out=compact_out), masked_linear(x, w, mask, b))
    tiles = packed._kernel[1][2]
    assert (tiles[:, 4] % ALIGN == 0).all() and (tiles[:, 5] % ALIGN == 0).all()
    with torch.no_grad():
        packed.values.mul_(2)  # in place: the cached copy must be rebuilt
    assert torch.equal(tvw_matmul_triton(x, packed, None, compact_out=compact_out), masked_linear(x, 2 * w, mask, None))


def test_kernel_errors():
    from zoo.pruning.kernels.tvw_triton import tvw_matmul_triton

    lay, mask, w, b, x = setup(16, 32, 32, 16, 1.0, 0.5, (2, 4), torch.float32)
    packed = pack(w, lay, mask=mask)
    with pytest.raises(ValueError, match="multiple of m=4"):
        tvw_matmul_triton(x, packed, b, block_k=18)
    with pytest.raises(ValueError, match="float16 but the packed weights are torch.float32"):
        tvw_matmul_triton(x.half(), packed, b)
    layer = TVWLinear.from_linear(torch.nn.Linear(32, 32).to(DEVICE), mask=mask, layout=lay, path="triton")
    with pytest.raises(RuntimeError, match="no backward"):
        layer(x.requires_grad_(True))
    with torch.no_grad():
        torch.testing.assert_close(layer(x), masked_linear(x, layer.weight_nk(), None, layer.bias))


# -- real GPU ---------------------------------------------------------------------------------------------------------
gpu = pytest.mark.skipif(
    INTERPRET or not torch.cuda.is_available(),
    reason="needs CUDA with the compiled kernel (this run uses the Triton interpreter or has no GPU)",
)


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("nm", [None, (2, 4)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize(("m", "k", "n"), [(2048, 768, 3072), (333, 3072, 768), (1000, 500, 700)])
def test_kernel_gpu_matches_reference(m, k, n, dtype, nm):
    lay, mask, w, b, x = setup(m, k, n, 128, 0.5, 0.5, nm, dtype, seed=4, device="cuda")
    y = tvw_matmul(x, pack(w, lay, mask=mask), b, path="triton")
    ref = masked_linear(x.float(), w.float(), mask, b.float())
    tol = {torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 5e-2}[dtype]
    torch.testing.assert_close(y.float(), ref, rtol=tol, atol=tol)


@pytest.mark.gpu
@gpu
def test_auto_dispatch_on_cuda():
    lay, mask, w, b, x = setup(256, 256, 256, 128, 0.5, 0.5, None, torch.float32, seed=5, device="cuda")
    layer = TVWLinear.from_linear(torch.nn.Linear(256, 256).cuda(), mask=mask, layout=lay)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), masked_linear(x, layer.weight_nk(), None, layer.bias))
    y = layer(x)  # with gradients: the auto path falls back to the differentiable PyTorch path
    assert y.requires_grad
