"""End to end CONN reproduction at CPU scale: autoencoders, perception, the R x epochs grid, shipped checkpoints,
plots and cards.

Stages (each skips what it already produced under ``runs/conn`` and ``results/conn``, so an interrupted run
resumes where it stopped):

    python scripts/conn_pipeline.py ae         # one memorising AE per R, through the AE recipes (zoo fit)
    python scripts/conn_pipeline.py perceive   # P(train) and P(test) per R, vanilla and stochastic
    python scripts/conn_pipeline.py grid       # classifier on raw / vanilla / stochastic, 5 seeds, 25/100/200 epochs
    python scripts/conn_pipeline.py ship       # shipped checkpoints through the classifier recipe, then zoo eval
    python scripts/conn_pipeline.py basins     # where perception takes the test images (nearest training image)
    python scripts/conn_pipeline.py plots      # figures for the cards and the README
    python scripts/conn_pipeline.py cards      # regenerate the cards (zoo card ID)
    python scripts/conn_pipeline.py all

Requires ``ZOO_DATA`` pointing at the data root (``../shared/data`` here).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import lightning as L
import torch

REPO = Path(__file__).resolve().parent.parent
RUNS = REPO / "runs" / "conn"
RESULTS = REPO / "results" / "conn"
PER_CLASS = (5, 6, 7, 8, 9, 10, 20, 30, 40, 50)
SHIPPED = (10, 50)
METHODS = ("stochastic", "vanilla", "baseline")
EPOCHS = (25, 100, 200)


def _zoo(*args: str) -> None:
    from zoo.cli import main

    print("$ zoo", " ".join(args), flush=True)
    main(list(args))


def ae_dir(r: int) -> Path:
    return RUNS / f"ae-r{r}"


def stage_ae(per_class: list[int]) -> None:
    """The memorising AE of each R through recipes/conn/rmnist_ae.yaml."""
    for r in per_class:
        out = ae_dir(r)
        if not (out / "model.safetensors").exists():
            t = time.perf_counter()
            _zoo(
                "fit",
                "--config",
                str(REPO / "recipes/conn/rmnist_ae.yaml"),
                "--data.init_args.per_class",
                str(r),
                "--trainer.default_root_dir",
                str(RUNS / "lightning"),
                "--trainer.enable_progress_bar",
                "false",
                "--trainer.callbacks+=zoo.hub.SavePretrained",
                f"--trainer.callbacks.dirpath={out}",
            )
            _merge(RESULTS / "ae.json", {f"r{r}-seconds": round(time.perf_counter() - t, 1)})
        _merge(RESULTS / "ae.json", {f"r{r}": ae_quality(r)})


def ae_quality(r: int) -> dict:
    """Memorisation diagnostics of the final AE of R: reconstruction error and vanilla drift on the R-set."""
    import zoo
    from zoo.data.rmnist import load_rmnist

    ae = zoo.from_pretrained(ae_dir(r)).net.autoencoder
    x, _ = load_rmnist(r)
    with torch.no_grad():
        err = (ae(x) - x).flatten(1).norm(dim=1)
        v = x
        for _ in range(30):
            v = ae(v)
        drift = (v - x).flatten(1).norm(dim=1)
    return {
        "recon_max": float(err.max()),
        "recon_mean": float(err.mean()),
        "drift30_max": float(drift.max()),
        "drift30_mean": float(drift.mean()),
        "image_norm_mean": float(x.flatten(1).norm(dim=1).mean()),
    }


def perceived_path(r: int, mode: str) -> Path:
    return RUNS / "perceived" / f"r{r}-{mode}.safetensors"


def perception_config() -> dict:
    """K, T and the schedule of the shipped stochastic recipe (the grid uses the same)."""
    import yaml

    net = yaml.safe_load((REPO / "recipes/conn/rmnist_stochastic.yaml").read_text())["model"]["init_args"]["net"]
    return {k: net[k] for k in ("copies", "steps", "alpha0", "beta", "seed")}


def stage_perceive(per_class: list[int]) -> None:
    from safetensors.torch import load_file, save_file

    import zoo
    from zoo.data.rmnist import load_rmnist
    from zoo.models.conn import PerceptualLayer

    test_x, _ = load_rmnist(None)
    pc = perception_config()
    for r in per_class:
        ae = zoo.from_pretrained(ae_dir(r)).net.autoencoder
        x, _ = load_rmnist(r)
        for mode in ("vanilla", "stochastic"):
            path = perceived_path(r, mode)
            if path.exists():
                continue
            layer = PerceptualLayer(
                mode, pc["copies"] if mode == "stochastic" else 1, pc["steps"], pc["alpha0"], pc["beta"], pc["seed"]
            )
            t = time.perf_counter()
            out = {"train": layer(x, ae).contiguous(), "test": layer(test_x, ae).contiguous()}
            seconds = time.perf_counter() - t
            path.parent.mkdir(parents=True, exist_ok=True)
            save_file(out, path)
            _merge(
                RESULTS / "perceive.json",
                {f"r{r}-{mode}": {"seconds": round(seconds, 1), "images": len(x) + len(test_x)}},
            )
            print(f"perceived R={r} {mode}: {seconds:.0f} s", flush=True)
        load_file(perceived_path(r, "stochastic"))  # fail early on a bad file


class TestAt(L.Callback):
    """Test accuracy (%) after the given epochs, so one 200-epoch run gives the 25, 100 and 200 columns."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, epochs) -> None:
        self.x, self.y, self.epochs, self.acc = x, y, set(epochs), {}

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        if epoch in self.epochs:
            with torch.no_grad():
                pred = module.net.classifier(self.x).argmax(1)
            self.acc[epoch] = float((pred == self.y).float().mean()) * 100


def train_classifier(train_x, train_y, test_x, test_y, seed: int, epochs=EPOCHS, r: int = 10) -> dict[int, float]:
    """The paper's classifier protocol (aside2.py) on given (possibly perceived) images: ConnModule with the
    identity perception, seeded initialisation and batch order, Adam 1e-3, batch 100."""
    from zoo.data.rmnist import RMNISTDataModule
    from zoo.methods.conn import ConnModule

    module = ConnModule(net={"autoencoder": "none", "perception": "none"}, seed=seed)
    dm = RMNISTDataModule(per_class=r, batch_size=100, seed=seed)
    dm.train_x = dm.fit_x = train_x
    dm.train_y = dm.fit_y = train_y
    dm.test_x, dm.test_y = test_x, test_y
    probe = TestAt(test_x, test_y, epochs)
    trainer = L.Trainer(
        max_epochs=max(epochs),
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=[probe],
    )
    trainer.fit(module, datamodule=dm)
    return probe.acc


def stage_grid(per_class: list[int], seeds: int) -> None:
    from safetensors.torch import load_file

    from zoo.data.rmnist import load_rmnist

    path = RESULTS / "grid.json"
    done = json.loads(path.read_text()) if path.exists() else {"rows": []}
    have = {(row["R"], row["method"], row["seed"]) for row in done["rows"]}
    test_x, test_y = load_rmnist(None)
    for r in per_class:
        x, y = load_rmnist(r)
        for method in METHODS:
            for seed in range(seeds):
                if (r, method, seed) in have:
                    continue
                if method == "baseline":
                    tx, ex = x, test_x
                else:
                    p = load_file(perceived_path(r, method))
                    tx, ex = p["train"], p["test"]
                t = time.perf_counter()
                acc = train_classifier(tx, y, ex, test_y, seed, r=r)
                row = {"R": r, "method": method, "seed": seed, "seconds": round(time.perf_counter() - t, 1)}
                row |= {f"acc@{e}": round(a, 2) for e, a in acc.items()}
                _merge(path, row=row)
                print(row, flush=True)


def stage_ship(per_class: list[int]) -> None:
    from zoo import registry
    from zoo.data import sha256_file
    from zoo.hub import cards_dir

    for r in per_class:
        model_id = f"conn-stochastic-rmnist{r}"
        out = cards_dir() / model_id
        if not (out / "model.safetensors").exists():
            _zoo(
                "fit",
                "--config",
                str(REPO / "recipes/conn/rmnist_stochastic.yaml"),
                "--data.init_args.per_class",
                str(r),
                "--model.init_args.init_from",
                str(ae_dir(r)),
                "--trainer.default_root_dir",
                str(RUNS / "lightning"),
                "--trainer.callbacks+=zoo.hub.SavePretrained",
                f"--trainer.callbacks.dirpath={out}",
                f"--trainer.callbacks.model_id={model_id}",
            )
        registry.write_sha256(model_id, sha256_file(out / "model.safetensors"))
    for r in per_class:  # a fresh process so that the registry holds the new hashes
        model_id = f"conn-stochastic-rmnist{r}"
        os.system(f"{sys.executable} -m zoo.cli eval {model_id} --json > {RESULTS / (model_id + '.log')} 2>&1")
        last = (RESULTS / f"{model_id}.log").read_text().strip().splitlines()[-1]
        (RESULTS / f"{model_id}.json").write_text(json.dumps(json.loads(last), indent=1) + "\n")
        print(model_id, last, flush=True)
        os.system(f"{sys.executable} {__file__} golden --per-class {model_id.removeprefix('conn-stochastic-rmnist')}")


def stage_golden(per_class: list[int]) -> None:
    """Golden outputs of each shipped checkpoint on 8 test images, for tests/test_checkpoints.py."""
    from safetensors.torch import save_file

    import zoo
    from zoo.data.rmnist import load_rmnist

    x, _ = load_rmnist(None)
    index = torch.arange(0, 1000, 125)
    for r in per_class:
        model_id = f"conn-stochastic-rmnist{r}"
        with torch.no_grad():
            logits = zoo.from_pretrained(model_id)(x[index])
        path = REPO / "tests" / "golden" / f"{model_id}.safetensors"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({"index": index, "logits": logits.contiguous()}, path)


def stage_basins() -> None:
    """Where perception takes the test images: label accuracy of the nearest training image (1-NN) for raw,
    vanilla-perceived and stochastic-perceived test images, and their mean distance to it."""
    from safetensors.torch import load_file

    from zoo.data.rmnist import load_rmnist

    test_x, test_y = load_rmnist(None)
    out = {}
    for r in PER_CLASS:
        if not perceived_path(r, "stochastic").exists():
            continue
        x, y = load_rmnist(r)
        row = {}
        for name, images in [("raw", test_x)] + [
            (m, load_file(perceived_path(r, m))["test"]) for m in ("vanilla", "stochastic")
        ]:
            d = torch.cdist(images.flatten(1), x.flatten(1))
            nearest = d.min(1)
            row[name] = {
                "nn_accuracy": round(100 * float((y[nearest.indices] == test_y).float().mean()), 2),
                "nn_distance": round(float(nearest.values.mean()), 3),
            }
        out[f"r{r}"] = row
    (RESULTS / "basins.json").write_text(json.dumps(out, indent=1) + "\n")


def stage_plots() -> None:
    """accuracy_vs_R.png (mean +- std over seeds per method and epochs, the paper's numbers dashed) and
    perception.png (input -> vanilla -> stochastic for test images)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from safetensors.torch import load_file

    from zoo.data.rmnist import load_rmnist
    from zoo.methods.conn import PAPER, grid_summary

    out = RESULTS
    summary = grid_summary(json.loads((RESULTS / "grid.json").read_text())["rows"])
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), sharey=True)
    colours = {"stochastic": "tab:blue", "vanilla": "tab:orange", "baseline": "tab:green"}
    for ax, epochs in zip(axes, EPOCHS):
        for method in METHODS:
            rs = [r for r in PER_CLASS if (r, method, epochs) in summary]
            if not rs:
                continue
            m = [summary[(r, method, epochs)][0] for r in rs]
            s = [summary[(r, method, epochs)][1] for r in rs]
            ax.errorbar(rs, m, yerr=s, marker="o", capsize=3, color=colours[method], label=f"ours: {method}")
            ref = PAPER.get((method, epochs))
            if ref:
                ax.plot(PER_CLASS, ref, ls="--", marker="x", color=colours[method], alpha=0.6, label=f"paper: {method}")
        ax.set_xscale("log")
        ax.set_xticks(PER_CLASS, [str(r) for r in PER_CLASS])
        ax.set_title(f"classifier trained {epochs} epochs")
        ax.set_xlabel("R, training images per class")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy (%), 1000 images")
    axes[-1].legend(fontsize=8, loc="lower right")
    fig.suptitle("CONN on restricted MNIST: ours (mean ± std over seeds, scaled) vs the paper (dashed)")
    fig.tight_layout()
    fig.savefig(out / "accuracy_vs_R.png", dpi=110)
    plt.close(fig)

    test_x, test_y = load_rmnist(None)
    idx = [int((test_y == d).nonzero()[0]) for d in range(10)]
    rows = [("input", test_x)]
    for r in (5, 10, 50):
        for mode in ("vanilla", "stochastic"):
            if perceived_path(r, mode).exists():
                rows.append((f"R={r}\n{mode}", load_file(perceived_path(r, mode))["test"]))
    fig, axes = plt.subplots(len(rows), 10, figsize=(10, 1.05 * len(rows)))
    for i, (name, images) in enumerate(rows):
        for j, k in enumerate(idx):
            axes[i, j].imshow(images[k, 0].clamp(0, 1), cmap="gray", vmin=0, vmax=1)
            axes[i, j].set_xticks([])
            axes[i, j].set_yticks([])
        axes[i, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle("Test images and what the network perceives (P(x)) with the AE of each R", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "perception.png", dpi=100)
    plt.close(fig)


def stage_cards(per_class: list[int]) -> None:
    import shutil

    from zoo.hub import cards_dir

    for r in per_class:
        model_id = f"conn-stochastic-rmnist{r}"
        for png in ("accuracy_vs_R.png", "perception.png"):
            if (RESULTS / png).exists():
                shutil.copy(RESULTS / png, cards_dir() / model_id / png)
        _zoo("card", model_id)


def _merge(path: Path, update: dict | None = None, row: dict | None = None) -> None:
    """Read-modify-write a JSON results file under a lock (several workers may share it)."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = json.loads(path.read_text()) if path.exists() else ({"rows": []} if row is not None else {})
        if update:
            data.update(update)
        if row is not None:
            data["rows"].append(row)
        path.write_text(json.dumps(data, indent=1, sort_keys=row is None) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    stage_names = ["ae", "perceive", "grid", "ship", "golden", "basins", "plots", "cards", "all"]
    parser.add_argument("stage", choices=stage_names)
    parser.add_argument("--per-class", type=int, nargs="+", default=list(PER_CLASS))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("ZOO_THREADS", "2")))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    stages = ["ae", "perceive", "grid", "ship", "basins", "plots", "cards"] if args.stage == "all" else [args.stage]
    for stage in stages:
        if stage == "ae":
            stage_ae(args.per_class)
        elif stage == "perceive":
            stage_perceive(args.per_class)
        elif stage == "grid":
            stage_grid(args.per_class, args.seeds)
        elif stage == "ship":
            stage_ship([r for r in args.per_class if r in SHIPPED])
        elif stage == "golden":
            stage_golden([r for r in args.per_class if r in SHIPPED])
        elif stage == "basins":
            stage_basins()
        elif stage == "plots":
            stage_plots()
        elif stage == "cards":
            stage_cards([r for r in args.per_class if r in SHIPPED])


if __name__ == "__main__":
    main()
