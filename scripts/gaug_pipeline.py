"""GAug reproduction: recipes, the seeds table, shipped checkpoints, golden outputs and cards.

Stages:

    python scripts/gaug_pipeline.py recipes   # write recipes/gaug/<method>_<gnn>_<dataset>.yaml (official tuned values)
    python scripts/gaug_pipeline.py table --seeds 10 [--gnn gcn] [--dataset cora] [--method o]
                                               # one run per seed and recipe -> results/gaug/table.json (resumable)
    python scripts/gaug_pipeline.py ship      # shipped checkpoints through `zoo fit`, then `zoo eval`, golden outputs
    python scripts/gaug_pipeline.py edits     # GAug-M's VGAE edit measured: intra-class share of added/removed edges
    python scripts/gaug_pipeline.py tune --seeds 3 --gnn gcn --dataset cora
                                               # GAug-M's VGAE draw and edit chosen on validation -> results/gaug/
                                               # tune.json; then `recipes` writes m-val_<gnn>_<dataset>.yaml and
                                               # `table --method m-val` runs them
    python scripts/gaug_pipeline.py tune-o --seeds 2 --dataset cora
                                               # GAug-O's alpha chosen on validation -> results/gaug/tune_o.json;
                                               # then `recipes` writes o-val_<gnn>_<dataset>.yaml and
                                               # `table --method o-val` runs them
    python scripts/gaug_pipeline.py draws --draws 20 --seeds 10 --dataset cora
                                               # GAug-M with the official edit and the VGAE (of 20 seeds) chosen
                                               # on validation -> results/gaug/draws.json
    python scripts/gaug_pipeline.py official-vgae --probs runs/gaug/official_vgae --seeds 10
                                               # GAug-M on the official vgae/'s edge probabilities (written by
                                               # scripts/gaug_official_vgae.py) -> results/gaug/official_vgae.json
    python scripts/gaug_pipeline.py cards     # results/gaug/table.md and the cards (`zoo card ID`)

The table runs every recipe unchanged except ``seed`` (model and ``seed_everything``). Requires ``ZOO_DATA``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
RECIPES = REPO / "recipes" / "gaug"
RESULTS = REPO / "results" / "gaug"
RUNS = REPO / "runs" / "gaug"
METHODS = ("original", "m", "o")
GNNS = ("gcn", "gsage", "gat", "jknet")
DATASETS = ("cora", "citeseer")
SHIPPED = ("gaug-m-gcn-cora", "gaug-m-gcn-citeseer", "gaug-o-gcn-cora", "gaug-o-gcn-citeseer")

# zhao-tong/GAug best_parameters.json: GAug-O (alpha, beta, temp, pretrain_ep, pretrain_nc, warmup)
TUNED_O = {
    ("gcn", "cora"): (1.0, 0.8, 1.2, 160, 30, 0),
    ("gat", "cora"): (0.02, 2.3, 1.7, 175, 45, 1),
    ("gsage", "cora"): (0.13, 3.2, 1.0, 195, 35, 2),
    ("jknet", "cora"): (0.02, 3.8, 0.1, 75, 10, 10),
    ("gcn", "citeseer"): (0.79, 2.9, 0.5, 70, 215, 0),
    ("gat", "citeseer"): (0.18, 0.4, 1.6, 210, 10, 8),
    ("gsage", "citeseer"): (0.08, 0.0, 1.4, 290, 10, 5),
    ("jknet", "citeseer"): (0.17, 0.0, 0.8, 145, 5, 0),
}
# GAug-M (rm_pct, add_pct); CiteSeer GAT has no entry in the JSON: GCN's edit is used
TUNED_M = {
    ("gcn", "cora"): (2, 57),
    ("gsage", "cora"): (1, 80),
    ("gat", "cora"): (1, 68),
    ("jknet", "cora"): (1, 72),
    ("gcn", "citeseer"): (0, 46),
    ("gsage", "citeseer"): (2, 37),
    ("gat", "citeseer"): (0, 46),
    ("jknet", "citeseer"): (2, 48),
}
# GAug-M: the draw i of the official edge probabilities (<ds>_graph_<i>_logits.pkl) in best_parameters.json
# (CiteSeer GAT has no entry: GCN's is used, as for its edit)
OFFICIAL_DRAW = {("gcn", "cora"): 5, ("gsage", "cora"): 2, ("gat", "cora"): 2, ("jknet", "cora"): 2}
OFFICIAL_DRAW |= {(gnn, "citeseer"): 2 for gnn in ("gcn", "gsage", "gat", "jknet")}
GNN_TEXT = {
    "gcn": "2-layer GCN, hidden 128",
    "gsage": "2-layer GraphSAGE (gcn aggregator), hidden 128",
    "gat": "2-layer GAT, 8 heads x 16 units, dropout 0.6",
    "jknet": "JK-Net: 3 GraphSAGE-gcn layers, concatenation, Linear",
}


def recipe_text(method: str, gnn: str, dataset: str, tuned=None) -> str:
    """A commented LightningCLI recipe with the official tuned hyperparameters; for ``method="m-val"`` with
    ``tuned`` = (vgae_seed, rm_pct, add_pct) chosen on validation (``tuned_edits``), for ``method="o-val"`` with
    ``tuned`` = α chosen on validation (``tuned_alphas``) and the other official values."""
    lr = 0.005 if gnn == "gat" else 0.01
    net_method = method.removesuffix("-val")
    name = {"original": "the original graph (baseline)", "m": "GAug-M", "o": "GAug-O"}[net_method]
    official = "zhao-tong/GAug best_parameters.json"
    source = {
        "m-val": [
            "# the VGAE draw (vgae_seed) and the edit (rm_pct, add_pct) chosen on validation micro-F1 for the VGAE",
            "# trained here (results/gaug/tune.json; generated by scripts/gaug_pipeline.py tune, then recipes).",
        ],
        "o-val": [
            "# alpha chosen on validation micro-F1 (results/gaug/tune_o.json; scripts/gaug_pipeline.py tune-o, then",
            f"# recipes); the other values are the official ones ({official}).",
        ],
    }.get(method, [f"# {official} (generated by scripts/gaug_pipeline.py recipes)."])
    lines = [
        f"# {name} with a {GNN_TEXT[gnn]}, on {dataset} (GAug split); "
        + ("hyperparameters tuned here:" if method.endswith("-val") else "official tuned hyperparameters from"),
        *source,
        "# Runs unchanged on any node-classification graph: --data.init_args.path graph.pt (sizes come from the data).",
        f"# Usage: zoo fit --config recipes/gaug/{method}_{gnn}_{dataset}.yaml",
        "seed_everything: 0              # global seed (the module seeds its own draws from model.seed)",
        "trainer:                        # lightning.Trainer arguments",
        "  accelerator: cpu              # full-batch on a 3k-node graph: a CPU is enough",
        "  max_epochs: 200               # training epochs after pretraining (one full-graph step each)",
        "  logger: false                 # results are written by the scripts, not a logger",
        "  enable_checkpointing: false   # the module keeps the best-validation weights itself",
        "  enable_model_summary: false   # keep the output short",
        "  enable_progress_bar: false    # one step per epoch: no bar needed",
        "  num_sanity_val_steps: 0       # no validation before training",
        "model:                          # the LightningModule and its arguments",
        "  class_path: zoo.methods.gaug.GAugModule   # the GAug LightningModule",
        "  init_args:                    # GAugModule arguments",
        f"    lr: {lr}                   # Adam learning rate (GAT 0.005, others 0.01)",
        "    weight_decay: 0.0005        # classifier weight decay",
        "    epochs: 200                 # training epochs (the warm-up schedule spans these)",
        "    patience: 100               # stop after 100 epochs without a better validation score",
        "    seed: 0                     # initialisation and sampling seed",
    ]
    if net_method == "o":
        a, b, t, pe, pn, w = TUNED_O[(gnn, dataset)]
        a = tuned if method == "o-val" else a
        lines += [
            f"    alpha: {a}                # weight of the predicted edge probabilities against the original graph",
            f"    beta: {b}                 # weight of the edge-reconstruction loss",
            f"    temperature: {t}          # relaxed-Bernoulli temperature",
            f"    warmup: {w}                 # sigmoid warm-up of the edge-net lr (the official script ignores it)",
            f"    pretrain_ep: {pe}           # edge-net (GAE) pretraining epochs",
            f"    pretrain_nc: {pn}           # classifier pretraining epochs on the original graph",
        ]
    elif method in ("m", "m-val"):
        lines += [
            "    vgae_epochs: 200            # VGAE training epochs (vgae/run.sh)",
            "    vgae_lr: 0.01               # VGAE learning rate",
        ]
    if method == "m-val":
        lines += [f"    vgae_seed: {tuned[0]}                # this seed's VGAE for every classifier seed (one graph)"]
    lines += [
        "    net:                        # GAugConfig: the architecture (in_channels/num_classes from the data)",
        f"      method: {net_method}{' ' * (18 - len(net_method))}# original | m (GAug-M) | o (GAug-O)",
        f"      gnn: {gnn}{' ' * (21 - len(gnn))}# gcn | gsage | gat | jknet",
        "      hidden: 128               # classifier hidden size (GAT: heads x 16)",
        f"      layers: {3 if gnn == 'jknet' else 2}                 # graph layers of the classifier",
    ]
    if gnn == "gat":
        lines += [
            "      heads: 8                  # attention heads of the hidden layer",
            "      gat_dropout: 0.6          # GAT feature and attention dropout",
        ]
    else:
        lines += ["      dropout: 0.5              # dropout before every layer but the first"]
    if net_method == "o":
        lines += [
            "      ep_hidden: 128            # GAE first layer",
            "      ep_emb: 32                # GAE embedding size",
        ]
    elif method in ("m", "m-val"):
        rm, add = TUNED_M[(gnn, dataset)] if method == "m" else tuned[1:]
        lines += [
            "      ep_hidden: 32             # VGAE first layer (vgae/)",
            "      ep_emb: 16                # VGAE embedding size",
            f"      rm_pct: {rm}                 # remove this % of edges (lowest VGAE score)",
            f"      add_pct: {add}{' ' * (17 - len(str(add)))}# add this % x |E| non-edges (highest VGAE score)",
        ]
    lines += [
        "data:                           # the LightningDataModule and its arguments",
        "  class_path: zoo.data.gaug.GraphDataModule   # a full graph as one batch",
        "  init_args:                    # GraphDataModule arguments",
        f"    name: {dataset}{' ' * (22 - len(dataset))}# GAug's data set",
        "    source: gaug                # GAug's pickles and split ($ZOO_DATA/gaug)",
        "    feat_norm: row              # L1-normalise feature rows (GAug's default)",
    ]
    return "\n".join(lines) + "\n"


def stage_recipes() -> None:
    RECIPES.mkdir(parents=True, exist_ok=True)
    for method in METHODS:
        for gnn in GNNS:
            for ds in DATASETS:
                (RECIPES / f"{method}_{gnn}_{ds}.yaml").write_text(recipe_text(method, gnn, ds))
    from zoo.methods.gaug import tuned_alphas, tuned_edits

    for method, name, select in (("m-val", "tune.json", tuned_edits), ("o-val", "tune_o.json", tuned_alphas)):
        path = RESULTS / name  # a validation search: its choice becomes a recipe
        if path.exists():
            for (gnn, ds), tuned in select(json.loads(path.read_text())["rows"]).items():
                (RECIPES / f"{method}_{gnn}_{ds}.yaml").write_text(recipe_text(method, gnn, ds, tuned))


def run_recipe(
    path: Path, seed: int, accelerator: str | None = None, graph=None, overrides: dict | None = None
) -> dict:
    """Train the recipe once with ``seed`` in this process (on ``accelerator`` instead of the recipe's, on ``graph``,
    a PyG ``Data``, instead of the recipe's data set, and with ``overrides`` of the module's arguments, if given);
    returns test micro-F1, best val, seconds and the machine."""
    import lightning as L
    import yaml

    from zoo.data.gaug import GraphDataModule
    from zoo.methods.gaug import GAugModule
    from zoo.utils import machine

    cfg = yaml.safe_load(path.read_text())
    L.seed_everything(seed, verbose=False)
    model_args = dict(cfg["model"]["init_args"]) | (overrides or {}) | {"seed": seed}
    module = GAugModule(**model_args)
    data_args = cfg["data"]["init_args"]
    dm = GraphDataModule(**data_args) if graph is None else GraphDataModule.from_data(graph, data_args["feat_norm"])
    trainer = L.Trainer(**(cfg["trainer"] | ({"accelerator": accelerator} if accelerator else {})))
    t = time.perf_counter()
    trainer.fit(module, datamodule=dm)
    seconds = time.perf_counter() - t
    (metrics,) = trainer.test(module, datamodule=dm, verbose=False)
    return {
        "micro_f1": round(float(metrics["test/micro_f1"]), 6),
        "val_micro_f1": round(float(getattr(module, "best_val", float("nan"))), 6),
        "epochs": trainer.current_epoch,
        "seconds": round(seconds, 1),
        "machine": machine(),
    }


def stage_table(seeds: int, methods, gnns, datasets, from_seed: int = 0, accelerator: str | None = None) -> None:
    axes = {"seed": range(from_seed, seeds), "dataset": datasets, "gnn": gnns, "method": methods}
    _sweep(
        RESULTS / "table.json",
        axes,
        lambda p: run_recipe(RECIPES / f"{p['method']}_{p['gnn']}_{p['dataset']}.yaml", p["seed"], accelerator),
    )


def _sweep(path: Path, axes: dict, run) -> None:
    """For every point of the grid ``axes`` (row key -> values; the first key varies slowest) that has no row in
    ``path`` yet: ``row = point | run(point)``, appended to ``path`` at once (a sweep resumes where it stopped)."""
    import itertools

    rows = json.loads(path.read_text())["rows"] if path.exists() else []
    for values in itertools.product(*axes.values()):
        point = dict(zip(axes, values))
        if any(all(r.get(k) == v for k, v in point.items()) for r in rows):
            continue
        row = point | run(point)
        _merge(path, row)
        print(row, flush=True)


def _merge(path: Path, row: dict) -> None:
    from shipping import append_row

    append_row(path, row)


def machine() -> str:
    from zoo.utils import machine as _machine

    return _machine()


def stage_ship(ids) -> None:
    from shipping import ship_and_eval

    ship_and_eval(ids, RESULTS)
    subprocess.run([sys.executable, __file__, "golden", "--ids", *ids], check=True, cwd=REPO)


def stage_golden(ids) -> None:
    """Logits of each shipped checkpoint on its data set's first 16 test nodes, for tests/test_gaug_checkpoints.py."""
    from safetensors.torch import save_file

    import zoo
    from zoo import registry
    from zoo.data.gaug import GraphDataModule

    for model_id in ids:
        entry = registry.get_entry(model_id)
        dm = GraphDataModule(**entry.data)
        dm.setup()
        g = dm.graph
        index = g.test_mask.nonzero().view(-1)[:16]
        with torch.no_grad():
            logits = zoo.from_pretrained(model_id)(g.x, g.edge_index)[index]
        path = REPO / "tests" / "golden" / f"{model_id}.safetensors"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({"index": index, "logits": logits.contiguous()}, path)


def edit_stats(graph, edited, samples: list) -> dict:
    """Intra-class share (homophily) of the original, added and removed edges of a GAug-M edit, and how many nodes
    the added edges touch; ``samples`` are further edits (noisy VGAE draws) whose added-edge homophily is listed."""
    n = graph.num_nodes

    def keys(ei):
        return ei[0] * n + ei[1]

    def homophily(ei):
        return round(float((graph.y[ei[0]] == graph.y[ei[1]]).float().mean()), 4) if ei.shape[1] else None

    def added(ei):
        return ei[:, ~torch.isin(keys(ei), keys(graph.edge_index))]

    new, gone = added(edited), graph.edge_index[:, ~torch.isin(keys(graph.edge_index), keys(edited))]
    ends = torch.bincount(new[0], minlength=n)
    top10 = int(ends.sort(descending=True).values[:10].sum())
    return {
        "original": homophily(graph.edge_index),
        "added": homophily(new),
        "removed": homophily(gone),
        "n_added": new.shape[1] // 2,
        "n_removed": gone.shape[1] // 2,
        "nodes_touched_by_added": int((ends > 0).sum()),
        "share_of_added_at_top10_nodes": round(top10 / max(1, new.shape[1]), 4),
        "added_noisy_samples": [homophily(added(e)) for e in samples],
    }


def stage_edits(seeds: int, datasets) -> None:
    """Train GAug-M's VGAE as the GCN recipe does (seeds 0..n-1) and measure its edit of the graph."""
    from zoo.models.gaug import edit_edges

    out = {"rows": [], "machine": machine()}
    for ds in datasets:
        g = gaug_graph(ds)
        for seed in range(seeds):
            module = trained_vgae(ds, g, seed)
            net = module.net
            edited = net.augment(g.x, g.edge_index)
            samples = []
            net.edge_predictor.train()  # Z = mu + eps * sigma: the official pickles are such noisy draws
            for draw in range(5):
                torch.manual_seed(1000 + draw)
                with torch.no_grad():
                    logits = net.edge_logits(g.x, g.edge_index)
                samples.append(edit_edges(logits, g.edge_index, net.config.rm_pct, net.config.add_pct))
            row = {"dataset": ds, "seed": seed, "vgae_auc": round(module.vgae_auc, 4)}
            row |= edit_stats(g, edited, samples)
            out["rows"].append(row)
            print(row, flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "edits.json").write_text(json.dumps(out, indent=1) + "\n")


def gaug_graph(ds: str):
    """The data set's graph as the recipes load it (GAug split, L1-normalised features)."""
    import yaml

    from zoo.data.gaug import GraphDataModule

    cfg = yaml.safe_load((RECIPES / f"m_gcn_{ds}.yaml").read_text())
    dm = GraphDataModule(**cfg["data"]["init_args"])
    dm.setup()
    return dm.graph


def trained_vgae(ds: str, g, seed: int):
    """A GAug-M module of the GCN recipe whose VGAE is trained on ``g`` with ``seed`` exactly as ``fit`` trains it
    (best edge ROC-AUC state, eval mode); its classifier is untrained."""
    import yaml

    from zoo.methods.gaug import GAugModule

    cfg = yaml.safe_load((RECIPES / f"m_gcn_{ds}.yaml").read_text())
    args = dict(cfg["model"]["init_args"]) | {"seed": seed}
    args["net"] = dict(args["net"]) | {"in_channels": g.num_features, "num_classes": int(g.y.max()) + 1}
    module = GAugModule(**args)
    torch.manual_seed(seed)
    module._x_sparse = None
    module._train_vgae(g)
    return module


def stage_tune(seeds: int, gnns, datasets, from_seed: int = 0) -> None:
    """Search GAug-M's (rm_pct, add_pct) on validation micro-F1 for the VGAE trained here: for each tuning seed train
    the VGAE once (as ``fit`` does), edit the graph by every point of ``TUNE_GRID``, and train the recipe's classifier
    (seed = the tuning seed) on the edited graph with the original-graph recipe, which trains and evaluates on the
    graph it is given, as GAug-M's classifier does. Rows go to results/gaug/tune.json (resumable); ``tuned_edits``
    selects, and ``recipes`` writes the selection as ``m-val_<gnn>_<dataset>.yaml``."""
    from zoo.methods.gaug import TUNE_GRID
    from zoo.models.gaug import edit_edges

    path = RESULTS / "tune.json"
    done = json.loads(path.read_text()) if path.exists() else {"rows": []}
    have = {(r["gnn"], r["dataset"], r["seed"], r["rm_pct"], r["add_pct"]) for r in done["rows"]}
    for ds in datasets:
        g = gaug_graph(ds)
        for seed in range(from_seed, seeds):
            todo = [(gnn, rm, add) for rm, add in TUNE_GRID for gnn in gnns if (gnn, ds, seed, rm, add) not in have]
            if not todo:
                continue
            net = trained_vgae(ds, g, seed).net
            with torch.no_grad():
                logits = net.edge_logits(g.x, g.edge_index)
            for gnn, rm, add in todo:
                edited = g.clone()
                edited.edge_index = edit_edges(logits, g.edge_index, rm, add)
                row = {"gnn": gnn, "dataset": ds, "seed": seed, "rm_pct": rm, "add_pct": add}
                row |= run_recipe(RECIPES / f"original_{gnn}_{ds}.yaml", seed, graph=edited)
                _merge(path, row)
                print(row, flush=True)


def stage_draws(draws: int, gnns, datasets, seeds: int, from_draw: int = 0) -> None:
    """GAug-M's VGAE chosen as the official code chooses its draw, with validation in place of test: VGAEs of seeds
    ``from_draw``..``draws``-1 (each trained as ``fit`` trains it; eval mode, Z = μ) edit the graph by the official
    (rm_pct, add_pct), and the recipe's classifier is trained once on each edit (seed 0, the original-graph recipe on
    the edited graph, as ``tune`` does); once every draw 0..draws-1 is in, the one with the best validation micro-F1
    is trained with seeds 0..n-1 (phase ``eval``), and so is, as a diagnostic, the one whose added edges most often
    join same-class nodes (phase ``oracle``: chosen with every node's label, test included; not a method). Rows
    (``phase`` search / eval / oracle) go to results/gaug/draws.json (resumable); ``best_draws`` selects."""
    from zoo.methods.gaug import best_draws

    path = RESULTS / "draws.json"
    for ds in datasets:
        run = _draw_runner(ds)
        _sweep(path, {"phase": ["search"], "dataset": [ds], "draw": range(from_draw, draws), "gnn": gnns}, run)
        rows = json.loads(path.read_text())["rows"]
        chosen, oracle = best_draws(rows, draws), best_draws(rows, draws, key="added_homophily")
        for gnn in gnns:
            for phase, pick in (("eval", chosen), ("oracle", oracle)):
                if (gnn, ds) in pick:
                    axes = {"phase": [phase], "dataset": [ds], "gnn": [gnn], "draw": [pick[(gnn, ds)]]}
                    _sweep(path, axes | {"seed": range(seeds)}, run)


def _draw_runner(ds: str):
    """``run(point)`` of ``stage_draws`` on data set ``ds``: the VGAE of seed ``point["draw"]`` edits the graph by the
    official (rm_pct, add_pct) of ``point["gnn"]``, and the classifier is trained on the edit with seed
    ``point.get("seed", 0)``. The last VGAE and its edits (one per GNN) are kept for the next points."""
    from zoo.models.gaug import edit_edges

    g = gaug_graph(ds)
    vgae: dict = {}

    def run(p: dict) -> dict:
        if vgae.get("draw") != p["draw"]:
            module = trained_vgae(ds, g, p["draw"])
            with torch.no_grad():
                logits = module.net.edge_logits(g.x, g.edge_index)
            vgae.clear()
            vgae.update(draw=p["draw"], logits=logits, auc=round(module.vgae_auc, 4))
        rm, add = TUNED_M[(p["gnn"], ds)]
        if p["gnn"] not in vgae:
            edited = edit_edges(vgae["logits"], g.edge_index, rm, add)
            vgae[p["gnn"]] = (edited, edit_stats(g, edited, [])["added"])
        graph = g.clone()
        graph.edge_index, homophily = vgae[p["gnn"]]
        row = run_recipe(RECIPES / f"original_{p['gnn']}_{ds}.yaml", p.get("seed", 0), graph=graph)
        return row | {"rm_pct": rm, "add_pct": add, "added_homophily": homophily, "vgae_auc": vgae["auc"]}

    return run


def stage_official_vgae(probs: Path, seeds: int, gnns, datasets, vgae_seed: int | None = None) -> None:
    """GAug-M on the official ``vgae/``'s edge probabilities (written by ``scripts/gaug_official_vgae.py --seed
    vgae_seed`` into ``probs``): for each GNN the official draw (``OFFICIAL_DRAW``) and edit (``TUNED_M``) through
    ``edge_probs``, classifier seeds 0..n-1 of the GAug-M recipe. Rows go to results/gaug/official_vgae.json
    (resumable), ``vgae_seed`` in each (None: ``OFFICIAL_VGAE_SEED``, the official default)."""
    from zoo.data.gaug import load_edge_scores
    from zoo.methods.gaug import OFFICIAL_VGAE_SEED
    from zoo.models.gaug import edit_edges

    vgae_seed = OFFICIAL_VGAE_SEED if vgae_seed is None else vgae_seed

    for ds in datasets:
        g = gaug_graph(ds)
        for gnn in gnns:
            i = OFFICIAL_DRAW[(gnn, ds)]
            file = Path(probs) / f"{ds}_graph_{i}_logits.pkl"
            if not file.is_file():
                print(f"skipping {gnn} on {ds}: {file} not found (python scripts/gaug_official_vgae.py --draws {i})")
                continue
            rm, add = TUNED_M[(gnn, ds)]
            edited = edit_edges(load_edge_scores(file, g.num_nodes), g.edge_index, rm, add)
            meta = {"draw": i, "rm_pct": rm, "add_pct": add, "added_homophily": edit_stats(g, edited, [])["added"]}

            def run(p: dict, file=file, meta=meta) -> dict:
                recipe = RECIPES / f"m_{p['gnn']}_{p['dataset']}.yaml"
                return run_recipe(recipe, p["seed"], overrides={"edge_probs": str(file)}) | meta

            axes = {"vgae_seed": [vgae_seed], "dataset": [ds], "gnn": [gnn], "seed": range(seeds)}
            _sweep(RESULTS / "official_vgae.json", axes, run)


def stage_tune_o(seeds: int, gnns, datasets, from_seed: int = 0) -> None:
    """Search GAug-O's α on validation micro-F1: every α of ``TUNE_ALPHAS`` with the recipe's other (official)
    values, seeds 0..n-1, one run each. Rows go to results/gaug/tune_o.json (resumable); ``tuned_alphas`` selects the
    α with the best mean validation micro-F1, and ``recipes`` writes it as ``o-val_<gnn>_<dataset>.yaml``."""
    from zoo.methods.gaug import TUNE_ALPHAS

    axes = {"seed": range(from_seed, seeds), "dataset": datasets, "gnn": gnns, "alpha": TUNE_ALPHAS}
    _sweep(
        RESULTS / "tune_o.json",
        axes,
        lambda p: run_recipe(RECIPES / f"o_{p['gnn']}_{p['dataset']}.yaml", p["seed"], overrides={"alpha": p["alpha"]}),
    )


def machines_line(rows: list[dict]) -> str:
    """Which machine ran how many of the table's runs (rows written before machines were recorded ran here, on the
    2-core CPU machine of the early sessions)."""
    from collections import Counter

    counts = Counter(r.get("machine", "not recorded (the 2-core AMD EPYC CPU machine)") for r in rows)
    return "Machines: " + "; ".join(f"{m}: {n} runs" for m, n in sorted(counts.items())) + "."


def plot_tune_o() -> None:
    """results/gaug/tune_o.png: GAug-O's validation (and, for reference, test) micro-F1 against α, mean over the
    tuning seeds, one panel per GNN and data set, the chosen α marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from zoo.methods.gaug import DATASET_NAMES, GNN_NAMES, TUNE_ALPHAS, alpha_scores, tuned_alphas

    path = RESULTS / "tune_o.json"
    if not path.exists():
        return
    rows = json.loads(path.read_text())["rows"]
    val, chosen = alpha_scores(rows), tuned_alphas(rows)
    test = alpha_scores(rows, key="micro_f1")
    keys = sorted(val)
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 3), sharey=True, squeeze=False)
    for ax, key in zip(axes[0], keys):
        (means, seeds), tmeans = val[key], test[key][0]
        ax.plot(TUNE_ALPHAS, [100 * means[a] for a in TUNE_ALPHAS], "o-", label="validation")
        ax.plot(TUNE_ALPHAS, [100 * tmeans[a] for a in TUNE_ALPHAS], "s--", alpha=0.6, label="test (not used)")
        ax.axvline(chosen[key], color="grey", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_title(f"{GNN_NAMES[key[0]]}, {DATASET_NAMES[key[1]]} (chosen α {chosen[key]:g})", fontsize=9)
        ax.set_xlabel(f"α (mean of {seeds} seeds)")
    axes[0][0].set_ylabel("micro-F1 (%)")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / "tune_o.png", dpi=100)
    plt.close(fig)


def plot_gaug_m() -> None:
    """results/gaug/gaug_m.png: every GAug-M measurement (``gaug_m_variants``) per GNN, mean ± std over seeds, one
    panel per data set, with the official GAug-M number as a line per GNN."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from zoo.methods.gaug import DATASET_NAMES, GAUG_M_VARIANTS, GNN_NAMES, OFFICIAL, gaug_m_variants

    stats = gaug_m_variants(RESULTS)
    if not stats:
        return
    datasets = [ds for ds in DATASET_NAMES if any(k[2] == ds for k in stats)]
    fig, axes = plt.subplots(1, len(datasets), figsize=(7 * len(datasets), 4.6), squeeze=False)
    width = 0.8 / len(GAUG_M_VARIANTS)
    colors = dict(zip(GAUG_M_VARIANTS, ["0.55", "C0", "C1", "C2", "C3", "C4"]))
    handles = {}
    for ax, ds in zip(axes[0], datasets):
        for v, (variant, label) in enumerate(GAUG_M_VARIANTS.items()):
            xs, means, stds = [], [], []
            for g, gnn in enumerate(GNN_NAMES):
                if (variant, gnn, ds) in stats:
                    mean, std, _ = stats[(variant, gnn, ds)]
                    xs.append(g - 0.4 + (v + 0.5) * width), means.append(mean), stds.append(std)
            if xs:
                handles[label] = ax.bar(xs, means, width, yerr=stds, capsize=2, color=colors[variant])
        for g, gnn in enumerate(GNN_NAMES):
            ref = OFFICIAL.get(("m", gnn, ds))
            if ref:
                handles["official GAug-M (draw and edit chosen on test)"] = ax.hlines(
                    ref[0], g - 0.4, g + 0.4, colors="k", linestyles="--", lw=1.2
                )
        ax.set_xticks(range(len(GNN_NAMES)), list(GNN_NAMES.values()))
        ax.set_title(f"GAug-M on {DATASET_NAMES[ds]}: test micro-F1, mean ± std over seeds", fontsize=10)
        values = [m - s for (_, _, d), (m, s, _) in stats.items() if d == ds]
        values += [ref[0] for (method, _, d), ref in OFFICIAL.items() if method == "m" and d == ds]
        ax.set_ylim(min(values) - 2, max(values) + 1)
        ax.set_ylabel("micro-F1 (%)")
    fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(RESULTS / "gaug_m.png", dpi=100)
    plt.close(fig)


def stage_cards(ids) -> None:
    from zoo.methods.gaug import repro_table

    plot_tune_o()
    plot_gaug_m()
    path = RESULTS / "table.json"
    if path.exists():  # the README's reproduction table, as markdown
        rows = json.loads(path.read_text())["rows"]
        (RESULTS / "table.md").write_text(
            "Test micro-F1 (%), mean ± std over seeds 0…n−1 (ours) beside the official 30-run numbers "
            "(zhao-tong/GAug best_parameters.json); GAug split of Cora and CiteSeer.\n\n"
            + repro_table(rows)
            + "\n\n"
            + machines_line(rows)
            + "\n"
        )
    for model_id in ids:
        subprocess.run([sys.executable, "-m", "zoo.cli", "card", model_id], check=True, cwd=REPO)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    stages = ["recipes", "table", "ship", "golden", "edits", "tune", "tune-o", "draws", "official-vgae", "cards"]
    parser.add_argument("stage", choices=stages)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--draws", type=int, default=20, help="draws: VGAE seeds searched")
    parser.add_argument("--from-draw", type=int, default=0, help="draws: start at this VGAE seed (parallel runs)")
    parser.add_argument("--probs", type=Path, default=RUNS / "official_vgae", help="official-vgae: pickle folder")
    parser.add_argument(
        "--vgae-seed", type=int, help="official-vgae: the seed the official vgae/ ran with (default: its default)"
    )
    parser.add_argument("--from-seed", type=int, default=0, help="start at this seed (parallel runs split the seeds)")
    parser.add_argument("--accelerator", default=None, help="table: override the recipes' accelerator (cpu, gpu)")
    parser.add_argument("--method", nargs="+", default=list(METHODS))
    parser.add_argument("--gnn", nargs="+", default=list(GNNS))
    parser.add_argument("--dataset", nargs="+", default=list(DATASETS))
    parser.add_argument("--ids", nargs="+", default=list(SHIPPED))
    parser.add_argument("--threads", type=int, default=int(os.environ.get("ZOO_THREADS", "1")))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.stage == "recipes":
        stage_recipes()
    elif args.stage == "table":
        stage_table(args.seeds, args.method, args.gnn, args.dataset, args.from_seed, args.accelerator)
    elif args.stage == "ship":
        stage_ship(args.ids)
    elif args.stage == "golden":
        stage_golden(args.ids)
    elif args.stage == "edits":
        stage_edits(min(args.seeds, 5), args.dataset)
    elif args.stage == "tune":
        stage_tune(args.seeds, args.gnn, args.dataset, args.from_seed)
    elif args.stage == "draws":
        stage_draws(args.draws, args.gnn, args.dataset, args.seeds, args.from_draw)
    elif args.stage == "official-vgae":
        stage_official_vgae(args.probs, args.seeds, args.gnn, args.dataset, args.vgae_seed)
    elif args.stage == "tune-o":
        stage_tune_o(args.seeds, args.gnn, args.dataset, args.from_seed)
    elif args.stage == "cards":
        stage_cards(args.ids)


if __name__ == "__main__":
    main()
