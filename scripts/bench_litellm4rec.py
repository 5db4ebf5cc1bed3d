"""Inference time, peak memory and training time of Lite-LLM4Rec against its baselines, in one run, plus the
reproduction table (Recall/NDCG@{5,10,20} of every model on the same test users).

For every model (a shipped checkpoint id or a folder written by ``scripts/litellm4rec_pipeline.py fit``), in its own
child process (so that peak memory is the model's own): load it, attach the ML-1m catalogue (item vectors from the
cache, not timed), then time producing top-20 lists for all 6,040 test users (seen items excluded) and record the
peak resident memory during inference (sampled every 5 ms) above the resident memory before it. The top-20 lists
give the metrics. Training time per epoch is measured on ``--train-batches`` timed batches of the model's recipe
(after one warm-up batch) and scaled to the epoch's batch count.

Usage::

    python scripts/bench_litellm4rec.py --threads 2              # writes results/litellm4rec/{bench,table}.{json,md}
    python scripts/bench_litellm4rec.py --users 500 --threads 2  # a quicker subset
    python scripts/bench_litellm4rec.py --device cuda             # on a GPU: results/litellm4rec/bench-cuda.*
    python scripts/bench_litellm4rec.py --flops                   # add floating-point work per user to bench.json
    python scripts/bench_litellm4rec.py --users 500 --models all  # with the baseline decoded by transformers' generate

The generative baseline is timed with its two decodings of the same beam search (``GenerativeRecNet.decoding``):
``tree`` (the beams share each prompt's cache) and ``generate`` (transformers' ``generate(num_beams=20)``, the way
generative LLM recommenders usually decode: every prompt copied once per beam). The ``generate`` row takes about
2 s per user on 2 CPU cores (3.5 hours for all 6,040 users), so it runs only when named (``--models all`` or its
name), and its training time is the ``tree`` row's (the same network; not timed twice).

On a GPU (``--device cuda``) the model, the batches and the training steps run there, timings are taken after
``torch.cuda.synchronize()``, and peak memory is the GPU's allocated memory above what the loaded model holds.

``--flops`` counts the floating-point operations of producing the top-20 lists of the first test batch with
``torch.utils.flop_counter.FlopCounterMode`` (matrix products, attention, convolutions: the work a device has to do,
whatever it runs on) and stores them per user in the existing rows of bench.json (no timing is repeated).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "results" / "litellm4rec"
LISTS = REPO / "runs" / "litellm4rec" / "bench_lists"  # each row's top-20 lists (not committed), to compare decodings
GENERATIVE = "Generative, beam 20 (SmolLM2)"
GENERATE = "Generative, beam 20, transformers generate (SmolLM2)"
MODELS = {  # name -> (checkpoint id or folder, recipe, decoding of the generative baseline)
    "Lite-LLM4Rec (SmolLM2)": ("litellm4rec-smollm2-ml1m", "recipes/litellm4rec/smollm2.yaml", None),
    "Lite-LLM4Rec (MiniLM)": ("litellm4rec-minilm-ml1m", "recipes/litellm4rec/minilm.yaml", None),
    GENERATIVE: ("runs/litellm4rec/generative", "recipes/litellm4rec/generative.yaml", "tree"),
    GENERATE: ("runs/litellm4rec/generative", "recipes/litellm4rec/generative.yaml", "generate"),
    "SASRec": ("litellm4rec-sasrec-ml1m", "recipes/litellm4rec/sasrec.yaml", None),
}
DEFAULT_MODELS = [name for name in MODELS if name != GENERATE]
KS = (5, 10, 20)


def _rss() -> int:
    with open("/proc/self/statm") as f:
        import os

        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _load(source: str, recipe: str, users: int | None, device: str, decoding: str | None = None):
    """The model of ``source`` (checkpoint id or folder) in eval mode with its catalogue attached and its item vectors
    cached (and the generative baseline's ``decoding`` set), and the test loader of ``recipe`` (first ``users`` test
    users, or all)."""
    import yaml

    import zoo
    from zoo.litellm4rec.data import SeqRecDataModule

    path = REPO / source
    module = zoo.from_pretrained(str(path) if path.is_dir() else source)
    module.attach_catalogue()
    module.eval().to(device)
    if decoding is not None:
        module.net.decoding = decoding
    if hasattr(module.net, "cache_all_items"):
        module.net.cache_all_items()
    cfg = yaml.safe_load((REPO / recipe).read_text())
    dm = SeqRecDataModule(**(dict(cfg["data"]["init_args"]) | {"limit_users": users}))
    dm.setup()
    return module, dm.test_dataloader(), cfg


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")


def _count_flops(name: str, source: str, recipe: str, decoding: str | None, threads: int, queue) -> None:
    """Floating-point operations per user of the top-20 lists of the first test batch (``--flops``)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    torch.set_num_threads(threads)
    module, loader, _ = _load(source, recipe, None, "cpu", decoding)
    batch = next(iter(loader))
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        module.net.topk(batch, 20)
    users = len(batch["target"])
    queue.put({"model": name, "gflops_per_user": round(counter.get_total_flops() / users / 1e9, 4), "users": users})


def _measure(
    name: str,
    source: str,
    recipe: str,
    decoding: str | None,
    users: int | None,
    train_batches: int,
    threads: int,
    device: str,
    queue,
) -> None:
    import lightning as L
    import torch

    from zoo.litellm4rec.data import SeqRecDataModule
    from zoo.litellm4rec.metrics import list_ranks, rank_metrics

    torch.set_num_threads(threads)
    module, loader, cfg = _load(source, recipe, users, device, decoding)
    cuda = device.startswith("cuda")

    def moved(batch: dict) -> dict:
        return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(device)

    # inference: top-20 lists for every test user
    peak, stop = [_rss()], threading.Event()

    def sample():
        while not stop.is_set():
            peak.append(_rss())
            time.sleep(0.005)

    base = _rss()
    if cuda:
        sync()
        torch.cuda.reset_peak_memory_stats(device)
        gpu_base = torch.cuda.memory_allocated(device)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    ranks, lists = [], []
    t = time.perf_counter()
    with torch.inference_mode():
        for batch in loader:
            batch = moved(batch)
            items, _ = module.net.topk(batch, 20)
            ranks.append(list_ranks(items, batch["target"], 10**9).cpu())
            lists.append(items.cpu())
    sync()
    seconds = time.perf_counter() - t
    stop.set()
    sampler.join()
    peak_mb = (max(peak) - base) / 2**20
    if cuda:
        peak_mb = (torch.cuda.max_memory_allocated(device) - gpu_base) / 2**20
    ranks = torch.cat(ranks)
    LISTS.mkdir(parents=True, exist_ok=True)
    torch.save(torch.cat(lists), LISTS / f"{_slug(name)}-{len(ranks)}.pt")
    metrics = {k: round(float(v.mean()), 4) for k, v in rank_metrics(ranks, KS).items()}
    params = [p for p in module.net.parameters() if p.requires_grad]
    row = {
        "model": name, "source": source, "decoding": decoding, "users": len(ranks),
        "inference_seconds": round(seconds, 2), "ms_per_user": round(1000 * seconds / len(ranks), 3),
        "peak_inference_mb": round(peak_mb, 1), "resident_mb": round(max(peak) / 2**20, 1),
        "train_seconds_per_batch": None, "train_batches_per_epoch": None, "train_epoch_seconds": None,
        "trainable_parameters": sum(p.numel() for p in params), "metrics": metrics,
    }  # fmt: skip
    if not train_batches:  # the same network as another row (another decoding): its training is that row's
        queue.put(row)
        return
    # training: timed batches of the recipe, scaled to an epoch
    module.train()
    L.seed_everything(0)
    train_dm = SeqRecDataModule(**cfg["data"]["init_args"])
    train_dm.setup()
    train_loader = train_dm.train_dataloader()
    opt = torch.optim.AdamW(params, lr=1e-4)
    times = []
    for i, batch in enumerate(train_loader):
        if i > train_batches:
            break
        batch = moved(batch)
        sync()
        t0 = time.perf_counter()
        opt.zero_grad()
        module.net.loss(batch).backward()
        opt.step()
        sync()
        times.append(time.perf_counter() - t0)
    per_batch = sum(times[1:]) / max(len(times) - 1, 1)
    row |= {"train_seconds_per_batch": round(per_batch, 3), "train_batches_per_epoch": len(train_loader),
            "train_epoch_seconds": round(per_batch * len(train_loader), 1)}  # fmt: skip
    queue.put(row)


def _in_child(ctx, target, *args) -> dict:
    """``target(*args, queue)`` in a fresh process (its own peak memory and threads); returns and prints the row it
    puts on the queue."""
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    proc.start()
    row = queue.get()
    proc.join()
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=None, help="first N test users (default: all 6,040)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--train-batches", type=int, default=5)
    parser.add_argument(
        "--models", nargs="+", default=DEFAULT_MODELS, help=f"names from MODELS, or all (default: all but {GENERATE!r})"
    )
    parser.add_argument("--device", default="cpu", help="cpu, or cuda for a GPU run (its own result files)")
    parser.add_argument("--md-only", action="store_true", help="rewrite the markdown from bench.json and `zoo eval`s")
    parser.add_argument("--flops", action="store_true", help="count FLOPs per user into bench.json's rows")
    args = parser.parse_args()
    if args.models == ["all"]:
        args.models = list(MODELS)
    unknown = [m for m in args.models if m not in MODELS]
    if unknown:
        parser.error(f"unknown model(s) {unknown}; expected names from {list(MODELS)} or all")
    suffix = ("" if args.users is None else f"-{args.users}") + ("" if args.device == "cpu" else "-cuda")
    ctx = mp.get_context("spawn")
    if args.flops:
        path = RESULTS / f"bench{suffix}.json"
        out = json.loads(path.read_text())
        for name in args.models:
            row = _in_child(ctx, _count_flops, name, *MODELS[name], args.threads)
            for r in out["rows"]:
                if r["model"] == name:
                    r["gflops_per_user"], r["flops_users"] = row["gflops_per_user"], row["users"]
        path.write_text(json.dumps(out, indent=1) + "\n")
        args.md_only = True
    if args.md_only:  # e.g. after a checkpoint was reshipped with the same architecture (same timings)
        write_md(json.loads((RESULTS / f"bench{suffix}.json").read_text()), suffix)
        return
    sys.path.insert(0, str(REPO / "scripts"))
    from zoo.utils import machine

    rows = []
    for name in args.models:
        source, recipe, decoding = MODELS[name]
        train_batches = 0 if decoding == "generate" else args.train_batches  # the tree row's network
        rows.append(_in_child(ctx, _measure, name, source, recipe, decoding, args.users, train_batches, args.threads,
                              args.device))  # fmt: skip
    agree = same_lists(GENERATE, GENERATIVE, rows[0]["users"]) if rows else None
    for r in rows:
        if r["model"] == GENERATE and agree is not None:
            r["same_lists_as_tree"] = agree
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    for r in rows:
        r["measured"] = stamp
    rows = merge_rows(RESULTS / f"bench{suffix}.json", rows, args.threads)
    out = {"machine": machine(), "threads": args.threads, "device": args.device, "users_limit": args.users,
           "rows": rows}  # fmt: skip
    (RESULTS / f"bench{suffix}.json").write_text(json.dumps(out, indent=1) + "\n")
    write_md(out, suffix)


def same_lists(name: str, other: str, users: int) -> float | None:
    """Share of users whose top-20 list (items in order) is the same for two rows of a run over ``users`` users, from
    the lists each measurement saved (None if either is missing)."""
    import torch

    paths = [LISTS / f"{_slug(n)}-{users}.pt" for n in (name, other)]
    if not all(p.exists() for p in paths):
        return None
    a, b = (torch.load(p) for p in paths)
    return round(float((a == b).all(1).float().mean()), 4) if a.shape == b.shape else None


def write_md(out: dict, suffix: str = "") -> None:
    """Write and print ``bench<suffix>.md`` and ``table<suffix>.md`` from a bench record (and shipped `zoo eval`s)."""
    for stem, text in (("bench", bench_markdown(out)), ("table", table_markdown(out))):
        (RESULTS / f"{stem}{suffix}.md").write_text(text)
        print(text)


def merge_rows(path: Path, rows: list[dict], threads: int) -> list[dict]:
    """``rows`` plus the rows of the other models already in ``path`` (same thread count), in ``MODELS`` order: a
    run of some models updates their rows and keeps the others (each row records when it was measured)."""
    if path.exists():
        old = json.loads(path.read_text())
        if old.get("threads") == threads:
            names = {r["model"] for r in rows}
            rows = [r for r in old["rows"] if r["model"] not in names] + rows
    order = list(MODELS)
    return sorted(rows, key=lambda r: order.index(r["model"]) if r["model"] in order else len(order))


def bench_markdown(out: dict) -> str:
    """The inference/training table with ratios against Lite-LLM4Rec (SmolLM2)."""
    rows = {r["model"]: r for r in out["rows"]}
    ref = rows.get("Lite-LLM4Rec (SmolLM2)")
    flops = any("gflops_per_user" in r for r in out["rows"])
    users = out["rows"][0]["users"] if out["rows"] else 0
    lines = [
        f"| model | inference, {users:,} test users (s) | ms / user | vs Lite-LLM4Rec (SmolLM2) | peak inference "
        "memory (MB) | training epoch (s) | trainable parameters |" + (" GFLOP / user |" if flops else ""),
        "|---|---:|---:|---:|---:|---:|---:|" + ("---:|" if flops else ""),
    ]
    for r in out["rows"]:
        ratio = f"{r['inference_seconds'] / ref['inference_seconds']:.3g}× the time" if ref else "–"
        if ref and r is ref:
            ratio = "1×"
        work = (f" {r['gflops_per_user']:.3g} |" if "gflops_per_user" in r else " – |") if flops else ""
        epoch = "as above" if r.get("train_epoch_seconds") is None else f"{r['train_epoch_seconds']:.0f}"
        lines.append(
            f"| {r['model']} | {r['inference_seconds']:.1f} | {r['ms_per_user']:.2f} | {ratio} | "
            f"{r['peak_inference_mb']:.0f} | {epoch} | {r['trainable_parameters']:,} |" + work
        )
    gen = rows.get(GENERATIVE)
    note = ""
    if ref and gen:
        saved = 100 * (1 - ref["inference_seconds"] / gen["inference_seconds"])
        speedup = gen["inference_seconds"] / ref["inference_seconds"]
        note = (
            f"\n\nLite-LLM4Rec (SmolLM2) produces the top-20 lists {speedup:.1f}× "
            f"faster than the generative baseline on the same backbone, its beams sharing each prompt's cache "
            f"({saved:.1f}% less inference time; the paper "
            "reports 97.28% (arXiv v1) / 99.48% (AACL) on ML-1m)."
        )
        if "gflops_per_user" in ref and "gflops_per_user" in gen:
            note += (
                f" The generative baseline does {gen['gflops_per_user'] / ref['gflops_per_user']:.1f}× the "
                f"floating-point work per user ({gen['gflops_per_user']:.3g} against {ref['gflops_per_user']:.3g} "
                "GFLOP, counted by `torch.utils.flop_counter` over each model's first test batch, "
                f"{gen['flops_users']} and {ref['flops_users']} users, `--flops`)"
            )
            work = gen["gflops_per_user"] / ref["gflops_per_user"]
            close = abs(math.log(speedup / work)) < math.log(1.5)
            note += f": the time ratio here ({speedup:.1f}×) is {'close to' if close else 'far from'} the work ratio."
    hf = rows.get(GENERATE)
    if ref and hf:
        note += "\n\n" + generate_note(ref, gen, hf)
    gpu = out.get("device", "cpu") != "cpu"
    where = f"{out['machine'].split(', ')[-1]} GPU (peak memory: GPU memory)" if gpu else out["machine"].split(",")[0]
    runs = sorted({r.get("measured", "an earlier run") for r in out["rows"]})
    if len(runs) > 1:
        when = "; ".join(f"{r['model']}: {r.get('measured', 'an earlier run')}" for r in out["rows"])
        note += ("\n\n" if not note else " ") + f"Rows were measured in separate runs ({when}): compare with care."
    return (
        "\n".join(lines)
        + note
        + f"\n\n{users:,} test users, top-20 lists, {out['threads']} torch thread(s) per model, {where}; "
        f"`{command(out)}`. Training epoch: timed batches of each recipe scaled to one epoch.\n"
    )


def command(out: dict) -> str:
    """The command line that measured a bench record."""
    names = {r["model"] for r in out["rows"]}
    limit = out.get("users_limit")
    return (
        "python scripts/bench_litellm4rec.py"
        + (f" --users {limit}" if limit is not None else "")
        + (" --models all" if GENERATE in names else "")
        + (f" --device {out['device']}" if out.get("device", "cpu") != "cpu" else "")
    )


def generate_note(ref: dict, gen: dict | None, hf: dict) -> str:
    """What the ``generate`` row adds: Lite-LLM4Rec's speed-up over the baseline decoded as generative recommenders
    usually decode it, beside the paper's, and (with the ``tree`` row) the cost of that decoding and the agreement of
    the two decodings' lists."""
    speedup = hf["inference_seconds"] / ref["inference_seconds"]
    saved = 100 * (1 - ref["inference_seconds"] / hf["inference_seconds"])
    text = (
        f"Decoded by transformers' `generate` (`num_beams=20`, every prompt copied once per beam: the way generative "
        f"LLM recommenders usually decode), the generative baseline takes {speedup:.0f}× Lite-LLM4Rec (SmolLM2)'s "
        f"time ({saved:.1f}% less inference time for Lite-LLM4Rec; the paper: 97.28% (arXiv v1) / 99.48% (AACL))"
    )
    if gen:
        text += (
            f", {hf['inference_seconds'] / gen['inference_seconds']:.1f}× the time of the same search with the beams "
            "sharing the prompt's cache"
        )
    if "gflops_per_user" in hf:
        text += f" ({hf['gflops_per_user']:.3g} GFLOP per user"
        if "gflops_per_user" in ref:
            text += f", {hf['gflops_per_user'] / ref['gflops_per_user']:.0f}× Lite-LLM4Rec's work"
        text += ")"
    text += "."
    if hf.get("same_lists_as_tree") is not None:
        text += (
            f" The two decodings return the same top-20 list, item for item, for {100 * hf['same_lists_as_tree']:.1f}%"
            " of the users (`generate` keeps 20 live beams beside the finished ones, so the searches can part)."
        )
    return text


def table_markdown(out: dict) -> str:
    """The reproduction table: every model's metrics, and Lite-LLM4Rec's gain over the generative baseline beside the
    paper's."""
    full = out.get("users_limit") is None  # all test users, as `zoo eval`
    for r in out["rows"]:  # a shipped checkpoint's metrics are its `zoo eval` (the card's), same protocol and users
        shipped = RESULTS / f"{r['source']}.json"
        if full and shipped.exists():
            r["metrics"] = {k: round(v, 4) for k, v in json.loads(shipped.read_text()).items() if "@" in k}
    rows = {r["model"]: r for r in out["rows"]}
    gen = rows.get("Generative, beam 20 (SmolLM2)")
    cols = [f"{m}@{k}" for m in ("recall", "ndcg") for k in KS]
    head = " | ".join(c.replace("recall", "Recall").replace("ndcg", "NDCG") for c in cols)
    lines = [
        f"| model | {head} | Recall@10 vs generative | NDCG@20 vs generative |",
        "|---|" + "---:|" * (len(cols) + 2),
    ]
    for r in out["rows"]:
        m = r["metrics"]
        gains = []
        for key in ("recall@10", "ndcg@20"):
            base = gen["metrics"][key] if gen else 0
            gains.append(f"{100 * (m[key] / base - 1):+.1f}%" if gen and r is not gen and base else "–")
        lines.append(f"| {r['model']} | " + " | ".join(f"{m[c]:.4f}" for c in cols) + f" | {gains[0]} | {gains[1]} |")
    lines.append(
        "| *paper: Lite-LLM4Rec vs the best LLM baseline, ML-1m* | " + " | ".join("–" for _ in cols)
        + " | +46.8% (abstract; the metric is unconfirmed) | up to +51.4% (unconfirmed) |"
    )  # fmt: skip
    users = out["rows"][0]["users"] if out["rows"] else 0
    return (
        "\n".join(lines)
        + f"\n\nMovieLens-1M, 5-core, leave-one-out, {users:,} test users, full ranking over 3,416 items with "
        "the user's history excluded (the generative baseline ranks the 20 items of its beam; Recall/NDCG@K are "
        "exact for K <= 20). "
        + (
            "Shipped checkpoints' rows are their `zoo eval` results (the cards' numbers); the others come from the "
            "benchmark's top-20 lists. "
            if full
            else "Every row comes from the benchmark's top-20 lists of these users. "
        )
        + "The paper gives only relative improvements on ML-1m; its absolute numbers are not available here. "
        f"`{command(out)}`.\n"
    )


if __name__ == "__main__":
    main()
