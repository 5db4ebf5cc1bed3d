"""Benchmark of the GAug family on this machine.

1. Wall time of one training run (seed 0, the shipped recipes unchanged) per method × GNN on Cora.
2. The GCN adjacency normalisation alone: our sparse form (PyG ``gcn_norm``, O(E)) and the dense broadcast form used
   on GAug-O's sampled graphs (O(N²)) against the official dense form D^-1/2 A D^-1/2 with diagonal matrices (O(N³)),
   in one process, with the ratio.

    python scripts/bench_gaug.py [--skip-training] [--repeats 5]

With ``--skip-training`` the training times are read from the seed-0 Cora rows of results/gaug/table.json, if any.

Writes results/gaug/bench.json and bench.md (tables naming the machine; the README copies bench.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))


def _time(fn, repeats: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def bench_normalisation(repeats: int) -> dict:
    from zoo.data.gaug import load_gaug_graph
    from zoo.models.gaug import dense_gcn_normalize, gcn_normalize

    g = load_gaug_graph("cora")
    n = g.num_nodes
    dense = torch.zeros(n, n)
    dense[g.edge_index[0], g.edge_index[1]] = 1
    dense += torch.eye(n)

    def official():
        d = torch.diag(dense.sum(1).pow(-0.5))
        return d @ dense @ d

    ours_sparse = _time(lambda: gcn_normalize(g.edge_index, n), repeats)
    ours_dense = _time(lambda: dense_gcn_normalize(dense), repeats)
    ref = _time(official, repeats)
    idx, w = gcn_normalize(g.edge_index, n)
    check = torch.zeros(n, n).index_put_((idx[0], idx[1]), w, accumulate=True)
    err = float((check - official()).abs().max())
    return {
        "official_dense_s": ref,
        "sparse_s": ours_sparse,
        "dense_broadcast_s": ours_dense,
        "ratio_sparse": ref / ours_sparse,
        "ratio_dense_broadcast": ref / ours_dense,
        "max_abs_diff": err,
    }


def bench_training() -> dict:
    import gaug_pipeline as gp

    out = {}
    for method in gp.METHODS:
        for gnn in gp.GNNS:
            r = gp.run_recipe(gp.RECIPES / f"{method}_{gnn}_cora.yaml", 0)
            out[f"{method}_{gnn}"] = {"seconds": r["seconds"], "epochs": r["epochs"], "micro_f1": r["micro_f1"]}
            print(method, gnn, out[f"{method}_{gnn}"], flush=True)
    return out


def main() -> None:
    import gaug_pipeline as gp

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    path = REPO / "results" / "gaug" / "bench.json"
    result = json.loads(path.read_text()) if path.exists() else {}
    result["machine"] = gp.machine()
    result["normalisation"] = bench_normalisation(args.repeats)
    if not args.skip_training:
        result["training"] = bench_training()
        result["training_source"] = "bench_gaug.py, one run per recipe in this process (seed 0)"
    elif (REPO / "results" / "gaug" / "table.json").exists():  # the seed-0 Cora runs of the reproduction table
        rows = json.loads((REPO / "results" / "gaug" / "table.json").read_text())["rows"]
        result["training"] = {
            f"{r['method']}_{r['gnn']}": {k: r[k] for k in ("seconds", "epochs", "micro_f1")}
            for r in rows
            if r["dataset"] == "cora" and r["seed"] == 0
        }
        result["training_source"] = "results/gaug/table.json, seed-0 Cora runs (gaug_pipeline.py table, 2 workers)"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    text = markdown(result)
    (path.parent / "bench.md").write_text(text)
    print(text)


NAMES = {"original": "original graph", "m": "GAug-M", "o": "GAug-O"}


def markdown(result: dict) -> str:
    """results/gaug/bench.md: the training times and the normalisation ratio as tables naming the machine."""
    norm = result["normalisation"]
    lines = ["# GAug benchmark", ""]
    if "training" in result:
        lines += [
            "| method | GNN | one Cora training run (s) | epochs | test micro-F1 (%) |",
            "|---|---|---:|---:|---:|",
        ]
        order = {name: i for i, name in enumerate(("original", "m", "o", "gcn", "gsage", "gat", "jknet"))}
        for key, r in sorted(result["training"].items(), key=lambda kv: [order[p] for p in kv[0].split("_")]):
            method, gnn = key.split("_")
            cells = [NAMES[method], gnn, f"{r['seconds']:.1f}", str(r["epochs"]), f"{100 * r['micro_f1']:.1f}"]
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", f"Source: {result['training_source']}.", ""]
    lines += [
        "| GCN normalisation on Cora (N = 2708) | seconds | official / this |",
        "|---|---:|---:|",
        f"| official dense, diagonal matrices, O(N³) | {norm['official_dense_s']:.4f} | 1× |",
        f"| ours, dense broadcast, O(N²) (GAug-O's sampled graphs) | {norm['dense_broadcast_s']:.4f} "
        f"| {norm['ratio_dense_broadcast']:.0f}× |",
        f"| ours, sparse gcn_norm, O(E) | {norm['sparse_s']:.5f} | {norm['ratio_sparse']:.0f}× |",
        "",
        f"Largest difference from the official form: {norm['max_abs_diff']:.1e}. Machine: {result['machine']}; "
        "`python scripts/bench_gaug.py`.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
