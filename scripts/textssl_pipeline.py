"""TextSSL reproduction (arXiv 2112.06386): throughput, word-vector choice, seeds table, shipped checkpoints.

    python scripts/textssl_pipeline.py throughput            # graph-building docs/s, multi-sentence share, R8 epoch
    python scripts/textssl_pipeline.py vectors [--datasets r8 mr] [--max-epochs E]
                                                             # minilm vs word2vec by validation accuracy
    python scripts/textssl_pipeline.py table [--datasets r8 r52 mr 20ng] [--methods textssl disjoint wordcooc]
                                             [--seeds 5] [--max-epochs E]   # -> results/textssl/table.{json,md}
    python scripts/textssl_pipeline.py grid [--datasets mr] [--seeds 2]
                                             # the official lr x hidden x batch grid, chosen on validation
    python scripts/textssl_pipeline.py ship [--ids textssl-r8 textssl-mr]  # train, register sha256, zoo eval
    python scripts/textssl_pipeline.py golden | cards | md

Every run trains ``recipes/textssl/<dataset>.yaml`` in this process, changing only the method (TextSSL: as written;
disjoint: ``structure=none``; WordCooc: ``structure=none`` on the ``document`` graph with co-occurrence weights), the
seed (``model.seed`` and ``seed_everything``; the validation split stays fixed) and, where given, the epochs. Rows
are appended to the results as they finish, so a stopped table resumes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from zoo.data.textssl import DATASETS
from zoo.methods.textssl import DATASET_NAMES, OFFLINE_VECTORS, PAPER  # PAPER: UNCONFIRMED (textssl.md)
from zoo.utils import machine

REPO = Path(__file__).resolve().parent.parent
RECIPES = REPO / "recipes" / "textssl"
RESULTS = REPO / "results" / "textssl"
METHODS = {  # name: (model.net overrides, data overrides)
    "textssl": ({}, {}),
    "disjoint": ({"structure": "none"}, {}),
    "wordcooc": ({"structure": "none", "edge_weights": "cooc"}, {"graph": "document"}),
}
METHOD_NAMES = {"textssl": "TextSSL", "disjoint": "Disjoint sentence graphs", "wordcooc": "WordCooc"}


def load_recipe(dataset: str) -> dict:
    import yaml

    return yaml.safe_load((RECIPES / f"{dataset}.yaml").read_text())


def run(
    dataset: str, method: str, seed: int, max_epochs: int | None = None, model_over: dict | None = None, **data_over
) -> dict:
    """Train one (dataset, method, seed) in this process; test accuracy at the best validation epoch.
    ``model_over`` changes module arguments (``lr``) and ``net`` entries (``hidden``), ``data_over`` data ones."""
    import lightning as L

    from zoo.methods.textssl import TextSSLModule
    from zoo.textssl.data import TextSSLDataModule

    cfg = load_recipe(dataset)
    net_over, dm_over = METHODS[method]
    model_args = dict(cfg["model"]["init_args"])
    model_over = dict(model_over or {})
    model_args["net"] = dict(model_args.get("net") or {}) | net_over | model_over.pop("net", {})
    model_args |= model_over
    L.seed_everything(seed, verbose=False)
    module = TextSSLModule(**(model_args | {"seed": seed}))
    dm = TextSSLDataModule(**(dict(cfg["data"]["init_args"]) | dm_over | data_over))
    from shipping import fit_and_test

    metrics, run = fit_and_test(module, dm, cfg["trainer"], max_epochs)
    return {
        "accuracy": round(float(metrics["test/accuracy"]), 6),
        "val_accuracy": run["best_val"],
        "best_epoch": run["best_epoch"],
        "epochs": run["epochs"],
        "seconds": run["seconds"],
        "docs": {k: len(v) for k, v in dm.graphs.items()},
        "vectors": dm.hparams.vectors,
    }


def stage_table(args) -> None:
    from shipping import append_row

    path = RESULTS / "table.json"
    done = json.loads(path.read_text())["rows"] if path.exists() else []
    have = {(r["dataset"], r["method"], r["seed"]) for r in done}
    for seed in range(args.from_seed, args.seeds):
        for dataset in args.datasets:
            for method in args.methods:
                if (dataset, method, seed) in have:
                    continue
                row = {"dataset": dataset, "method": method, "seed": seed}
                row |= run(dataset, method, seed, args.max_epochs)
                row |= {"machine": machine(), "max_epochs": args.max_epochs}
                append_row(path, row)
                print(json.dumps(row), flush=True)
                write_md()
    write_md()


def summary(rows: list[dict]) -> dict:
    from zoo.methods import mean_std

    groups: dict = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["method"]), []).append(100 * r["accuracy"])
    return mean_std(groups)


def write_md() -> None:
    path = RESULTS / "table.json"
    if not path.exists():
        return
    rows = json.loads(path.read_text())["rows"]
    s = summary(rows)
    datasets = [d for d in DATASETS if any(k[0] == d for k in s)]
    epochs = sorted({(r["dataset"], r["epochs"]) for r in rows})
    lines = [
        "# TextSSL reproduction",
        "",
        "Test accuracy (%) at the best validation epoch, mean ± std over n seeds (n in brackets); "
        "`python scripts/textssl_pipeline.py table`. Paper: TextSSL's row of the paper's table (UNCONFIRMED, "
        f"recalled; ../shared/papers/textssl.md). Epochs trained per data set: {dict(epochs)}.",
        "",
        "| method | " + " | ".join(DATASET_NAMES[d] for d in datasets) + " |",
        "|---|" + "---|" * len(datasets),
    ]
    for method in METHODS:
        cells = []
        for d in datasets:
            v = s.get((d, method))
            cells.append(f"{v[0]:.2f} ± {v[1]:.2f} ({v[2]})" if v else "–")
        lines.append(f"| {METHOD_NAMES[method]} | " + " | ".join(cells) + " |")
    lines.append("| TextSSL, paper | " + " | ".join(f"{PAPER[d][0]:.2f} ± {PAPER[d][1]:.2f}" for d in datasets) + " |")
    lines += [
        "",
        "Learned sparse edges against the disjoint baseline, paired by seed: " + edge_gain(rows, datasets) + ".",
    ]
    where = {d: sorted({r["machine"] for r in rows if r["dataset"] == d}) for d in datasets}
    lines += [
        "",
        "Machines per data set: " + "; ".join(f"{DATASET_NAMES[d]}: {' + '.join(m)}" for d, m in where.items()) + ".",
    ]
    (RESULTS / "table.md").write_text("\n".join(lines) + "\n")


def edge_gain(rows: list[dict], datasets: list[str]) -> str:
    """Per data set: mean TextSSL − disjoint test accuracy (points) over the seeds both have, and the wins."""
    acc = {(r["dataset"], r["method"], r["seed"]): 100 * r["accuracy"] for r in rows}
    parts = []
    for d in datasets:
        seeds = sorted(k[2] for k in acc if k[:2] == (d, "textssl") and (d, "disjoint", k[2]) in acc)
        if not seeds:
            continue
        gaps = [acc[(d, "textssl", s)] - acc[(d, "disjoint", s)] for s in seeds]
        wins = sum(g > 0 for g in gaps)
        parts.append(
            f"{DATASET_NAMES[d]} {sum(gaps) / len(gaps):+.2f} points (TextSSL ahead on {wins} of {len(gaps)} seeds)"
        )
    return "; ".join(parts) or "no paired seeds yet"


def put_row(path: Path, key: str, row: dict) -> dict:
    """Store ``row`` under ``key`` in the JSON object at ``path``, re-read first (another process may have written);
    returns the whole object."""
    print(key, row, flush=True)
    out = json.loads(path.read_text()) if path.exists() else {}
    out[key] = row
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    return out


def stage_vectors(args) -> None:
    """TextSSL with each offline word-vector source, one seed; choose by validation accuracy."""
    path = RESULTS / "vectors.json"
    out = json.loads(path.read_text()) if path.exists() else {}
    for dataset in args.datasets:
        for source in OFFLINE_VECTORS:
            key = f"{dataset}/{source}"
            if key in out:
                continue
            row = run(dataset, "textssl", 0, args.max_epochs, vectors=source) | {"machine": machine()}
            out = put_row(path, key, row)


def stage_grid(args) -> None:
    """TextSSL over the official lr x hidden x batch grid (seeds 0..n-1 per point, the recipe's epochs and vectors);
    rows to results/textssl/grid.json; prints the point with the best mean validation accuracy."""
    from zoo.methods.textssl import grid_choice, grid_key, grid_points

    path = RESULTS / "grid.json"
    for dataset in args.datasets:
        for seed in range(args.from_seed, args.seeds):
            for point in grid_points(dataset):
                key = grid_key(dataset, point, seed)
                if key in (json.loads(path.read_text()) if path.exists() else {}):
                    continue
                over = {"lr": point["lr"], "net": {"hidden": point["hidden"]}}
                row = run(dataset, "textssl", seed, args.max_epochs, over, batch_size=point["batch_size"])
                put_row(path, key, row | {"machine": machine()})
        rows = json.loads(path.read_text()) if path.exists() else {}
        print(dataset, "choice on validation:", grid_choice(rows, dataset))


def stage_throughput(args) -> None:
    """Documents per second of graph construction (cleaned corpus -> PyG graphs), the share of training documents
    with two or more sentences (the ones with candidate edges) and one R8 training epoch."""
    import lightning as L

    from zoo.data.textssl import load_corpus
    from zoo.methods.textssl import TextSSLModule
    from zoo.textssl.data import TextSSLDataModule, encode
    from zoo.textssl.graph import document_graph

    out = {"machine": machine()}
    for dataset in args.datasets:
        corpus = load_corpus(dataset)
        docs = corpus["train"]["sentences"]
        # only documents of two or more sentences have candidate (learnable) edges
        out[f"{dataset}/multi_sentence_share"] = round(sum(len(d) >= 2 for d in docs) / len(docs), 4)
        out[f"{dataset}/sentences_per_doc"] = round(sum(len(d) for d in docs) / len(docs), 2)
        print(dataset, "documents with 2+ sentences:", out[f"{dataset}/multi_sentence_share"], flush=True)
        index = {w: i for i, w in enumerate(sorted({w for d in docs for s in d for w in s}))}
        for graph in ("sentence", "document"):
            t = time.perf_counter()
            for doc in docs:
                document_graph(encode(doc, index) or [[0]], graph)
            secs = time.perf_counter() - t
            out[f"{dataset}/{graph}/docs_per_second"] = round(len(docs) / secs, 1)
            print(dataset, graph, out[f"{dataset}/{graph}/docs_per_second"], "docs/s", flush=True)
    cfg = load_recipe("r8")
    L.seed_everything(0, verbose=False)
    module = TextSSLModule(**cfg["model"]["init_args"])
    dm = TextSSLDataModule(**cfg["data"]["init_args"])
    dm.setup("fit")
    trainer = L.Trainer(**(dict(cfg["trainer"]) | {"max_epochs": 1, "enable_progress_bar": False}))
    t = time.perf_counter()
    trainer.fit(module, datamodule=dm)
    out["r8/epoch_seconds"] = round(time.perf_counter() - t, 1)
    print("R8 epoch (train + validation):", out["r8/epoch_seconds"], "s", flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "throughput.json").write_text(json.dumps(out, indent=1) + "\n")


def stage_ship(args) -> None:
    from shipping import ship_and_eval

    ship_and_eval(args.ids, RESULTS)
    subprocess.run([sys.executable, __file__, "golden", "--ids", *args.ids], check=True, cwd=REPO)
    subprocess.run([sys.executable, __file__, "cards", "--ids", *args.ids], check=True, cwd=REPO)


GOLDEN_TEXTS = [
    "Shares of the oil company rose after it reported higher quarterly profits and raised its dividend.",
    "The central bank cut interest rates by half a point to support the economy. Analysts expected the move.",
    "A warm, funny and beautifully acted film that never loses its heart.",
    "The plot is dull and the jokes fall flat; a tedious two hours.",
]


def stage_golden(args) -> None:
    """Probabilities of each shipped checkpoint on GOLDEN_TEXTS, for tests/test_textssl_checkpoints.py."""
    import zoo

    golden = REPO / "tests" / "golden"
    golden.mkdir(parents=True, exist_ok=True)
    for model_id in args.ids:
        preds = zoo.from_pretrained(model_id).predict_text(GOLDEN_TEXTS)
        (golden / f"{model_id}.json").write_text(json.dumps({"texts": GOLDEN_TEXTS, "predictions": preds}, indent=1))
        print("golden", model_id, [p["label"] for p in preds], flush=True)


def stage_cards(args) -> None:
    from zoo.cli import write_card

    for model_id in args.ids:
        print(write_card(model_id))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stage", choices=["throughput", "vectors", "grid", "table", "ship", "golden", "cards", "md"])
    parser.add_argument("--datasets", nargs="+", default=None, choices=DATASETS)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--from-seed", type=int, default=0, help="start at this seed (parallel runs split the seeds)")
    parser.add_argument("--max-epochs", type=int, default=None, help="override the recipes' epochs")
    parser.add_argument("--ids", nargs="+", default=["textssl-r8", "textssl-mr"])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    defaults = {"throughput": ["r8", "mr"], "vectors": ["r8", "mr"], "grid": ["mr"]}
    args.datasets = args.datasets or defaults.get(args.stage, list(DATASETS))
    {
        "throughput": stage_throughput,
        "vectors": stage_vectors,
        "grid": stage_grid,
        "table": stage_table,
        "ship": stage_ship,
        "golden": stage_golden,
        "cards": stage_cards,
        "md": lambda a: write_md(),
    }[args.stage](args)


if __name__ == "__main__":
    main()
