"""Regenerate the model table of README.md from the registry and the measured results.

python scripts/readme_table.py          # rewrite README.md in place
python scripts/readme_table.py --check  # exit 1 if README.md is out of date
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
START, END = "<!-- model-table:start", "<!-- model-table:end -->"


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
            ours = f"{entry.metric} {100 * value:.1f}%" if value is not None else ours
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


def main() -> int:
    readme = REPO / "README.md"
    text = readme.read_text()
    head, rest = text.split(START, 1)
    marker_line, _, tail = rest.partition("\n")
    _, _, after = tail.partition(END)
    new = f"{head}{START}{marker_line}\n{table()}\n{END}{after}"
    if "--check" in sys.argv:
        if new != text:
            print("README.md model table is out of date: run python scripts/readme_table.py")
            return 1
        return 0
    readme.write_text(new)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
