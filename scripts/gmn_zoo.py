"""Generate the network zoo of the metanetwork task: small MNIST classifiers of five families, trained with random
budgets so that their test accuracies spread widely; saved as a `datasets` dataset.

    python scripts/gmn_zoo.py --nets 2000            # resumable: re-running continues where it stopped
    python scripts/gmn_zoo.py --nets 2000 --finalize # (done automatically at the end) build the Arrow dataset

Net i uses family FAMILIES[i % 5], an architecture and training recipe drawn by ``random.Random(seed · 10⁶ + i)``
(``zoo.gmn.nets.sample_spec``) and torch seed ``seed · 10⁶ + i`` for its initialisation and batches, so every net is
reproducible on its own. Training: AdamW on the 60,000 MNIST training images (random batches of 128) for the drawn
number of steps; the label is the accuracy on the 10,000 test images. Output under ``$ZOO_CACHE/gmn_zoo`` (default
``~/.cache/zoo/derived/gmn_zoo``): ``rows.jsonl`` (one net per line, appended as they finish) and ``dataset/`` (the
Arrow dataset: id, family, spec, width, n_params, weights (``parameters()`` order), buffers (the floating-point
buffers, BatchNorm running statistics, in ``buffers()`` order), accuracy). Requires ``ZOO_DATA``.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch
import torch.nn.functional as F


def zoo_dir() -> Path:
    from zoo.data import cache_root

    return cache_root() / "gmn_zoo"


def train_one(index: int, seed: int, x_train, y_train, x_test, y_test) -> dict:
    from zoo.gmn.nets import FAMILIES, build_net, count_parameters, sample_spec

    key = seed * 1_000_000 + index
    spec = sample_spec(random.Random(key), FAMILIES[index % len(FAMILIES)])
    torch.manual_seed(key)
    net = build_net(spec)
    opt = torch.optim.AdamW(net.parameters(), lr=spec["lr"], weight_decay=spec["weight_decay"])
    g = torch.Generator().manual_seed(key)
    t = time.perf_counter()
    net.train()
    for _ in range(spec["steps"]):
        idx = torch.randint(0, len(x_train), (spec["batch_size"],), generator=g)
        loss = F.cross_entropy(net(x_train[idx]), y_train[idx], label_smoothing=spec["label_smoothing"])
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    right = 0
    with torch.no_grad():
        for xb, yb in zip(x_test.split(2500), y_test.split(2500)):
            right += int((net(xb).argmax(1) == yb).sum())
    weights = torch.cat([p.detach().flatten() for p in net.parameters()])
    # floating-point buffers (BatchNorm running statistics) in state_dict order, so the net can be re-evaluated
    buffers = [b.detach().flatten() for b in net.buffers() if b.is_floating_point()]
    buffers = torch.cat(buffers) if buffers else torch.zeros(0)
    if not torch.isfinite(weights).all():  # a diverged run: keep it, with its chance-level accuracy, but finite
        weights = torch.nan_to_num(weights, nan=0.0, posinf=1e4, neginf=-1e4)
    return {
        "id": index,
        "family": spec["family"],
        "width": spec["width"],
        "spec": json.dumps(spec, sort_keys=True),
        "n_params": count_parameters(net),
        "weights": [round(float(v), 7) for v in weights],
        "buffers": [round(float(v), 7) for v in buffers],
        "accuracy": right / len(y_test),
        "seconds": round(time.perf_counter() - t, 2),
    }


def finalize(out: Path) -> None:
    import datasets

    rows = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines() if line.strip()]
    rows.sort(key=lambda r: r["id"])
    ds = datasets.Dataset.from_list(rows)
    ds.save_to_disk(str(out / "dataset"))
    accs = torch.tensor([r["accuracy"] for r in rows])
    quantiles = accs.quantile(torch.tensor([0, 0.1, 0.25, 0.5, 0.75, 0.9, 1]))
    summary = {
        "nets": len(rows),
        "families": {f: sum(r["family"] == f for r in rows) for f in sorted({r["family"] for r in rows})},
        "accuracy_quantiles (0, .1, .25, .5, .75, .9, 1)": [round(float(q), 4) for q in quantiles],
        "params_range": [min(r["n_params"] for r in rows), max(r["n_params"] for r in rows)],
        "train_seconds": round(sum(r["seconds"] for r in rows), 1),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nets", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="default: $ZOO_CACHE/gmn_zoo")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--finalize", action="store_true", help="only build the Arrow dataset from rows.jsonl")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = args.out or zoo_dir()
    out.mkdir(parents=True, exist_ok=True)
    if not args.finalize:
        from tqdm import tqdm

        from zoo.data.mnist import load_mnist

        x_train, y_train = load_mnist("train")
        x_test, y_test = load_mnist("test")
        path = out / "rows.jsonl"
        done = set()
        if path.exists():
            done = {json.loads(line)["id"] for line in path.read_text().splitlines() if line.strip()}
        todo = [i for i in range(args.nets) if i not in done]
        with open(path, "a") as f, tqdm(total=args.nets, initial=args.nets - len(todo), desc="nets") as bar:
            for i in todo:
                row = train_one(i, args.seed, x_train, y_train, x_test, y_test)
                f.write(json.dumps(row) + "\n")
                f.flush()
                bar.set_postfix(acc=f"{row['accuracy']:.2f}", family=row["family"])
                bar.update()
    finalize(out)


if __name__ == "__main__":
    main()
