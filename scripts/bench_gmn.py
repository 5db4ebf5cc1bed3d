"""Benchmark of parameter-graph construction: ``zoo.gmn.to_graph`` (torch ops per layer) against a straightforward
builder with a Python loop per parameter and per neuron, which is written here and must give the same graph.

Networks:

* ``cnn100k``: Conv2d(1→32, 3×3) → BN → ReLU → MaxPool(2) → Conv2d(32→64, 3×3) → BN → ReLU → AdaptiveAvgPool(4) →
  Flatten → Linear(1024→80) → ReLU → Linear(80→10): 101,818 parameters (the Linear after Flatten reads 64 channels
  × 16 positions, one edge per weight from its channel's node).
* ``tiny``: a zoo-sized CNN, Conv2d(1→8) → ReLU → Conv2d(8→8) → ReLU → AdaptiveAvgPool(1) → Flatten → Linear(8→10).

Both builders run in one process, alternating, after a warm-up; the median of ``--repeats`` runs is reported with the
ratio loop / to_graph.

    python scripts/bench_gmn.py [--repeats 7] [--threads 1]

Writes results/gmn/bench.json and results/gmn/bench.md and prints the table with the machine named.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch
from torch import nn

from zoo.gmn import ACTIVATIONS, EDGE_TYPES, NODE_TYPES, to_graph
from zoo.utils import machine

REPO = Path(__file__).resolve().parent.parent
KEYS = ("x", "edge_index", "edge_attr", "edge_param", "edge_flat", "act")


def cnn100k() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(4),
        nn.Flatten(),
        nn.Linear(1024, 80),
        nn.ReLU(),
        nn.Linear(80, 10),
    )


def tiny() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 8, 3),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 10),
    )


def loop_to_graph(net: nn.Sequential) -> dict[str, torch.Tensor]:
    """The baseline: the same schema (Conv2d, BatchNorm2d, Linear, activations) with one Python step per parameter
    and per neuron; tensors are made once at the end."""
    nodes: list[list[int]] = []
    src: list[int] = []
    dst: list[int] = []
    attr: list[list[float]] = []
    pidx: list[int] = []
    flat: list[int] = []
    act: list[int] = []
    n_params = 0
    state = {"layer": 0, "cur": None, "channel_first": False}

    def node(layer: int, order: int, ntype: str) -> int:
        nodes.append([layer, order, NODE_TYPES[ntype]])
        act.append(0)
        return len(nodes) - 1

    def edge(s: int, d: int, value: float, etype: str, pos: tuple, param: int, f: int) -> None:
        src.append(s)
        dst.append(d)
        attr.append([value, state["layer"], EDGE_TYPES[etype], *pos, *([-1] * (3 - len(pos)))])
        pidx.append(param)
        flat.append(f)

    def inputs(width: int, ntype: str, channel_first: bool) -> list[int]:
        if state["cur"] is None:
            state["cur"] = [node(0, i, ntype) for i in range(width)]
            state["channel_first"] = channel_first
        return state["cur"]

    for m in net:
        if isinstance(m, nn.Conv2d):
            cur = inputs(m.in_channels, "conv_channel", True)
            state["layer"] += 1
            out = [node(state["layer"], -1, "conv_channel") for _ in range(m.out_channels)]
            w = m.weight.detach().tolist()
            f = 0
            for o in range(m.out_channels):
                for i in range(m.in_channels):
                    for a in range(m.kernel_size[0]):
                        for b in range(m.kernel_size[1]):
                            edge(cur[i], out[o], w[o][i][a][b], "conv", (a, b), n_params, f)
                            f += 1
            n_params += 1
            bias = node(state["layer"], -1, "conv_bias")
            for o, v in enumerate(m.bias.detach().tolist()):
                edge(bias, out[o], v, "conv_bias", (), n_params, o)
            n_params += 1
            state["cur"], state["channel_first"] = out, True
        elif isinstance(m, nn.BatchNorm2d):
            cur = inputs(m.num_features, "conv_channel", True)
            for part, p in (("weight", m.weight), ("bias", m.bias)):
                g = node(state["layer"], -1, f"batchnorm_{part}")
                for c, v in enumerate(p.detach().tolist()):
                    edge(g, cur[c], v, f"batchnorm_{part}", (), n_params, c)
                n_params += 1
        elif isinstance(m, nn.Linear):
            cur = inputs(m.in_features, "neuron", False)
            n, per = len(cur), m.in_features // len(cur)
            state["layer"] += 1
            out = [node(state["layer"], -1, "neuron") for _ in range(m.out_features)]
            w = m.weight.detach().tolist()
            for o in range(m.out_features):
                for j in range(m.in_features):
                    if per == 1:
                        edge(cur[j], out[o], w[o][j], "linear", (), n_params, o * m.in_features + j)
                    elif state["channel_first"]:  # channel-major flatten of [C, positions]
                        edge(cur[j // per], out[o], w[o][j], "linear", (j % per,), n_params, o * m.in_features + j)
                    else:
                        edge(cur[j % n], out[o], w[o][j], "linear", (j // n,), n_params, o * m.in_features + j)
            n_params += 1
            bias = node(state["layer"], -1, "linear_bias")
            for o, v in enumerate(m.bias.detach().tolist()):
                edge(bias, out[o], v, "linear_bias", (), n_params, o)
            n_params += 1
            state["cur"], state["channel_first"] = out, False
        elif type(m) in ACTIVATIONS and state["cur"] is not None:
            for i in state["cur"]:
                act[i] = ACTIVATIONS[type(m)]
        elif any(True for _ in m.parameters()):
            raise TypeError(f"the loop baseline does not support {type(m).__name__}")
    for order, i in enumerate(state["cur"]):
        nodes[i][1] = order
    return {
        "x": torch.tensor(nodes),
        "edge_index": torch.tensor([src, dst]),
        "edge_attr": torch.tensor(attr, dtype=torch.float32),
        "edge_param": torch.tensor(pidx),
        "edge_flat": torch.tensor(flat),
        "act": torch.tensor(act),
    }


def bench(net: nn.Module, repeats: int) -> dict:
    ours, loop = to_graph(net), loop_to_graph(net)
    for key in KEYS:  # the baseline builds the very same graph
        assert torch.equal(ours[key], loop[key]), key
    times: dict[str, list[float]] = {"to_graph": [], "loop": []}
    for _ in range(repeats):
        for name, fn in (("to_graph", to_graph), ("loop", loop_to_graph)):
            t = time.perf_counter()
            fn(net)
            times[name].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "parameters": sum(p.numel() for p in net.parameters()),
        "nodes": int(ours.num_nodes),
        "edges": int(ours.edge_index.shape[1]),
        "to_graph_s": med["to_graph"],
        "loop_s": med["loop"],
        "ratio": med["loop"] / med["to_graph"],
        "runs_s": times,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    nets = {"cnn100k": cnn100k(), "tiny": tiny()}
    for net in nets.values():
        to_graph(net)  # warm-up: imports torch_geometric, first-call costs
    load = [round(v, 2) for v in os.getloadavg()]
    rows = {name: bench(net, args.repeats) for name, net in nets.items()}
    result = {
        "machine": machine(),
        "load_average_1_5_15": load,
        "repeats": args.repeats,
        "statistic": "median, builders alternating in one process after a warm-up",
        "networks": rows,
    }
    out = REPO / "results" / "gmn"
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(result, indent=1) + "\n")
    lines = [
        "# Parameter-graph construction benchmark",
        "",
        f"Machine: {result['machine']}; load average {load[0]} (1 min) at the start. Median of {args.repeats} runs, "
        "both builders alternating in one process after a warm-up (`scripts/bench_gmn.py`). Both build the same graph "
        "(asserted: x, edge_index, edge_attr, edge_param, edge_flat, act).",
        "",
        "| network | parameters | nodes | edges | per-parameter loop (ms) | `to_graph` (ms) | loop / to_graph |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {r['parameters']:,} | {r['nodes']:,} | {r['edges']:,} | {1e3 * r['loop_s']:.1f} | "
            f"{1e3 * r['to_graph_s']:.2f} | {r['ratio']:.1f}× |"
        )
    lines.append("")
    (out / "bench.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
