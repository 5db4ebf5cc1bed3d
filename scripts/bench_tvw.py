"""Benchmark of TW / TVW sparse GEMM execution against the dense GEMM on BERT-base shapes.

y[M×N] = x[M×K]·W[K×N] + b with M ∈ {2048, 8192} and (K, N) ∈ {768×768, 768×3072, 3072×768}, at 50 / 75 / 87.5%
sparsity, for the patterns

* ``EW``: element-wise mask, executed as the dense GEMM on the masked weight (no speedup: the reference point);
* ``TW eq``: tile-wise, sparsity split equally between columns and per-tile rows (d_col = d_row = √d);
* ``TW col``: column-heavy split (d_col = d^¾, d_row = d^¼);
* ``TW N``: column pruning only (d_col = d);
* ``TVW``: TW (equal split) at twice the density with 2:4 inside the tiles; on CPU only the TW part is exploited.
* ``TVW N``: the same with the TW part spent on whole columns only (``col_share=1``), the CPU-friendliest TVW.

Layouts come from ``zoo.pruning.patterns.compute_masks`` on |W| of a random weight (tiles of 128 kept columns).
Baseline (``F.linear``, dense) and candidates run in one process with interleaved repetitions; the median time is
reported with the ratio dense / candidate.

    python scripts/bench_tvw.py --quick                 # M = 2048 only, fewer repetitions (about a minute on CPU)
    python scripts/bench_tvw.py [--threads 1]           # the full grid on CPU: the "cpu" path of zoo.pruning.tvw
    python scripts/bench_tvw.py --device cuda           # Triton kernel vs cuBLAS (+ PyTorch 2:4 semi-structured)
    python scripts/bench_tvw.py --device cuda --sweep   # launch-parameter sweep of the kernel (chooses defaults)

Writes results/pruning/bench_tvw.json and results/pruning/bench_tvw.md (``--device cuda``: bench_tvw_cuda.*).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from zoo.pruning.layout import TileLayout
from zoo.pruning.tvw import pack, tvw_matmul

REPO = Path(__file__).resolve().parent.parent
SHAPES = [(768, 768), (768, 3072), (3072, 768)]  # (K, N)
SPARSITIES = [0.5, 0.75, 0.875]
PATTERNS = {  # name: (pattern, col_share)
    "TW eq": ("tw", 0.5),
    "TW col": ("tw", 0.75),
    "TW N": ("tw", 1.0),
    "TVW": ("tvw", 0.5),
    "TVW N": ("tvw", 1.0),
}


def machine(device: str) -> dict:
    from zoo.utils import cpu_name

    info = {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "load_average": [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None,
    }
    if device == "cuda":
        import triton

        info["gpu"] = torch.cuda.get_device_name()
        info["triton"] = triton.__version__
    return info


def layouts_for(w_nk: Tensor, sparsity: float, tile: int) -> dict[str, tuple[TileLayout, Tensor]]:
    """{pattern name: (layout, mask)} from |W| with the pruner's global-threshold TW / TVW construction."""
    from zoo.pruning.patterns import compute_masks

    scores = {"w": w_nk.abs().float().cpu()}
    out = {}
    for name, (pattern, share) in PATTERNS.items():
        masks, lays = compute_masks(scores, pattern, sparsity, tile=tile, col_share=share, min_density=0.0)
        out[name] = (TileLayout.from_dict(lays["w"]), masks["w"])
    return out


def _timer(device: str):
    if device == "cuda":

        def run(fn, inner: int = 10) -> float:  # `inner` back-to-back launches: microsecond kernels
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(inner):
                fn()
            end.record()
            torch.cuda.synchronize()
            return start.elapsed_time(end) / 1e3 / inner

    else:

        def run(fn) -> float:
            t = time.perf_counter()
            fn()
            return time.perf_counter() - t

    return run


def bench_shape(m: int, k: int, n: int, args, dtype: torch.dtype) -> list[dict]:
    device = args.device
    g = torch.Generator().manual_seed(0)
    w = torch.randn(n, k, generator=g).to(device, dtype)
    b = torch.randn(n, generator=g).to(device, dtype)
    x = torch.randn(m, k, generator=g).to(device, dtype)
    path = "triton" if device == "cuda" else "cpu"
    rows = []
    for sparsity in SPARSITIES:
        cands = {"dense": lambda: F.linear(x, w, b)}
        meta = {"dense": {"density": 1.0}}
        ew = w * (torch.rand(n, k, generator=g) >= sparsity).to(device, dtype)
        cands["EW"] = lambda ew=ew: F.linear(x, ew, b)
        meta["EW"] = {"density": float((ew != 0).float().mean())}
        for name, (lay, mask) in layouts_for(w, sparsity, args.tile).items():
            packed = pack(w, lay, mask=mask.to(device))
            cands[name] = lambda p=packed: tvw_matmul(x, p, b, path=path)
            d_col = sum(len(c) for c in lay.cols) / n
            meta[name] = {"density": lay.density(), "col_density": d_col, "tiles": lay.num_tiles}
            if device == "cuda":
                cands[name + " (torch)"] = lambda p=packed: tvw_matmul(x, p, b, path="cpu")
                meta[name + " (torch)"] = meta[name]
        if device == "cuda" and args.semi and sparsity == 0.5:
            semi = _semi_structured(w, dtype)
            if semi is not None:
                cands["2:4 torch"] = lambda s=semi: F.linear(x, s, b)
                meta["2:4 torch"] = {"density": 0.5}
        with torch.no_grad():
            times = {name: [] for name in cands}
            run = _timer(device)
            for fn in cands.values():  # warm-up (and Triton compilation)
                fn()
            for _ in range(args.reps):
                for name, fn in cands.items():  # interleaved: every candidate sees the same machine state
                    times[name].append(run(fn))
        dense = statistics.median(times["dense"])
        for name, ts in times.items():
            med = statistics.median(ts)
            rows.append(
                {
                    "M": m,
                    "K": k,
                    "N": n,
                    "sparsity": sparsity,
                    "pattern": name,
                    **{key: round(v, 4) if isinstance(v, float) else v for key, v in meta[name].items()},
                    "ms": round(med * 1e3, 3),
                    "dense_ms": round(dense * 1e3, 3),
                    "speedup": round(dense / med, 3),
                }
            )
        print(
            f"M={m} K={k} N={n} s={sparsity}: "
            + ", ".join(
                f"{r['pattern']} {r['speedup']:.2f}x" for r in rows if r["sparsity"] == sparsity and r["K"] == k
            )
            + f" (dense {dense * 1e3:.1f} ms)",
            flush=True,
        )
    return rows


SWEEP = [  # (block_m, block_n, block_k, num_warps, num_stages, compact_out)
    (bm, 128, bk, wp, st, co)
    for bm in (64, 128)
    for bk in (32, 64)
    for wp in (4, 8)
    for st in (3, 4)
    for co in (False, True)
]


def sweep(args, dtype: torch.dtype) -> list[dict]:
    """Time the Triton kernel over ``SWEEP`` on BERT-base FFN shapes at 75% (TW eq and TVW) against cuBLAS."""
    from zoo.pruning.kernels.tvw_triton import tvw_matmul_triton

    rows = []
    run = _timer("cuda")
    for m, k, n in [(8192, 768, 3072), (8192, 3072, 768), (2048, 768, 3072)]:
        g = torch.Generator().manual_seed(0)
        w = torch.randn(n, k, generator=g).to("cuda", dtype)
        x = torch.randn(m, k, generator=g).to("cuda", dtype)
        b = torch.randn(n, generator=g).to("cuda", dtype)
        lays = layouts_for(w, 0.75, args.tile)
        with torch.no_grad():
            dense = statistics.median(run(functools.partial(F.linear, x, w, b)) for _ in range(args.reps))
            for name in ("TW eq", "TVW"):
                lay, mask = lays[name]
                packed = pack(w, lay, mask=mask.to("cuda"))
                for bm, bn, bk, wp, st, co in SWEEP:
                    kw = dict(block_m=bm, block_n=bn, block_k=bk, num_warps=wp, num_stages=st, compact_out=co)
                    try:
                        tvw_matmul_triton(x, packed, b, **kw)
                        ms = statistics.median(
                            run(functools.partial(tvw_matmul_triton, x, packed, b, **kw)) for _ in range(args.reps)
                        )
                    except Exception as e:  # out of shared memory / registers for this config
                        print(f"{name} {kw}: {type(e).__name__}")
                        continue
                    rows.append(
                        {
                            "M": m,
                            "K": k,
                            "N": n,
                            "pattern": name,
                            **kw,
                            "ms": round(ms * 1e3, 4),
                            "speedup": round(dense / ms, 3),
                        }
                    )
            for name in ("TW eq", "TVW"):
                sel = sorted(
                    (r for r in rows if (r["M"], r["K"], r["N"], r["pattern"]) == (m, k, n, name)),
                    key=lambda r: r["ms"],
                )
                print(f"M={m} K={k} N={n} {name}: dense {dense * 1e3:.3f} ms; best", sel[:3], flush=True)
    return rows


def _semi_structured(w: Tensor, dtype: torch.dtype):
    """The weight pruned to plain 2:4 along K as PyTorch's semi-structured tensor (CUDA sm80+), or None."""
    try:
        from torch.sparse import to_sparse_semi_structured

        groups = w.view(w.shape[0], -1, 4)
        keep = torch.zeros_like(groups, dtype=torch.bool).scatter_(2, groups.abs().topk(2, dim=2).indices, True)
        return to_sparse_semi_structured((groups * keep).view_as(w).to(dtype))
    except Exception as e:  # unsupported GPU, dtype or shape: report and go on
        print(f"semi-structured 2:4 unavailable: {type(e).__name__}: {e}")
        return None


def markdown(rows: list[dict], info: dict, args) -> str:
    where = f"{info['cpu']}, {info['cores']} cores, torch threads {info['threads']}, torch {info['torch']}"
    if args.device == "cuda":
        where = f"{info['gpu']}, triton {info['triton']}, torch {info['torch']}"
    elif info.get("load_average"):
        where += f", load average {info['load_average'][0]} → {info['load_average_end'][0]} (1 min)"
    path = "Triton kernel" if args.device == "cuda" else "the CPU path of zoo.pruning.tvw (2:4 not exploited on CPU)"
    pats = [p for p in _patterns(rows) if p != "dense"]
    lines = [
        "# TW / TVW GEMM benchmark",
        "",
        f"Machine: {where}. {args.dtype}, median of {args.reps} interleaved repetitions, {path}. Cells: speedup = "
        "dense `F.linear` time / pattern time, both in the same process. EW = dense GEMM on the masked weight; TW eq "
        "/ col / N = tile-wise with the sparsity spent equally on columns and rows / ¾ on columns / on columns only; "
        "TVW = TW (equal split) at twice the density + 2:4 in the tiles; TVW N = the same with the TW part on "
        "columns only.",
        "",
        "| M | K×N | sparsity | dense ms | " + " | ".join(pats) + " |",
        "|---|---|---|---|" + "---|" * len(pats),
    ]
    keys = {(r["M"], r["K"], r["N"], r["sparsity"]) for r in rows}
    for m, k, n, s in sorted(keys, key=lambda t: (t[0], SHAPES.index((t[1], t[2])), t[3])):
        sel = {r["pattern"]: r for r in rows if (r["M"], r["K"], r["N"], r["sparsity"]) == (m, k, n, s)}
        cells = [f"{sel[p]['speedup']:.2f}×" if p in sel else "–" for p in pats]
        dense_ms = f"{sel['dense']['ms']:.3f}" if args.device == "cuda" else f"{sel['dense']['ms']:.1f}"
        lines.append(f"| {m} | {k}×{n} | {s:g} | {dense_ms} | " + " | ".join(cells) + " |")
    stem = "bench_tvw" + ("_cuda" if args.device == "cuda" else "")
    lines += ["", f"Reached densities and the column density of each layout: {stem}.json."]
    return "\n".join(lines) + "\n"


def _patterns(rows: list[dict]) -> list[str]:
    seen = []
    for r in rows:
        if r["pattern"] not in seen:
            seen.append(r["pattern"])
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--quick", action="store_true", help="M = 2048 only and 7 repetitions")
    parser.add_argument("--reps", type=int, default=None, help="repetitions per candidate (default 11; quick 7)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's default)")
    parser.add_argument("--dtype", default=None, choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--tile", type=int, default=128)
    parser.add_argument("--sweep", action="store_true", help="CUDA: launch-parameter sweep (bench_tvw_sweep.json)")
    parser.add_argument("--no-semi", dest="semi", action="store_false", help="skip PyTorch's 2:4 on CUDA")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "pruning")
    parser.add_argument("--render", action="store_true", help="rewrite the .md from the existing .json (no timing)")
    args = parser.parse_args()
    if args.render:
        stem = "bench_tvw" + ("_cuda" if args.device == "cuda" else "")
        saved = json.loads((args.out / f"{stem}.json").read_text())
        args.reps, args.dtype = saved["settings"]["reps"], saved["settings"]["dtype"]
        (args.out / f"{stem}.md").write_text(markdown(saved["rows"], saved["machine"], args))
        print(f"wrote {args.out / stem}.md")
        return
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device here")
    if args.threads:
        torch.set_num_threads(args.threads)
    args.reps = args.reps or (7 if args.quick else 11)
    args.dtype = args.dtype or ("float16" if args.device == "cuda" else "float32")
    dtype = getattr(torch, args.dtype)
    info = machine(args.device)
    print(f"machine: {info}")
    if args.sweep:
        if args.device != "cuda":
            raise SystemExit("--sweep needs --device cuda")
        rows = sweep(args, dtype)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "bench_tvw_sweep.json").write_text(json.dumps({"machine": info, "rows": rows}, indent=1))
        return
    rows = []
    for m in [2048] if args.quick else [2048, 8192]:
        for k, n in SHAPES:
            rows += bench_shape(m, k, n, args, dtype)
    info["load_average_end"] = machine(args.device)["load_average"]
    md = markdown(rows, info, args)
    print(md)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "bench_tvw" + ("_cuda" if args.device == "cuda" else "")
    settings = {
        **vars(args),
        "out": str(args.out.resolve().relative_to(REPO) if args.out.resolve().is_relative_to(REPO) else args.out),
    }
    (args.out / f"{stem}.json").write_text(json.dumps({"machine": info, "settings": settings, "rows": rows}, indent=1))
    (args.out / f"{stem}.md").write_text(md)
    print(f"wrote {args.out / stem}.json and .md")


if __name__ == "__main__":
    main()
