"""TW / TVW execution: the layout contract, the compact format and the CPU path against the masked dense reference."""

import json
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.pruning_util import random_layout
from zoo.pruning.layout import TileLayout
from zoo.pruning.reference import masked_conv2d, masked_linear
from zoo.pruning.tvw import TVWConv1d, TVWConv2d, TVWLinear, pack, to_tvw, tvw_layouts, tvw_matmul, unpack


# -- helpers ----------------------------------------------------------------------------------------------------------
def nm_mask(layout, seed=0):
    """The layout's tile mask with 2:4 (n:m) applied along each tile's compacted rows, random choices."""
    g = torch.Generator().manual_seed(seed)
    n_nz, m_nz = layout.nm
    mask = torch.zeros(layout.out_features, layout.in_features, dtype=torch.bool)
    for cols, rows in zip(layout.cols, layout.rows):
        if not cols or not rows:
            continue
        score = torch.rand(len(cols), len(rows) // m_nz, m_nz, generator=g)
        keep = torch.zeros_like(score, dtype=torch.bool).scatter_(2, score.topk(n_nz, dim=2).indices, True)
        mask[torch.tensor(cols)[:, None], torch.tensor(rows)[None, :]] = keep.view(len(cols), -1)
    return mask


def int_tensor(*shape, seed=0, dtype=torch.float64, lo=-3, hi=4):
    """Small integers: every product and sum is exact, so compacted and dense products must agree bit for bit."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(lo, hi, shape, generator=g).to(dtype)


# -- layout -----------------------------------------------------------------------------------------------------------
def test_layout_json_round_trip():
    lay = random_layout(70, 100, 16, nm=(2, 4))
    d = json.loads(json.dumps(lay.to_dict()))
    back = TileLayout.from_dict(d)
    assert back == lay and back.nm == (2, 4)
    assert TileLayout.from_dict(random_layout(9, 5, 2).to_dict()).nm is None


def test_from_mask_hand_built():
    mask = torch.zeros(6, 5, dtype=torch.bool)
    mask[1, [0, 3]] = True
    mask[2, [3]] = True
    mask[4, [1, 4]] = True
    mask[5, [2]] = True
    lay = TileLayout.from_mask(mask, tile=2)
    assert lay.cols == [[1, 2], [4, 5]]
    assert lay.rows == [[0, 3], [1, 2, 4]]
    assert lay.pruned_cols() == [0, 3]
    assert lay.density() == pytest.approx((2 * 2 + 2 * 3) / 30)
    assert torch.equal(lay.mask() & mask, mask)  # the tile structure covers the mask


def test_from_mask_nm_pads_rows_and_checks_the_pattern():
    mask = torch.zeros(2, 8, dtype=torch.bool)
    mask[0, [0, 5]] = True
    mask[1, [2]] = True
    lay = TileLayout.from_mask(mask, tile=4, nm=(2, 4))
    assert lay.rows == [[0, 1, 2, 5]]  # 3 used rows padded with the smallest unused id
    assert lay.density() == pytest.approx(2 * 4 / 16 / 2)
    bad = torch.zeros(1, 8, dtype=torch.bool)
    bad[0, [0, 1, 2]] = True  # three non-zeros in the first group of 4 compacted rows
    with pytest.raises(ValueError, match="not 2:4"):
        TileLayout.from_mask(bad, tile=4, nm=(2, 4))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"cols": [[0, 9]], "rows": [[0]]}, "out of range"),
        ({"cols": [[0]], "rows": [[0, 5]]}, "out of range"),
        ({"cols": [[2, 1]], "rows": [[0]]}, "ascending"),
        ({"cols": [[0]], "rows": [[1, 1]]}, "ascending"),
        ({"cols": [[0, 1], [1, 2]], "rows": [[0], [0]]}, "disjoint"),
        ({"cols": [[0, 1, 2]], "rows": [[0]]}, "at most tile"),
        ({"cols": [[0]], "rows": []}, "one row list per tile"),
        ({"cols": [[0]], "rows": [[0, 1, 2]], "nm": (2, 4)}, "multiple of m"),
        ({"cols": [[0]], "rows": [[0]], "nm": (3, 2)}, "0 < n <= m"),
    ],
)
def test_layout_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TileLayout(in_features=5, out_features=4, tile=2, **kwargs)


def test_from_dict_names_missing_keys():
    with pytest.raises(ValueError, match="missing keys"):
        TileLayout.from_dict({"in_features": 3, "out_features": 2, "cols": []})


# -- pack / unpack ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("nm", [None, (2, 4)])
def test_pack_unpack_exact(nm):
    lay = random_layout(70, 100, 16, nm=nm, empty_tile=True)
    mask = lay.mask() if nm is None else nm_mask(lay)
    w = torch.randn(100, 70, dtype=torch.float64)
    packed = pack(w, lay, mask=mask)
    assert torch.equal(unpack(packed), w * mask)
    if nm is not None:  # only the non-zeros are stored
        assert packed.values.numel() == lay.nnz() == int(mask.sum())


def test_pack_rejects_a_mask_outside_the_tiles_and_a_broken_nm():
    lay = random_layout(20, 12, 4, nm=(2, 4))
    outside = ~lay.mask()
    with pytest.raises(ValueError, match="outside the layout"):
        pack(torch.randn(12, 20), lay, mask=outside)
    with pytest.raises(ValueError, match="nm=\\(2, 4\\)"):
        pack(torch.ones(12, 20), lay)  # dense tiles are not 2:4


# -- CPU path vs reference --------------------------------------------------------------------------------------------
CASES = [  # (K, N, tile, col_keep, row_keep, nm)
    (70, 100, 16, 0.6, 0.5, None),
    (33, 45, 32, 0.9, 0.3, None),
    (64, 300, 128, 0.5, 0.5, None),
    (50, 40, 16, 1.0, 1.0, None),  # no pruning: one group, no gather, identity order
    (48, 60, 16, 0.5, 1.0, None),  # column pruning only: the tiles share one row list (merged)
    (72, 50, 16, 0.7, 0.5, (2, 4)),
    (96, 130, 32, 0.5, 0.6, (2, 4)),
]


@pytest.mark.parametrize(("k", "n", "tile", "ck", "rk", "nm"), CASES)
def test_cpu_path_matches_reference(k, n, tile, ck, rk, nm):
    lay = random_layout(k, n, tile, ck, rk, nm=nm, empty_tile=True, seed=k)
    mask = lay.mask() if nm is None else nm_mask(lay, seed=n)
    # exact: small integers in float64
    w, b, x = int_tensor(n, k, seed=1), int_tensor(n, seed=2), int_tensor(3, 5, k, seed=3)  # batch dims [B, T, K]
    packed = pack(w, lay, mask=mask)
    ref = masked_linear(x, w, mask, b)
    assert torch.equal(tvw_matmul(x, packed, b, path="cpu"), ref)
    assert torch.equal(tvw_matmul(x, packed, b, path="reference"), ref)
    assert torch.equal(tvw_matmul(x, packed, None, path="cpu"), masked_linear(x, w, mask, None))
    # fp32, random values
    w32, b32, x32 = torch.randn(n, k), torch.randn(n), torch.randn(37, k)
    p32 = pack(w32, lay, mask=mask)
    torch.testing.assert_close(tvw_matmul(x32, p32, b32, path="cpu"), masked_linear(x32, w32, mask, b32))


def test_pruned_and_rowless_columns_output_the_bias():
    lay = TileLayout(8, 6, 2, cols=[[1, 4], [2, 3], []], rows=[[0, 5], [], []])  # tile 1 keeps no rows; 0, 5 pruned
    w, b, x = torch.randn(6, 8, dtype=torch.float64), torch.randn(6, dtype=torch.float64), torch.randn(4, 8).double()
    packed = pack(w, lay)
    y = tvw_matmul(x, packed, b, path="cpu")
    for c in (0, 2, 3, 5):
        assert torch.equal(y[:, c], b[c].expand(4))
    assert torch.equal(tvw_matmul(x, packed, None, path="cpu")[:, [0, 2, 3, 5]], torch.zeros(4, 4).double())
    empty = TileLayout(8, 6, 2, cols=[], rows=[])  # every column pruned
    assert torch.equal(tvw_matmul(x, pack(w, empty), b, path="cpu"), b.expand(4, 6))


def test_cpu_path_gradients_match_reference():
    lay = random_layout(40, 50, 16, empty_tile=True)
    lin = nn.Linear(40, 50).double()
    layer = TVWLinear.from_linear(lin, mask=lay.mask(), layout=lay, path="cpu")
    x = torch.randn(6, 40, dtype=torch.float64, requires_grad=True)
    layer(x).square().sum().backward()
    w = lin.weight.detach().clone().requires_grad_(True)
    b = lin.bias.detach().clone().requires_grad_(True)
    x2 = x.detach().clone().requires_grad_(True)
    masked_linear(x2, w, lay.mask(), b).square().sum().backward()
    torch.testing.assert_close(x.grad, x2.grad)
    torch.testing.assert_close(layer.bias.grad, b.grad)
    torch.testing.assert_close(layer.values.grad, pack(w.grad, lay).values)


# -- modules ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("nm", [None, (2, 4)])
def test_tvw_linear_safetensors_round_trip(tmp_path, nm):
    from safetensors.torch import load_file, save_file

    lay = random_layout(72, 90, 32, nm=nm)
    mask = lay.mask() if nm is None else nm_mask(lay)
    layer = TVWLinear.from_linear(nn.Linear(72, 90), mask=mask, layout=lay, path="cpu")
    x = torch.randn(2, 7, 72)
    expected = layer(x)
    lin = nn.Linear(72, 90)
    lin.load_state_dict({"weight": layer.weight_nk(), "bias": layer.bias.detach()})
    torch.testing.assert_close(expected, masked_linear(x, lin.weight, mask, lin.bias))
    sd = layer.state_dict()
    assert set(sd) == ({"values", "bias"} if nm is None else {"values", "meta", "bias"})
    save_file(sd, tmp_path / "model.safetensors")
    (tmp_path / "layout.json").write_text(json.dumps(layer.layout.to_dict()))
    fresh = TVWLinear(json.loads((tmp_path / "layout.json").read_text()), path="cpu")
    fresh.load_state_dict(load_file(tmp_path / "model.safetensors"), strict=True)
    assert torch.equal(fresh(x), expected)


@pytest.mark.parametrize(
    ("stride", "padding", "dilation"), [(1, 0, 1), (2, 1, 1), ((1, 2), (2, 0), (2, 1)), (1, "same", 1)]
)
def test_tvw_conv2d_matches_conv2d(stride, padding, dilation):
    conv = nn.Conv2d(5, 20, (3, 2), stride=stride, padding=padding, dilation=dilation).double()
    mask = torch.rand(20, 5 * 3 * 2, generator=torch.Generator().manual_seed(0)) < 0.4
    mask[3] = False
    layer = TVWConv2d.from_conv(conv, mask=mask, tile=8, path="cpu") if padding != "same" else None
    if layer is None:  # 'same' with an even kernel width pads asymmetrically
        with pytest.raises(ValueError, match="asymmetrically"):
            TVWConv2d.from_conv(conv, mask=mask, tile=8)
        return
    x = torch.randn(2, 5, 11, 9, dtype=torch.float64)
    ref = masked_conv2d(x, conv.weight, mask, conv.bias, conv.stride, conv.padding, conv.dilation)
    torch.testing.assert_close(layer(x), ref)
    torch.testing.assert_close(layer(x[0]), ref[0])


def test_tvw_conv1d_matches_conv1d_and_groups_are_refused():
    conv = nn.Conv1d(4, 12, 3, padding=1, stride=2).double()
    mask = torch.rand(12, 4, 3, generator=torch.Generator().manual_seed(1)) < 0.5
    layer = TVWConv1d.from_conv(conv, mask=mask, tile=4, path="cpu")
    x = torch.randn(3, 4, 17, dtype=torch.float64)
    ref = F.conv1d(x, conv.weight * mask, conv.bias, stride=2, padding=1)
    torch.testing.assert_close(layer(x), ref)
    with pytest.raises(ValueError, match="groups=1"):
        TVWConv2d.from_conv(nn.Conv2d(4, 8, 3, groups=2))


class Conv1D(nn.Module):  # the shape of transformers.pytorch_utils.Conv1D (GPT-2): weight (K, N), y = x·W + b
    def __init__(self, nf, nx):
        super().__init__()
        self.nf = nf
        self.weight = nn.Parameter(torch.randn(nx, nf))
        self.bias = nn.Parameter(torch.randn(nf))

    def forward(self, x):
        return torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight).view(*x.shape[:-1], self.nf)


Conv1D.__module__ = "transformers.pytorch_utils"


def _masked_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(24, 40), nn.ReLU(), Conv1D(36, 40), nn.ReLU(), nn.Linear(36, 10)).double()
    g = torch.Generator().manual_seed(3)
    for module in (model[0], model[2]):
        mask = torch.rand(module.weight.shape, generator=g) < 0.5
        module.register_buffer("tvw_mask", mask, persistent=False)
    lay = random_layout(36, 10, 4, nm=(2, 4), seed=5)
    model[4].register_buffer("tvw_mask", nm_mask(lay), persistent=False)
    model[4].tvw_layout = lay.to_dict()
    with torch.no_grad():
        for module in (model[0], model[2], model[4]):
            module.weight.mul_(module.tvw_mask)
    return model


def test_to_tvw_swaps_masked_layers_and_reloads_from_layouts(tmp_path):
    from safetensors.torch import load_file, save_file

    model = _masked_model()
    x = torch.randn(3, 24, dtype=torch.float64)
    expected = model(x)
    to_tvw(model, path="cpu", tile=8)
    assert [type(m).__name__ for m in model] == ["TVWLinear", "ReLU", "TVWLinear", "ReLU", "TVWLinear"]
    assert model[4].layout.nm == (2, 4)  # the pruner's layout was used
    torch.testing.assert_close(model(x), expected)
    # save: plain tensors + layouts as JSON; load: dense skeleton -> to_tvw(layouts) -> strict load
    save_file(model.state_dict(), tmp_path / "model.safetensors")
    layouts = json.loads(json.dumps(tvw_layouts(model)))
    skeleton = nn.Sequential(nn.Linear(24, 40), nn.ReLU(), Conv1D(36, 40), nn.ReLU(), nn.Linear(36, 10)).double()
    to_tvw(skeleton, layouts, path="cpu", pack_weights=False)
    skeleton.load_state_dict(load_file(tmp_path / "model.safetensors"), strict=True)
    assert torch.equal(skeleton(x), model(x))


def test_to_tvw_is_strict():
    model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 4))
    model[0].register_buffer("tvw_mask", torch.ones(10, 4, dtype=torch.bool), persistent=False)
    with pytest.raises(TypeError, match="0: cannot execute a Embedding"):
        to_tvw(model)
    with pytest.raises(KeyError, match="nope"):
        to_tvw(nn.Sequential(nn.Linear(4, 4)), {"nope": TileLayout(4, 4, 2, [], [])})


def test_to_tvw_with_the_pruner():
    patterns = pytest.importorskip("zoo.pruning.patterns")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 96), nn.GELU(), nn.Linear(96, 64), nn.GELU(), nn.Linear(64, 8))
    patterns.prune_(model, pattern="tvw", sparsity=0.75, tile=32)
    x = torch.randn(5, 64)
    expected = model(x)
    to_tvw(model, path="cpu")
    assert isinstance(model[0], TVWLinear) and model[0].layout.nm == (2, 4)
    torch.testing.assert_close(model(x), expected)


def test_importing_tvw_does_not_import_triton():
    code = "import sys, zoo.pruning.tvw, zoo.pruning.kernels; print('triton' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_abft_checked_forward_matches_and_flags_a_corrupted_output(monkeypatch):
    import zoo.pruning.tvw as tvw

    torch.manual_seed(0)
    lay = random_layout(64, 48, 16, nm=(2, 4))
    dense = nn.Linear(64, 48)
    with torch.no_grad():
        dense.weight.mul_(nm_mask(lay))
    plain = TVWLinear.from_linear(dense, layout=lay, path="cpu")
    checked = TVWLinear.from_linear(dense, layout=lay, path="cpu")
    checked.abft = True
    x = torch.randn(3, 7, 64)
    torch.testing.assert_close(checked(x), plain(x))
    assert checked.abft_alarms == 0 and not checked.abft_report.detected
    clean = tvw.tvw_matmul

    def faulty(a, packed, bias=None, path="auto"):
        y = clean(a, packed, bias, path)
        if a.shape[0] > 1:  # not the 1-row |W| product of the threshold
            y[2, 5] += 1.0  # one corrupted output element of a data row
        return y

    monkeypatch.setattr(tvw, "tvw_matmul", faulty)
    checked(x)
    assert checked.abft_alarms == 1 and checked.abft_report.detected
