"""The `zoo` command: recipes parse, the debug recipe trains, training resumes exactly, DDP on CPU, and the
listing/eval/card/push commands."""

import json
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch

from zoo.cli import main

REPO = Path(__file__).resolve().parent.parent
RECIPES = sorted((REPO / "recipes").rglob("*.yaml"))


@pytest.mark.parametrize("recipe", RECIPES, ids=[str(r.relative_to(REPO / "recipes")) for r in RECIPES])
def test_every_recipe_parses_and_comments_every_key(recipe, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(recipe), "--print_config"])
    assert exit_info.value.code == 0
    assert "class_path" in capsys.readouterr().out
    for n, line in enumerate(recipe.read_text().splitlines(), 1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#") and not stripped.startswith("- ") and ":" in stripped:
            assert "#" in line, f"{recipe.name}:{n} has no comment: {line!r}"


def test_every_family_has_a_debug_recipe():
    from zoo import registry

    registry._load_all()
    for family in registry._FAMILIES:
        assert (REPO / "recipes" / family / "debug.yaml").exists(), family


def _debug_fit(tmp_path, *extra):
    out = tmp_path / "export"
    main(
        [
            "fit",
            "--config",
            str(REPO / "recipes/conn/debug.yaml"),
            "--trainer.default_root_dir",
            str(tmp_path),
            "--trainer.callbacks+=zoo.hub.SavePretrained",
            f"--trainer.callbacks.dirpath={out}",
            *extra,
        ]
    )
    return out


def test_debug_recipe_trains_exports_and_fine_tunes(tmp_path):
    out = _debug_fit(tmp_path / "a")
    first = __import__("zoo").from_pretrained(out)
    tuned = _debug_fit(tmp_path / "b", "--model.init_from", str(out), "--model.lr", "0.01")
    second = __import__("zoo").from_pretrained(tuned)
    a, b = first.net.state_dict(), second.net.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a if k.startswith("autoencoder"))
    assert not all(torch.equal(a[k], b[k]) for k in a if k.startswith("classifier"))


class _Crash(L.Callback):
    def __init__(self, at_step: int) -> None:
        self.at_step = at_step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.at_step:
            raise RuntimeError("simulated crash")


def test_interrupted_training_resumes_to_the_same_weights(tmp_path):
    from lightning.pytorch.callbacks import ModelCheckpoint

    from zoo.data.rmnist import RMNISTDataModule
    from zoo.methods.conn import ConnModule

    net = {"autoencoder": "mlp", "ae_widths": [64, 16], "copies": 2, "steps": 2, "classifier_widths": [32, 16]}

    def trainer(root, *callbacks):
        return L.Trainer(
            max_epochs=3,
            default_root_dir=root,
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            accelerator="cpu",
            callbacks=list(callbacks),
        )

    def data():
        return RMNISTDataModule(per_class=5, batch_size=20, seed=0)  # 3 batches per epoch

    full = ConnModule(net=net)
    trainer(tmp_path / "full").fit(full, datamodule=data())

    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=1, save_last=True)
    crashed = ConnModule(net=net)
    with pytest.raises(RuntimeError, match="simulated crash"):
        trainer(tmp_path / "run", ckpt, _Crash(at_step=4)).fit(crashed, datamodule=data())  # mid epoch 1
    resumed = ConnModule(net=net)
    trainer(tmp_path / "run").fit(resumed, datamodule=data(), ckpt_path=tmp_path / "ckpt" / "last.ckpt")
    a, b = full.net.state_dict(), resumed.net.state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_debug_recipe_runs_with_ddp_on_two_cpu_processes(tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "zoo.cli",
        "fit",
        "--config",
        str(REPO / "recipes/conn/debug.yaml"),
        "--trainer.strategy",
        "ddp",
        "--trainer.devices",
        "2",
        "--trainer.accelerator",
        "cpu",
        "--trainer.default_root_dir",
        str(tmp_path),
        "--trainer.enable_progress_bar",
        "false",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "GLOBAL_RANK: 1" in proc.stderr + proc.stdout or "distributed_backend=gloo" in proc.stderr + proc.stdout


def test_list_shows_ids(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["id", "data", "metric", "size"]


def test_unknown_id_is_a_clean_error(capsys):
    assert main(["eval", "conn-nope", "--json"]) == 2
    assert "unknown model id 'conn-nope'" in capsys.readouterr().err


def test_eval_json_last_line_is_metrics(tmp_path, capsys):
    """`zoo eval` on a folder whose config names a registered id: that id's test data, one JSON line last.
    (A small module keeps this fast; tests/test_checkpoints.py checks the shipped ones, the slow test the card.)"""
    from zoo.methods.conn import ConnModule

    net = {"autoencoder": "mlp", "ae_widths": [32, 8], "copies": 2, "steps": 2, "classifier_widths": [16, 8]}
    module = ConnModule(net=net)
    module.model_id = "conn-stochastic-rmnist10"
    module.save_pretrained(tmp_path / "small")
    assert main(["eval", str(tmp_path / "small"), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["model"] == "conn-stochastic-rmnist10" and metrics["dataset"] == "rmnist-10"
    assert 0 <= metrics["accuracy"] <= 1 and metrics["seconds"] > 0
