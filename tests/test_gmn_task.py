"""The gmn family's task: a synthetic network zoo (random weights and accuracies, no training) read by
NetZooDataModule, its splits, the weight round trip through the graphs, the graph cache, every metanetwork trained
and tested through Lightning with best-validation model selection, the debug recipe, and the missing-zoo error."""

import copy
import json
import random
from pathlib import Path

import lightning as L
import pytest
import torch

pytest.importorskip("torch_geometric")

from zoo.data import DataError  # noqa: E402
from zoo.data.netzoo import (  # noqa: E402
    KINDS,
    OOD_TEST_MIN_WIDTH,
    OOD_TRAIN_MAX_WIDTH,
    SPLITS,
    NetZooDataModule,
    load_weights,
    split_nets,
)
from zoo.gmn.nets import FAMILIES, WIDTHS, build_net, sample_spec  # noqa: E402
from zoo.methods.gmn import GMNModule  # noqa: E402
from zoo.models.gmn import MetanetConfig  # noqa: E402

TINY = {
    "gmn": {"hidden": 8, "layers": 2},
    "dmc": {"hidden": 8, "layers": 3, "channels": 4},
    "deepsets": {"hidden": 8},
    "statnn": {"hidden": 8, "max_tensors": 48},
}


def _rows() -> list[dict]:
    """20 2D CNNs and 4 nets of each other family, every width, depth 1, initial weights, random accuracies."""
    rng = random.Random(0)
    families = ["cnn2d"] * 20 + [f for f in FAMILIES[1:] for _ in range(4)]
    rows = []
    for i, family in enumerate(families):
        spec = sample_spec(rng, family) | {"width": WIDTHS[i % len(WIDTHS)], "depth": 1}
        torch.manual_seed(i)
        weights = torch.cat([p.detach().flatten() for p in build_net(spec).parameters()])
        rows.append(
            {
                "id": i,
                "family": family,
                "width": spec["width"],
                "spec": json.dumps(spec),
                "n_params": weights.numel(),
                "weights": weights.tolist(),
                "accuracy": round(rng.uniform(0.1, 0.95), 4),
            }
        )
    return rows


@pytest.fixture(scope="module")
def zoo_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("gmn_zoo")
    (root / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _rows()))
    return root


def _dm(root, **kwargs) -> NetZooDataModule:
    dm = NetZooDataModule(root=str(root), **({"batch_size": 8} | kwargs))
    dm.setup()
    return dm


def test_split_partitions_are_disjoint_fixed_and_respect_widths():
    widths = torch.tensor(WIDTHS)[torch.randint(len(WIDTHS), (500,), generator=torch.Generator().manual_seed(0))]
    full = split_nets(widths, "100", seed=3)
    assert [len(full[k]) for k in ("train", "val", "test")] == [350, 50, 100]
    assert torch.equal(torch.cat(list(full.values())).sort().values, torch.arange(500))
    assert all(torch.equal(full[k], split_nets(widths, "100", seed=3)[k]) for k in full)  # fixed by the seed
    assert not torch.equal(full["val"], split_nets(widths, "100", seed=4)["val"])
    ten = split_nets(widths, "10", seed=3)
    assert torch.equal(ten["val"], full["val"]) and torch.equal(ten["test"], full["test"])
    assert len(ten["train"]) == 35 and set(ten["train"].tolist()) <= set(full["train"].tolist())
    quarter, half = split_nets(widths, "25", seed=3), split_nets(widths, "50", seed=3)
    assert [len(quarter["train"]), len(half["train"])] == [88, 175]  # round(0.25 * 350), 0.5 * 350
    assert set(ten["train"].tolist()) <= set(quarter["train"].tolist()) <= set(half["train"].tolist())
    assert torch.equal(quarter["test"], full["test"])
    for bad in ("0", "101", "half", "-5"):
        with pytest.raises(ValueError, match="training percentage"):
            split_nets(widths, bad, seed=3)
    ood = split_nets(widths, "ood", seed=3)
    assert (widths[ood["train"]] <= OOD_TRAIN_MAX_WIDTH).all() and (widths[ood["val"]] <= OOD_TRAIN_MAX_WIDTH).all()
    assert torch.equal(ood["test"], (widths >= OOD_TEST_MIN_WIDTH).nonzero().view(-1))
    assert not set(ood["train"].tolist()) & set(ood["val"].tolist())


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("split", SPLITS)
def test_data_module_splits_are_disjoint_within_the_kind(zoo_dir, kind, split):
    dm = _dm(zoo_dir, kind=kind, split=split)
    ids = dm.split_ids
    by_id = {int(g.net_id): g for g in dm.graphs}
    assert not (set(ids["train"]) & set(ids["val"]) or set(ids["train"]) & set(ids["test"]))
    assert not set(ids["val"]) & set(ids["test"])
    used = [by_id[i] for s in ids.values() for i in s]
    assert {FAMILIES[int(g.family)] for g in used} <= set(KINDS[kind])
    if split == "ood":
        assert all(int(by_id[i].width) <= OOD_TRAIN_MAX_WIDTH for i in ids["train"] + ids["val"])
        assert all(int(by_id[i].width) >= OOD_TEST_MIN_WIDTH for i in ids["test"])
    elif split == "100":
        assert len(used) == sum(FAMILIES[int(g.family)] in KINDS[kind] for g in dm.graphs)
    batch = next(iter(dm.train_dataloader()))
    assert batch.y.shape == (batch.num_graphs,) and batch.y.dtype == torch.float32


def test_graphs_round_trip_the_stored_weights(zoo_dir):
    dm = _dm(zoo_dir)
    rows = {r["id"]: r for r in _rows()}
    assert len(dm.graphs) == len(rows)
    for g in dm.graphs:
        row = rows[int(g.net_id)]
        net = dm.network(g)  # a fresh net of the spec, weights written back from the graph's edge values
        flat = torch.cat([p.detach().flatten() for p in net.parameters()])
        assert torch.equal(flat, torch.tensor(row["weights"], dtype=torch.float32)), row["family"]
        assert float(g.y) == pytest.approx(row["accuracy"])
    in_memory = NetZooDataModule.from_rows(rows.values(), batch_size=8)
    in_memory.setup()
    assert in_memory.split_ids == dm.split_ids
    bad = rows[0]
    with pytest.raises(ValueError, match=f"expected {bad['n_params']} weights"):
        load_weights(build_net(json.loads(bad["spec"])), bad["weights"][:-1])


def test_graph_cache_is_rebuilt_when_the_rows_change(tmp_path):
    rows = _rows()[:30]
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:25]) + '{"id": 25, "fam')
    assert len(_dm(tmp_path).graphs) == 25  # a half-written last line (generator running) is skipped
    assert (tmp_path / "graphs.pt").is_file()
    assert len(_dm(tmp_path).graphs) == 25  # served from the cache
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert len(_dm(tmp_path).graphs) == 30


def test_arrow_dataset_is_read_like_the_rows(zoo_dir, tmp_path):
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_list(_rows()).save_to_disk(str(tmp_path / "dataset"))
    a, b = _dm(tmp_path), _dm(zoo_dir)
    assert a.split_ids == b.split_ids
    assert all(torch.equal(g.edge_attr, h.edge_attr) and torch.equal(g.y, h.y) for g, h in zip(a.graphs, b.graphs))


def test_missing_zoo_says_how_to_generate_it(tmp_path):
    with pytest.raises(DataError, match="python scripts/gmn_zoo.py"):
        NetZooDataModule(root=str(tmp_path / "nowhere")).setup()
    with pytest.raises(ValueError, match="training percentage"):
        NetZooDataModule(split="150")
    with pytest.raises(ValueError, match="no option"):
        MetanetConfig(model="gmn", options={"width": 3})
    with pytest.raises(ValueError, match="expected model in"):
        MetanetConfig(model="mlp")


def _trainer(**kwargs) -> L.Trainer:
    args = dict(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    return L.Trainer(**(args | kwargs))


@pytest.mark.parametrize("model", sorted(TINY))
def test_every_metanet_trains_and_tests(zoo_dir, model):
    dm = _dm(zoo_dir)
    module = GMNModule(net={"model": model, "options": TINY[model]}, lr=1e-2)
    before = copy.deepcopy(module.net.state_dict())
    trainer = _trainer(max_epochs=1, limit_train_batches=2)
    trainer.fit(module, datamodule=dm)
    assert trainer.global_step == 2
    assert {"val/r2", "val/kendall_tau", "val/mse"} <= set(trainer.callback_metrics)
    assert any(not torch.equal(before[k], v) for k, v in module.net.state_dict().items())
    (metrics,) = trainer.test(module, datamodule=dm, verbose=False)
    assert {"test/r2", "test/kendall_tau", "test/mse"} <= set(metrics)
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values())
    pred = torch.cat(trainer.predict(module, datamodule=dm))
    assert pred.shape == (len(dm.test_set),) and ((pred > 0) & (pred < 1)).all()
    y = torch.tensor([float(g.y) for g in dm.test_set])
    assert metrics["test/mse"] == pytest.approx(float(((pred - y) ** 2).mean()), rel=1e-4)


class _Snapshots(L.Callback):
    def __init__(self) -> None:
        self.states: list[tuple[float, dict]] = []

    def on_validation_end(self, trainer, pl_module) -> None:
        r2 = float(trainer.callback_metrics["val/r2"])
        self.states.append((r2, copy.deepcopy(pl_module.net.state_dict())))


def test_fit_keeps_the_best_validation_r2_weights(zoo_dir):
    L.seed_everything(0)
    dm = _dm(zoo_dir)
    snaps = _Snapshots()
    module = GMNModule(net={"model": "deepsets", "options": TINY["deepsets"]}, lr=3e-2)
    _trainer(max_epochs=4, callbacks=[snaps]).fit(module, datamodule=dm)
    best = max(range(len(snaps.states)), key=lambda i: snaps.states[i][0])
    assert module.best_epoch == best and module.best_val == pytest.approx(snaps.states[best][0])
    state = module.net.state_dict()
    assert all(torch.equal(state[k], v) for k, v in snaps.states[best][1].items())


def test_debug_recipe_trains_and_exports(zoo_dir, tmp_path):
    from pathlib import Path

    import zoo
    from zoo.cli import main

    recipe = Path(__file__).resolve().parent.parent / "recipes" / "gmn" / "debug.yaml"
    out = tmp_path / "export"
    main(
        [
            "fit",
            "--config",
            str(recipe),
            "--data.init_args.root",
            str(zoo_dir),
            "--trainer.default_root_dir",
            str(tmp_path),
            "--trainer.callbacks+=zoo.hub.SavePretrained",
            f"--trainer.callbacks.dirpath={out}",
        ]
    )
    loaded = zoo.from_pretrained(out)
    assert isinstance(loaded, GMNModule) and loaded.net_config.model == "gmn"
    dm = _dm(zoo_dir, limit=30)
    batch = next(iter(dm.test_dataloader()))
    with torch.no_grad():
        assert loaded.predict_step(batch, 0).shape == (batch.num_graphs,)


def test_a_zoo_row_rebuilds_the_trained_net_with_its_batchnorm_statistics(tmp_path):
    import importlib.util

    from zoo.data.netzoo import rebuild_net
    from zoo.gmn.nets import build_net

    spec_path = Path(__file__).resolve().parent.parent / "scripts" / "gmn_zoo.py"
    spec = importlib.util.spec_from_file_location("gmn_zoo", spec_path)
    gmn_zoo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gmn_zoo)
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(256, 1, 28, 28, generator=g), torch.randint(0, 10, (256,), generator=g)
    for index in (0, 2):  # cnn2d and resnet: both have BatchNorm in some draws
        row = gmn_zoo.train_one(index, 0, x, y, x[:64], y[:64])
        net = rebuild_net(row)
        right = int((net(x[:64]).argmax(1) == y[:64]).sum())
        assert right / 64 == row["accuracy"]
        assert len(row["buffers"]) == sum(b.numel() for b in build_net(json.loads(row["spec"])).buffers()
                                          if b.is_floating_point())  # fmt: skip
