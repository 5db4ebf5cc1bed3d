"""Sparsity patterns, scores, ``prune_``/``sparsity_report`` and the ``TVWPruning`` callback."""

from __future__ import annotations

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from zoo.pruning import TVWPruning, make_permanent, prune_, sparsity_report
from zoo.pruning.callback import sparsity_at
from zoo.pruning.patterns import PATTERNS, TaylorScore, compute_masks, find_targets


def _scores(*shapes, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {f"l{i}": torch.rand(s, generator=g) for i, s in enumerate(shapes)}


SHAPES = [(96, 40), (33, 70), (130, 17)]  # ragged on purpose: not multiples of tiles, blocks or groups


@pytest.mark.parametrize("pattern", [p for p in PATTERNS if p != "nm"])
@pytest.mark.parametrize("sparsity", [0.5, 0.75, 0.875])
def test_global_sparsity_is_reached_within_one_unit(pattern, sparsity):
    scores = _scores(*SHAPES)
    total = sum(s.numel() for s in scores.values())
    masks, _ = compute_masks(scores, pattern, sparsity, tile=16, block=8, min_density=0.0)
    kept = sum(int(m.sum()) for m in masks.values())
    # one unit: a column (<= 130 weights), a block (64), a TVW tile's rounding to groups of 4 rows (per tile)
    slack = {"ew": 1, "bw": 64, "tw": 130, "tew": 130, "tvw": 2 * 16 * 12}[pattern]
    assert abs(kept - (1 - sparsity) * total) <= slack


def test_tw_without_column_pruning_and_tile_1_is_ew():
    scores = _scores(*SHAPES)
    ew, _ = compute_masks(scores, "ew", 0.7, min_density=0.0)
    tw, _ = compute_masks(scores, "tw", 0.7, tile=1, col_share=0.0, min_density=0.0, score_norm="count")
    for name in scores:
        assert torch.equal(ew[name], tw[name]), name


@pytest.mark.parametrize("pattern", ["ew", "bw", "tw", "tew", "tvw"])
def test_the_guard_keeps_every_layer_alive(pattern):
    scores = _scores((64, 64), (64, 64))
    scores["l1"] = scores["l1"] * 1e-3  # a layer of tiny weights: global thresholds would prune all of it
    bare, _ = compute_masks(scores, pattern, 0.75, tile=16, block=8, min_density=0.0)
    guarded, _ = compute_masks(scores, pattern, 0.75, tile=16, block=8, min_density=0.05)
    if pattern != "tvw":  # TVW keeps its 2:4 groups (>= one group of rows per tile) even without the guard
        assert bare["l1"].float().mean() < 0.01
    assert guarded["l1"].float().mean() >= 0.05 * 0.9


def test_tw_without_row_pruning_is_column_pruning():
    scores = _scores(*SHAPES)
    masks, layouts = compute_masks(scores, "tw", 0.6, tile=16, col_share=1.0, min_density=0.0)
    for name, m in masks.items():
        cols = m.any(1)
        assert torch.equal(m, cols[:, None].expand_as(m)), name  # kept columns are whole
        assert sum(len(c) for c in layouts[name]["cols"]) == int(cols.sum())


def test_tw_columns_of_a_tile_share_one_k_pattern_and_the_split_is_even():
    scores = _scores((256, 128), (128, 256))
    masks, layouts = compute_masks(scores, "tw", 0.75, tile=32, min_density=0.0)
    in_cols = sum(sum(len(c) for c in lay["cols"]) * scores[n].shape[1] for n, lay in layouts.items())
    assert in_cols / (2 * 256 * 128) == pytest.approx(0.5, abs=0.01)  # (1 - s')² = 1 - s: 50% by columns, 50% rows
    for name, lay in layouts.items():
        for cols, rows in zip(lay["cols"], lay["rows"]):
            assert len(cols) <= 32
            sub = masks[name][cols]
            assert torch.equal(sub, sub[:1].expand_as(sub))
            assert sorted(sub[0].nonzero().view(-1).tolist()) == rows


def test_nm_keeps_the_largest_in_every_group():
    s = torch.tensor([[0.1, 0.9, 0.5, 0.5, 3.0, 2.0, 1.0, 0.0, 7.0, 1.0]])
    (mask,) = compute_masks({"a": s}, "nm", None, n=2, m=4)[0].values()
    # group 1: 0.9 and the first 0.5 (tie broken by index); group 2: 3.0, 2.0; ragged group of 2: ceil(2·2/4) = 1
    assert mask.int().tolist() == [[0, 1, 1, 0, 1, 1, 0, 0, 1, 0]]
    big = _scores((40, 64))
    for n, m in [(1, 4), (2, 4), (2, 8), (4, 8)]:
        (mk,) = compute_masks(big, "nm", None, n=n, m=m)[0].values()
        groups, vals = mk.view(40, -1, m), big["l0"].view(40, -1, m)
        assert (groups.sum(-1) == n).all()
        kept_min = torch.where(groups, vals, torch.inf).amin(-1)
        dropped_max = torch.where(groups, -torch.inf, vals).amax(-1)
        assert (kept_min >= dropped_max).all()


def test_tvw_is_two_four_on_the_compacted_rows_of_each_tile():
    scores = _scores((200, 96), (64, 200))
    masks, layouts = compute_masks(scores, "tvw", 0.75, tile=32, min_density=0.0)
    for name, lay in layouts.items():
        assert lay["nm"] == [2, 4]
        for cols, rows in zip(lay["cols"], lay["rows"]):
            assert len(rows) % 4 == 0
            sub = masks[name][torch.tensor(cols)[:, None], torch.tensor(rows)[None, :]]
            assert (sub.view(len(cols), -1, 4).sum(-1) == 2).all()
    with pytest.raises(ValueError, match="at least 0.5"):
        compute_masks(scores, "tvw", 0.3)


def test_tew_restores_the_top_pruned_elements():
    scores = _scores(*SHAPES)
    tw, _ = compute_masks(scores, "tw", 0.8, tile=16, min_density=0.0)
    tew, _ = compute_masks(scores, "tew", 0.75, tile=16, restore=0.05, min_density=0.0)
    tw_base, _ = compute_masks(scores, "tw", 0.8, tile=16, min_density=0.0)
    extra = {n: tew[n] & ~tw_base[n] for n in scores}
    restored = torch.cat([scores[n][extra[n]] for n in scores])
    still_pruned = torch.cat([scores[n][~tew[n]] for n in scores])
    assert restored.numel() > 0 and restored.min() >= still_pruned.max()
    assert all(torch.equal(tew[n] | tw[n], tew[n]) for n in scores)


def test_taylor_score_is_the_sum_of_squared_gradient_times_weight():
    lin = nn.Linear(5, 3, bias=False)
    a = torch.rand(3, 5)
    taylor = TaylorScore({"lin": lin})
    for _ in range(3):
        lin.zero_grad()
        (0.5 * (a * lin.weight).square().sum()).backward()  # ∂L/∂W = a² ⊙ W
        taylor.accumulate()
    expected = 3 * (a.square() * lin.weight * lin.weight).detach().square()
    assert torch.allclose(taylor.scores()["lin"], expected)


class SmallResNet(nn.Module):
    """A user model the pruner has never seen: conv stem, one residual block, linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 32, 3, padding=1)
        self.conv1 = nn.Conv2d(32, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 32, 3, padding=1)
        self.bn = nn.BatchNorm2d(32)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        h = F.relu(self.stem(x))
        h = F.relu(h + self.bn(self.conv2(F.relu(self.conv1(h)))))
        return self.fc(h.mean((2, 3)))


def test_prune_on_a_user_resnet_reports_the_structure_and_skips_the_head():
    model = SmallResNet()
    report = prune_(model, "tvw", 0.75, tile=16)
    assert report.ok, report.table()
    assert report.sparsity == pytest.approx(0.75, abs=0.005)
    assert {lay.name for lay in report.layers if lay.pattern} == {"stem", "conv1", "conv2"}
    assert model.fc.weight.ne(0).all()
    out = model(torch.randn(2, 3, 8, 8))
    assert torch.isfinite(out).all()
    model.conv1.weight.data[~model.conv1.tvw_mask] = 1.0  # break the pattern: the report must notice
    assert not sparsity_report(model).ok


def test_errors_name_what_was_expected():
    model = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 2))
    with pytest.raises(ValueError, match="expected pattern"):
        prune_(model, "diagonal", 0.5)
    with pytest.raises(ValueError, match="0 <= sparsity < 1"):
        prune_(model, "ew", 1.5)
    with pytest.raises(ValueError, match="no layer to prune"):
        prune_(model, "ew", 0.5, targets=["nothing"])
    with pytest.raises(ValueError, match="fixes the sparsity"):
        prune_(model, "nm", 0.9)
    with pytest.raises(ValueError, match="Taylor"):
        prune_(model, "ew", 0.5, score="taylor")
    with pytest.raises(ValueError, match="expected schedule"):
        sparsity_at(5, 0.5, 0, 10, "linear")


def test_make_permanent_leaves_a_plain_state_dict():
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 4))
    prune_(model, "tw", 0.5, tile=16)
    record = make_permanent(model)
    assert set(record) == {"0"} and record["0"]["pattern"] == "tw" and record["0"]["layout"]["tile"] == 16
    fresh = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 4))
    fresh.load_state_dict(model.state_dict(), strict=True)
    assert not hasattr(model[0], "tvw_mask")


def test_schedules():
    assert sparsity_at(0, 0.8, 10, 20) == 0.0
    assert sparsity_at(20, 0.8, 10, 20) == pytest.approx(0.8)
    assert sparsity_at(15, 0.8, 10, 20) == pytest.approx(0.8 * (1 - 0.5**3))
    ladder = [0.25, 0.5, 0.75]
    assert [sparsity_at(t, 0.75, 0, 10, "ladder", ladder) for t in (0, 4, 5, 9, 10)] == [0.25, 0.25, 0.5, 0.5, 0.75]


# -- the callback -----------------------------------------------------------------------------------------------------
class _Module(L.LightningModule):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def training_step(self, batch, batch_idx):
        x, y = batch
        out = self.net(x)
        return F.cross_entropy(getattr(out, "logits", out), y)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=1e-3, weight_decay=0.01)


def _trainer(root, steps, *callbacks):
    return L.Trainer(
        max_steps=steps, default_root_dir=root, logger=False, enable_progress_bar=False, enable_model_summary=False,
        accelerator="cpu", callbacks=list(callbacks), enable_checkpointing=any(
            isinstance(c, L.pytorch.callbacks.ModelCheckpoint) for c in callbacks),
    )  # fmt: skip


def _images(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    ds = torch.utils.data.TensorDataset(torch.randn(n, 3, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g))
    return torch.utils.data.DataLoader(ds, batch_size=8)


@pytest.mark.parametrize("score", ["magnitude", "taylor"])
def test_callback_on_a_resnet_reaches_the_sparsity_with_tvw_structure(tmp_path, score):
    torch.manual_seed(0)
    module = _Module(SmallResNet())
    cb = TVWPruning("tvw", 0.75, start=2, end=8, frequency=2, score=score, tile=16, permanent=False)
    _trainer(tmp_path, 12, cb).fit(module, _images())
    report = sparsity_report(module)
    assert report.ok, report.table()
    assert report.sparsity == pytest.approx(0.75, abs=0.005)
    assert [e["t"] for e in cb.events] == [2, 4, 6, 8]


def test_callback_on_a_transformers_bert(tmp_path):
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(
        vocab_size=100, hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
        max_position_embeddings=32, num_labels=3,
    )  # fmt: skip
    torch.manual_seed(0)
    bert = transformers.BertForSequenceClassification(config)
    g = torch.Generator().manual_seed(0)
    ds = torch.utils.data.TensorDataset(torch.randint(0, 100, (32, 16), generator=g), torch.randint(0, 3, (32,)))
    cb = TVWPruning("tvw", 0.75, start=0, end=4, frequency=2, tile=32, targets=[r"encoder\."], permanent=False)
    _trainer(tmp_path, 6, cb).fit(_Module(bert), torch.utils.data.DataLoader(ds, batch_size=8))
    report = sparsity_report(bert)
    pruned = [lay for lay in report.layers if lay.pattern]
    assert len(pruned) == 2 * 6  # Q, K, V, attention output, FFN in and out per layer
    assert report.ok, report.table()
    assert report.sparsity == pytest.approx(0.75, abs=0.005)


class _Crash(L.Callback):
    def __init__(self, at_step: int) -> None:
        self.at_step = at_step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.at_step:
            raise RuntimeError("simulated crash")


def test_resumed_training_keeps_the_masks(tmp_path):
    from lightning.pytorch.callbacks import ModelCheckpoint

    def run(root, *extra, ckpt_path=None):
        torch.manual_seed(0)
        module = _Module(SmallResNet())
        cb = TVWPruning("tw", 0.75, start=2, end=10, frequency=4, tile=16, permanent=False)
        trainer = _trainer(root, 14, cb, *extra)
        trainer.fit(module, _images(), ckpt_path=ckpt_path)
        return module, cb

    full, _ = run(tmp_path / "full")
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=1, save_last=True)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(tmp_path / "a", ckpt, _Crash(at_step=8))  # at the epoch boundary after the events at 2 and 6
    resumed, cb = run(tmp_path / "b", ckpt_path=tmp_path / "ckpt" / "last.ckpt")
    assert [e["t"] for e in cb.events] == [2, 6, 10]
    for (name, a), (_, b) in zip(full.named_modules(), resumed.named_modules()):
        if hasattr(a, "tvw_mask"):
            assert torch.equal(a.tvw_mask, b.tvw_mask), name
    for k, v in full.state_dict().items():
        assert torch.allclose(v, resumed.state_dict()[k], atol=1e-6), k


def test_find_targets_regexes_and_filter():
    model = SmallResNet()
    assert set(find_targets(model)) == {"stem", "conv1", "conv2"}
    assert set(find_targets(model, targets=["conv"], ignore=["2$"])) == {"conv1"}
    assert set(find_targets(model, filter_fn=lambda m, n: isinstance(m, nn.Linear))) == {"fc"}
