"""GMN reproduction (arXiv 2312.04501): accuracy prediction from weights on the zoo of ``scripts/gmn_zoo.py``.

Stages:

    python scripts/gmn_pipeline.py recipes    # write recipes/gmn/<model>_<kind>.yaml (model x kind)
    python scripts/gmn_pipeline.py table [--model gmn dmc] [--kind cnn] [--split 100 ood] [--seeds 3] [--threads 1]
                                              # one run per seed and cell -> results/gmn/table.json (resumable)
                                              # and results/gmn/table.md (mean ± std beside the paper's R²)
    python scripts/gmn_pipeline.py md         # only rewrite results/gmn/table.md from table.json
    python scripts/gmn_pipeline.py curve [--seeds 3]
                                              # learning curve on the varying CNNs: every metanet trained on 10, 25,
                                              # 50 and 100% of the training nets (rows in table.json, resumable)
                                              # -> results/gmn/curve.{md,png}, copied into the GMN card
    python scripts/gmn_pipeline.py ship       # train gmn-cnn-netzoo into cards/, record its sha256, zoo eval, card

The table runs every recipe unchanged except the split (``data.init_args.split``) and the seed (``model.seed`` and
``seed_everything``; the data split's own seed stays fixed, so all seeds see the same nets). For a quick check,
``--limit N`` (first N nets of the kind), ``--max-epochs E``, ``--root DIR`` (another zoo) and ``--results DIR``
(keep such rows out of the real table). Requires the zoo (``python scripts/gmn_zoo.py``).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch

from zoo.data.netzoo import check_split
from zoo.methods.gmn import KIND_NAMES, MODEL_NAMES, SPLIT_NAMES

REPO = Path(__file__).resolve().parent.parent
RECIPES = REPO / "recipes" / "gmn"
RESULTS = REPO / "results" / "gmn"
MODELS = ("gmn", "dmc", "deepsets", "statnn")
KINDS = ("cnn", "diverse")
SPLITS = ("100", "10", "ood")

# The paper's test R² (mean ± std over 5 seeds), UNCONFIRMED: from a third-party summary (../shared/papers/gmn.md),
# not checked against the PDF; no τ, no StatNN, no 10% row for varying CNNs. The summary also gives DMC .387±.229
# for diverse OOD, which conflicts with the varying-CNN OOD row, so it is left out.
PAPER_R2 = {
    ("cnn", "100"): {"deepsets": (0.778, 0.002), "dmc": (0.948, 0.009), "gmn": (0.978, 0.002)},
    ("diverse", "100"): {"deepsets": (0.562, 0.020), "dmc": (0.957, 0.009), "gmn": (0.975, 0.002)},
    ("diverse", "10"): {"deepsets": (0.126, 0.015), "dmc": (0.810, 0.046), "gmn": (0.918, 0.002)},
    ("cnn", "ood"): {"deepsets": (0.741, 0.015), "dmc": (0.387, 0.229), "gmn": (0.891, 0.037)},
    ("diverse", "ood"): {"gmn": (0.768, 0.027)},
}

# recipe contents per model: options of its config (value, comment), lr, weight decay, epochs per kind, and why
MODEL_RECIPES = {
    "gmn": {
        "title": "GMN (edge-updating MPNN over the parameter graph)",
        "options": [
            ("hidden", 32, "node/edge feature width h (CPU-sized; gmn.md: h=64 costs ~3x per step)"),
            ("layers", 4, "message-passing blocks; the last updates edges only"),
            ("readout_hidden", 0, "readout width; 0 = hidden"),
            ("zero_init", True, "every block starts as the identity"),
            ("undirected", False, "message passing along the input network's direction only"),
            ("activation_embedding", False, "the paper's schema: activations not encoded"),
        ],
        "lr": 0.001,
        "weight_decay": 0.0,
        "epochs": {"cnn": 50, "diverse": 40},
        "why": "h=32, 4 blocks (56k parameters); an epoch over ~1,400 diverse graphs takes ~30 s on 1 thread",
    },
    "dmc": {
        "title": "DMC baseline (1D CNN over the flattened parameter vector, DeepSets readout)",
        "options": [
            ("hidden", 32, "largest channel count and readout width"),
            ("layers", 10, "conv blocks (the paper's 10)"),
            ("channels", 8, "channels of the first conv, doubled per block up to hidden"),
            ("kernel_size", 5, "conv kernel (the paper's 5)"),
        ],
        "lr": 0.001,
        "weight_decay": 0.0,
        "epochs": {"cnn": 50, "diverse": 50},
        "why": "the paper's depth and kernel with channels capped at 32 (42k parameters)",
    },
    "deepsets": {
        "title": "DeepSets baseline over the set of (value, layer, type) of all parameters",
        "options": [("hidden", 64, "width of phi and rho")],
        "lr": 0.001,
        "weight_decay": 0.0,
        "epochs": {"cnn": 50, "diverse": 50},
        "why": "10k parameters; an epoch takes seconds",
    },
    "statnn": {
        "title": "StatNN baseline (MLP on 7 statistics of every parameter tensor)",
        "options": [
            ("hidden", 64, "MLP width"),
            ("max_tensors", 48, "statistics padded to 48 tensors (the zoo's ViTs have up to 38)"),
            ("layers", 2, "hidden layers"),
        ],
        "lr": 0.001,
        "weight_decay": 0.01,
        "epochs": {"cnn": 50, "diverse": 50},
        "why": "AdamW with weight decay 1e-2 and 50 epochs, as in Unterthiner et al. 2020",
    },
}


def _line(text: str, comment: str, column: int = 36) -> str:
    return f"{text.ljust(column - 1)} # {comment}"


def _yaml_value(value) -> str:
    return json.dumps(value) if isinstance(value, bool) else str(value)


def recipe_text(model: str, kind: str) -> str:
    """A commented LightningCLI recipe for ``model`` on the zoo's ``kind`` nets."""
    r = MODEL_RECIPES[model]
    epochs = r["epochs"][kind]
    kind_text = "2D CNNs only (the paper's varying CNNs)" if kind == "cnn" else "all five families (diverse archs)"
    lines = [
        f"# {r['title']}.",
        f"# Task: predict a network's MNIST test accuracy from its weights; input nets: {kind_text}.",
        f"# CPU-friendly choice: {r['why']}.",
        "# The split is a command-line choice: --data.init_args.split 100 (default, 70/10/20), 10 (10% of the training",
        "# nets) or ood (train on widths <= 8, test on widths >= 12). Needs the zoo: python scripts/gmn_zoo.py",
        "# Generated by scripts/gmn_pipeline.py recipes, which also runs the seeds table.",
        f"# Usage: zoo fit --config recipes/gmn/{model}_{kind}.yaml [--data.init_args.split ood]",
        _line("seed_everything: 0", "global seed (shuffling); the model seeds its init from model.seed"),
        _line("trainer:", "lightning.Trainer arguments"),
        _line("  accelerator: auto", "a GPU when there is one; CPU works (see the header)"),
        _line(f"  max_epochs: {epochs}", "full passes over the training nets"),
        _line("  logger: false", "results are written by the scripts; add a logger to see curves"),
        _line("  enable_checkpointing: false", "the module keeps the best-validation-R² weights itself"),
        _line("  enable_model_summary: false", "keep the output short"),
        _line("  num_sanity_val_steps: 0", "no validation before training"),
        _line("model:", "the LightningModule and its arguments"),
        _line("  class_path: zoo.methods.gmn.GMNModule", "accuracy prediction from parameter graphs"),
        _line("  init_args:", "GMNModule arguments"),
        _line(f"    lr: {r['lr']}", "Adam(W) learning rate"),
        _line(f"    weight_decay: {r['weight_decay']}", "AdamW decoupled weight decay (0 = Adam)"),
        _line("    seed: 0", "initialisation seed of the metanetwork"),
        _line("    net:", "MetanetConfig: which metanetwork, and its config"),
        _line(f"      model: {model}", "gmn | dmc | deepsets | statnn"),
        _line("      options:", f"keyword arguments of the {model} config (zoo.models.gmn)"),
    ]
    for key, value, comment in r["options"]:
        lines.append(_line(f"        {key}: {_yaml_value(value)}", comment))
    lines += [
        _line("data:", "the LightningDataModule and its arguments"),
        _line("  class_path: zoo.data.netzoo.NetZooDataModule", "zoo nets as parameter graphs + accuracy"),
        _line("  init_args:", "NetZooDataModule arguments"),
        _line("    root: null", "the zoo folder; null = $ZOO_CACHE/gmn_zoo"),
        _line(f"    kind: {kind}", "cnn (2D CNNs) | diverse (all families)"),
        _line('    split: "100"', "100 | 10 | ood"),
        _line("    seed: 0", "seed of the split (fixed across training seeds)"),
        _line("    batch_size: 32", "graphs per batch"),
    ]
    return "\n".join(lines) + "\n"


def stage_recipes() -> None:
    RECIPES.mkdir(parents=True, exist_ok=True)
    for model in MODELS:
        for kind in KINDS:
            (RECIPES / f"{model}_{kind}.yaml").write_text(recipe_text(model, kind))


def run_recipe(
    path: Path,
    seed: int,
    split: str,
    limit: int | None = None,
    root: str | None = None,
    max_epochs: int | None = None,
) -> dict:
    """Train the recipe once with ``seed`` on ``split`` in this process; returns test/val metrics and timings."""
    import lightning as L
    import yaml

    from zoo.data.netzoo import NetZooDataModule
    from zoo.methods.gmn import GMNModule

    cfg = yaml.safe_load(path.read_text())
    L.seed_everything(seed, verbose=False)
    module = GMNModule(**(dict(cfg["model"]["init_args"]) | {"seed": seed}))
    data_args = dict(cfg["data"]["init_args"]) | {"split": split}
    if limit is not None:
        data_args["limit"] = limit
    if root is not None:
        data_args["root"] = root
    dm = NetZooDataModule(**data_args)
    from shipping import fit_and_test

    metrics, run = fit_and_test(module, dm, cfg["trainer"], max_epochs)
    return {
        "r2": round(float(metrics["test/r2"]), 6),
        "kendall_tau": round(float(metrics["test/kendall_tau"]), 6),
        "mse": round(float(metrics["test/mse"]), 6),
        "val_r2": run["best_val"],
        "best_epoch": run["best_epoch"],
        "epochs": run["epochs"],
        "seconds": run["seconds"],
        "nets": {k: len(v) for k, v in dm.split_ids.items()},
    }


def stage_table(args) -> None:
    path = args.results / "table.json"
    done = json.loads(path.read_text()) if path.exists() else {"rows": []}
    have = {(r["kind"], r["split"], r["model"], r["seed"]) for r in done["rows"]}
    from zoo.utils import machine

    for seed in range(args.from_seed, args.seeds):
        for kind in args.kind:
            for split in args.split:
                for model in args.model:
                    if (kind, split, model, seed) in have:
                        continue
                    row = {"kind": kind, "split": split, "model": model, "seed": seed}
                    row |= run_recipe(
                        RECIPES / f"{model}_{kind}.yaml", seed, split, args.limit, args.root, args.max_epochs
                    )
                    row |= {"machine": machine(), "limit": args.limit, "max_epochs": args.max_epochs}
                    _merge(path, row)
                    write_md(args.results)
                    print(json.dumps(row), flush=True)
    write_md(args.results)


def _merge(path: Path, row: dict) -> None:
    from shipping import append_row

    append_row(path, row)


def summary(rows: list[dict]) -> dict:
    """``(kind, split, model, metric) -> (mean, std, n)`` over seeds; seconds per ``(..., "seconds", "CPU"|"GPU")``."""
    from zoo.methods import mean_std

    groups: dict = {}
    for r in rows:
        for metric in ("r2", "kendall_tau", "mse"):
            groups.setdefault((r["kind"], r["split"], r["model"], metric), []).append(r[metric])
        # wall time only means something per kind of device
        device = "GPU" if "NVIDIA" in r.get("machine", "") else "CPU"
        groups.setdefault((r["kind"], r["split"], r["model"], "seconds", device), []).append(r["seconds"])
    return mean_std(groups)


def table_markdown(rows: list[dict]) -> str:
    """Markdown: test R² and Kendall τ (mean ± std over seeds) per kind × split × model, beside the paper's R²."""
    s = summary(rows)
    lines = [
        "| zoo | split | metanet | R² (ours) | R² (paper, unconfirmed) | Kendall τ (ours) | test MSE (ours) "
        "| s / run (device) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for kind in KINDS:
        for split in SPLITS:
            for model in MODELS:
                r2 = s.get((kind, split, model, "r2"))
                if r2 is None:
                    cells = ["not run", "", "", ""]
                else:
                    tau, mse = (s[(kind, split, model, m)] for m in ("kendall_tau", "mse"))
                    sec = [
                        f"{s[key][0]:.0f} {dev}"
                        for dev in ("CPU", "GPU")
                        if (key := (kind, split, model, "seconds", dev)) in s
                    ]
                    cells = [
                        f"{r2[0]:.3f} ± {r2[1]:.3f} (n={r2[2]})",
                        f"{tau[0]:.3f} ± {tau[1]:.3f}",
                        f"{mse[0]:.4f} ± {mse[1]:.4f}",
                        ", ".join(sec),
                    ]
                ref = PAPER_R2.get((kind, split), {}).get(model)
                cells.insert(1, f"{ref[0]:.3f} ± {ref[1]:.3f}" if ref else "–")
                lines.append(
                    f"| {KIND_NAMES[kind]} | {SPLIT_NAMES[split]} | {MODEL_NAMES[model]} | " + " | ".join(cells) + " |"
                )
    return "\n".join(lines)


def write_md(results: Path) -> None:
    path = results / "table.json"
    if not path.exists():
        return
    data = json.loads(path.read_text())
    rows = data["rows"]
    machines = sorted({r.get("machine", "?") for r in rows})
    limited = sorted({(r.get("limit"), r.get("max_epochs")) for r in rows} - {(None, None)})
    note = f"\n\n**Smoke rows** (limit, max_epochs) {limited}: not comparable with the paper.\n" if limited else "\n"
    text = (
        "Accuracy prediction from weights on our MNIST network zoo (`scripts/gmn_zoo.py`): test R², Kendall τ and MSE "
        "of the predicted accuracy, mean ± std over seeds 0…n−1 (`python scripts/gmn_pipeline.py table`), recipes "
        "`recipes/gmn/<model>_<kind>.yaml`. The paper's numbers (CIFAR-10 zoos, 5 seeds) come from a third-party "
        "summary and are **unconfirmed** (see ../shared/papers/gmn.md); our zoo is smaller and different, so only "
        "orderings are comparable. Varying CNNs = 2D CNNs only; OOD = train on widths ≤ 8, test on widths ≥ 12.\n\n"
        + table_markdown(rows)
        + note
        + "\nMachines: "
        + "; ".join(machines)
        + "\n"
    )
    (results / "table.md").write_text(text)


SHIP = ("gmn-cnn-netzoo",)


def golden_nets() -> list:
    """Four small seeded CNNs (independent of the zoo) whose predicted accuracies the golden test pins."""
    from torch import nn

    nets = []
    for seed, width in enumerate((4, 8, 8, 16)):
        torch.manual_seed(seed)
        nets.append(
            nn.Sequential(
                nn.Conv2d(1, width, 3), nn.ReLU(), nn.Conv2d(width, width, 3), nn.ReLU(),
                nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10),
            )
        )  # fmt: skip
    return nets


CURVE_SPLITS = ("10", "25", "50", "100")
PAPER_TRAIN_NETS = 15_000  # the paper's training zoo (gmn.md: 15,000 training networks)


def stage_curve(args) -> None:
    """Train the missing (model, percentage, seed) cells of the varying-CNN learning curve, then write it."""
    args.kind, args.split = ["cnn"], list(CURVE_SPLITS)
    stage_table(args)
    write_curve(args.results)


def curve_points(rows: list[dict]) -> dict[str, list[tuple[int, float, float, int]]]:
    """``model -> [(training nets, mean R², std R², seeds)]`` over the curve's percentages (varying CNNs)."""
    from zoo.methods import mean_std

    groups: dict = {}
    nets: dict = {}
    for r in rows:
        if r["kind"] == "cnn" and r["split"] in CURVE_SPLITS and r.get("limit") is None and r.get("max_epochs") is None:
            groups.setdefault((r["model"], r["split"]), []).append(r["r2"])
            nets[r["split"]] = r["nets"]["train"]
    r2 = mean_std(groups)
    return {
        model: [(nets[split], *r2[(model, split)]) for split in CURVE_SPLITS if (model, split) in r2]
        for model in MODELS
        if any((model, split) in r2 for split in CURVE_SPLITS)
    }


def per_doubling(points: list[tuple[int, float, float, int]]) -> float:
    """Least-squares slope of mean R² against log2(training nets): R² gained per doubling of the zoo."""
    x = torch.tensor([p[0] for p in points], dtype=torch.float64).log2()
    y = torch.tensor([p[1] for p in points], dtype=torch.float64)
    x = x - x.mean()
    return float((x * (y - y.mean())).sum() / (x * x).sum())


def write_curve(results: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = json.loads((results / "table.json").read_text())["rows"]
    pts = curve_points(rows)
    if not pts:
        return
    sizes = sorted({p[0] for v in pts.values() for p in v})
    lines = ["| training nets | " + " | ".join(MODEL_NAMES[m] for m in pts) + " |", "|---:|" + "---|" * len(pts)]
    for n in sizes:
        cells = []
        for m in pts:
            hit = [p for p in pts[m] if p[0] == n]
            cells.append(f"{hit[0][1]:.3f} ± {hit[0][2]:.3f} (n={hit[0][3]})" if hit else "–")
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    slopes = {m: per_doubling(v) for m, v in pts.items() if len(v) >= 2}
    lines.append("| R² per doubling of the training nets | " + " | ".join(
        f"{slopes[m]:+.3f}" if m in slopes else "–" for m in pts) + " |")  # fmt: skip
    biggest = max(sizes)
    leaders = []
    for n in sizes:
        at = {m: p[1] for m, v in pts.items() for p in v if p[0] == n}
        leaders.append(f"{n}: {MODEL_NAMES[max(at, key=at.get)]}")
    last = {m: v[-1][1] - v[-2][1] for m, v in pts.items() if len(v) >= 2}
    summary = (
        "Best mean R² by number of training nets: " + ", ".join(leaders) + ". Change over the last doubling: "
        + ", ".join(f"{MODEL_NAMES[m]} {d:+.3f}" for m, d in last.items()) + "."
    )  # fmt: skip
    text = (
        "Test R² on the varying-CNN zoo (same validation and test nets) when each metanet trains on 10, 25, 50 and "
        "100% of the training nets (nested subsets), mean ± std over seeds (`python scripts/gmn_pipeline.py "
        f"curve`). The paper trains on {PAPER_TRAIN_NETS:,} networks, {PAPER_TRAIN_NETS / biggest:.0f}× our "
        f"{biggest}.\n\n" + "\n".join(lines) + "\n\n" + summary + "\n"
    )
    (results / "curve.md").write_text(text)
    fig, ax = plt.subplots(figsize=(6, 4))
    for m, v in pts.items():
        ax.errorbar([p[0] for p in v], [p[1] for p in v], yerr=[p[2] for p in v], marker="o", capsize=3,
                    label=MODEL_NAMES[m])  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_xlabel("training networks (varying CNNs)")
    ax.set_ylabel("test R² of the predicted accuracy")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(results / "curve.png", dpi=110)
    plt.close(fig)
    for model_id in SHIP:
        card = REPO / "cards" / model_id
        if card.is_dir():
            (card / "curve.png").write_bytes((results / "curve.png").read_bytes())
    print(text)


def stage_ship(args) -> None:
    """Train the shipped checkpoints through `zoo fit`, record their sha256, `zoo eval` them, golden, cards."""
    import subprocess
    import sys

    from shipping import ship_and_eval

    ship_and_eval(SHIP, RESULTS)
    subprocess.run([sys.executable, __file__, "golden"], check=True, cwd=REPO)
    subprocess.run([sys.executable, "-m", "zoo.cli", "card", *SHIP[:1]], check=True, cwd=REPO)


def stage_golden() -> None:
    """Predicted accuracies of each shipped checkpoint on ``golden_nets()``, for tests/test_gmn_checkpoints.py."""
    from torch_geometric.data import Batch

    import zoo
    from zoo.gmn import to_graph

    for model_id in SHIP:
        model = zoo.from_pretrained(model_id)
        with torch.no_grad():
            pred = torch.sigmoid(model(Batch.from_data_list([to_graph(n) for n in golden_nets()])))
        out = REPO / "tests" / "golden" / f"{model_id}.json"
        out.write_text(json.dumps({"predicted_accuracy": [round(float(v), 6) for v in pred]}, indent=1) + "\n")
        print("golden", model_id, pred.tolist())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=["recipes", "table", "md", "curve", "ship", "golden"])
    parser.add_argument("--model", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--kind", nargs="+", default=list(KINDS), choices=KINDS)
    parser.add_argument("--split", nargs="+", default=list(SPLITS), type=check_split,
                        help="'ood' or training percentages such as 100 10 25")  # fmt: skip
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0…n−1 per cell")
    parser.add_argument("--from-seed", type=int, default=0, help="start at this seed (parallel runs split the seeds)")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("ZOO_THREADS", "1")))
    parser.add_argument("--limit", type=int, default=None, help="smoke runs: first N nets of the kind")
    parser.add_argument("--max-epochs", type=int, default=None, help="smoke runs: override the recipe's epochs")
    parser.add_argument("--root", default=None, help="zoo folder (default $ZOO_CACHE/gmn_zoo)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where table.json/.md go (default results/gmn)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.stage == "recipes":
        stage_recipes()
    elif args.stage == "table":
        stage_table(args)
    elif args.stage == "ship":
        stage_ship(args)
    elif args.stage == "curve":
        stage_curve(args)
    elif args.stage == "golden":
        stage_golden()
    else:
        write_md(args.results)


if __name__ == "__main__":
    main()
