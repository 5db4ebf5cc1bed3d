"""Card sections of a pruned zoo checkpoint: the dense parent it was pruned from, the achieved layout, accuracy
beside the parent and the paper, the measured accuracy-vs-sparsity table and the CPU speed of the TVW layers."""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["card_sections"]

REPO = Path(__file__).resolve().parents[2]


def _read(path: Path):
    return json.loads(path.read_text()) if path.exists() else None


def card_sections(entry) -> tuple[list[dict], dict[str, str]]:
    """``(results, sections)`` for ``zoo.hub.build_card`` from the checkpoint's config.json and ``results/``."""
    from zoo import registry
    from zoo.hub import CONFIG, cards_dir
    from zoo.methods import recipe_config

    recipe = recipe_config(entry)
    parent = recipe["model"]["init_args"]["init_from"]
    (pruner,) = [c for c in recipe["trainer"]["callbacks"] if c["class_path"].endswith("TVWPruning")]
    args = pruner["init_args"]
    family = registry.get_family(entry.family)
    module = __import__(family.module.split(":")[0], fromlist=["x"])
    measured = _read(REPO / "results" / entry.family / f"{entry.id}.json")
    dense = _read(REPO / "results" / entry.family / f"{parent}.json")
    config = _read(cards_dir() / entry.id / CONFIG) or {}
    layers = (config.get("sparsity") or {}).get("layers", {})
    ours = 100 * measured[entry.metric]
    results = [
        {
            "metric": entry.metric,
            "metric_name": f"test {entry.metric} (%)",
            "value": round(ours, 2),
            "dataset": entry.dataset.split("-")[0],
            "dataset_name": f"{entry.dataset} (the parent checkpoint's test data)",
        }
    ]
    total = sum(r["layout"]["in_features"] * r["layout"]["out_features"] for r in layers.values() if r["layout"])
    kept = sum(
        r["density"] * r["layout"]["in_features"] * r["layout"]["out_features"] for r in layers.values() if r["layout"]
    )
    rows = "\n".join(
        f"| `{name}` | {r['layout']['out_features']}×{r['layout']['in_features']} | {r['pattern']} | "
        f"{len(r['layout']['cols'])} | {sum(len(c) for c in r['layout']['cols'])} | {r['density']:.4f} |"
        for name, r in layers.items()
        if r["layout"]
    )
    details = (
        f"`{parent}` with the layers below pruned by `zoo.pruning.TVWPruning` to **{args['pattern'].upper()} "
        f"{100 * args['sparsity']:.0f}%** (tile-wise: whole output columns and per-tile input rows dropped with "
        f"global thresholds, tiles of G = {args['tile']} kept columns; then 2:4 along the compacted K of every kept "
        "tile), while fine-tuning (Guo et al., arXiv 2008.13006 and 2402.10876). The checkpoint stores the pruned "
        "layers in the compact format (`TVWLinear`: packed non-zeros + 2:4 metadata) and their tile layout in "
        "`config.json` (`sparsity.layers`); `zoo.from_pretrained` loads them straight into TVW layers.\n\n"
        "| layer | N×K | pattern | tiles | kept columns | density |\n|---|---|---|---|---|---|\n"
        f"{rows}\n\nPruned layers together: density {kept / max(total, 1):.4f} (sparsity "
        f"{1 - kept / max(total, 1):.4f})."
    )
    training = (
        f"Recipe `{entry.recipe}` (fine-tuning of `{parent}`, {recipe['trainer']['max_epochs']} epochs; "
        f"{args['schedule']} schedule from step {args['start']} to {args['end']}, every {args['frequency']} steps, "
        f"{args['score']} scores):\n\n```bash\nzoo fit --config {entry.recipe} --trainer.callbacks+=zoo.hub."
        f"SavePretrained --trainer.callbacks.dirpath=cards/{entry.id} --trainer.callbacks.model_id={entry.id}\n```\n\n"
        "`python scripts/pruning_pipeline.py ship` runs it, records the sha256 and evaluates."
    )
    paper = module.paper_reference(entry) if hasattr(module, "paper_reference") else "–"
    evaluation = (
        f"Test {entry.metric}: **{ours:.2f}%** (`zoo eval {entry.id} --json`), against **"
        f"{100 * dense[entry.metric]:.2f}%** for the dense parent `{parent}` "
        f"({ours - 100 * dense[entry.metric]:+.2f} points) and {paper} in the paper "
        f"({family.paper['arxiv']}) for the dense method; see the parent's card for why the dense model falls short "
        "of the paper."
    )
    table = REPO / "results" / "pruning" / "accuracy_conn.md"
    if table.exists():
        evaluation += (
            "\n\n### Accuracy vs sparsity on the dense baseline classifier\n\n"
            "`python scripts/prune_accuracy.py conn` (every pattern, pruned with the callback and fine-tuned):\n\n"
            + table.read_text()
        )
    bench = REPO / "results" / "pruning" / "bench_tvw.md"
    limitations = (
        "- On CPU the 2:4 half of TVW is not exploited by hardware (the CPU path multiplies the compacted tiles, "
        "zeros included); the tile part is. Speed of the TVW GEMM against dense on BERT-base shapes: "
        "`results/pruning/bench_tvw.md`"
        + (" (measured)" if bench.exists() else " (not measured)")
        + ".\n- The perceptual layer (the autoencoder) is not pruned; only the classifier's hidden layers are.\n"
        "- ABFT (`TVWLinear(abft=True)`) checks every product with an input checksum; it cannot see faults in stored "
        "weights or indices (results/pruning/abft.md)."
    )
    start = (
        f"```python\nimport zoo\n\nmodel = zoo.from_pretrained('{entry.id}')  # the pruned layers are TVWLinear\n"
        "logits = model(images)  # images [B, 1, 28, 28] in [0, 1]\n```"
    )
    return results, {"details": details, "training": training, "evaluation": evaluation, "limitations": limitations,
                     "start": start}  # fmt: skip
