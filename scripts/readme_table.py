"""Regenerate the generated blocks of README.md: the model table (registry + measured results) and the result
tables that scripts write to ``results/`` (each block between ``<!-- NAME:start ... -->`` and ``<!-- NAME:end -->``).

python scripts/readme_table.py          # rewrite README.md in place
python scripts/readme_table.py --check  # exit 1 if README.md is out of date
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# block name -> results file whose markdown (without its title line) is copied in; "model-table" is built here
BLOCKS = {
    "model-table": None,
    "pruning-accuracy-conn": "results/pruning/accuracy_conn.md",
    "pruning-accuracy-minilm": "results/pruning/accuracy_minilm.md",
    "pruning-bench": "results/pruning/bench_tvw.md",
    "pruning-bench-cuda": "results/pruning/bench_tvw_cuda.md",
    "pruning-abft": "results/pruning/abft.md",
    "gmn-table": "results/gmn/table.md",
    "gmn-curve": "results/gmn/curve.md",
    "gaug-bench": "results/gaug/bench.md",
    "textssl-table": "results/textssl/table.md",
    "litellm4rec-table": "results/litellm4rec/table.md",
    "litellm4rec-bench": "results/litellm4rec/bench.md",
    "litellm4rec-bench-generate": "results/litellm4rec/bench-500.md",
}


def table() -> str:
    from zoo import registry

    rows = [
        "| id | paper | data | test metric (ours) | paper | size | card |",
        "|---|---|---|---|---|---|---|",
    ]
    for entry in registry.list_entries():
        family = registry.get_family(entry.family)
        result = REPO / "results" / entry.family / f"{entry.id}.json"
        ours = "not measured"
        if result.exists():
            value = json.loads(result.read_text()).get(entry.metric)
            if value is not None:
                ours = f"R² {value:.3f}" if entry.metric == "r2" else f"{entry.metric} {100 * value:.1f}%"
        reference = "–"
        paper_of = getattr(__import__(family.module.split(":")[0], fromlist=["x"]), "paper_reference", None)
        if paper_of is not None:
            reference = paper_of(entry)
        weights = REPO / "cards" / entry.id / "model.safetensors"
        size = f"{weights.stat().st_size / 1e6:.1f} MB" if weights.exists() else "–"
        arxiv = family.paper["arxiv"]
        rows.append(
            f"| `{entry.id}` | [{arxiv}](https://arxiv.org/abs/{arxiv}) | {entry.dataset} | {ours} | {reference} "
            f"| {size} | [card](cards/{entry.id}/README.md) |"
        )
    return "\n".join(rows)


def block(name: str) -> str:
    source = BLOCKS[name]
    if source is None:
        return table()
    path = REPO / source
    if not path.exists():
        return f"Not measured yet (`{source}` is produced by its script)."
    lines = path.read_text().strip().splitlines()
    if lines and lines[0].startswith("# "):  # the file's own title: the README has its heading
        lines = lines[1:]
    lines = ["##" + line if line.startswith("#") else line for line in lines]  # nest the file's sections
    return "\n".join(lines).strip()


def render(text: str) -> str:
    for name in BLOCKS:
        start, end = f"<!-- {name}:start", f"<!-- {name}:end -->"
        if start not in text:
            continue
        head, rest = text.split(start, 1)
        marker_line, _, tail = rest.partition("\n")
        _, _, after = tail.partition(end)
        text = f"{head}{start}{marker_line}\n{block(name)}\n{end}{after}"
    return text


def main() -> int:
    readme = REPO / "README.md"
    text = readme.read_text()
    new = render(text)
    if "--check" in sys.argv:
        if new != text:
            print("README.md generated blocks are out of date: run python scripts/readme_table.py")
            return 1
        return 0
    readme.write_text(new)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
