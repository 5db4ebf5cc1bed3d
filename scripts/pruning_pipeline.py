"""The pruned zoo checkpoint: fine-tune with TVWPruning, ship, evaluate, golden outputs, card.

    python scripts/pruning_pipeline.py ship    # zoo fit recipes/pruning/conn_tvw_rmnist10.yaml -> cards/<id>, eval
    python scripts/pruning_pipeline.py cards   # zoo card <id>

Requires ``ZOO_DATA``. The accuracy-vs-sparsity table is ``scripts/prune_accuracy.py``, the GEMM speed
``scripts/bench_tvw.py``, the ABFT detection rates ``scripts/abft_detection.py``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
SHIPPED = ("conn-stochastic-tvw75-rmnist10",)


def stage_ship(ids) -> None:
    from shipping import eval_to_json, fit_and_register

    from zoo import registry

    for model_id in ids:
        entry = registry.get_entry(model_id)
        fit_and_register(model_id, entry.recipe, "--trainer.default_root_dir", str(REPO / "runs" / "pruning"))
        eval_to_json(model_id, REPO / "results" / entry.family)
    subprocess.run([sys.executable, __file__, "golden", "--ids", *ids], check=True, cwd=REPO)


def stage_golden(ids) -> None:
    """Logits of each pruned checkpoint on 8 test images (the CONN golden format of tests/test_checkpoints.py)."""
    from safetensors.torch import save_file

    import zoo
    from zoo.data.rmnist import load_rmnist

    x, _ = load_rmnist(None)
    index = torch.arange(0, 1000, 125)
    for model_id in ids:
        with torch.no_grad():
            logits = zoo.from_pretrained(model_id)(x[index])
        path = REPO / "tests" / "golden" / f"{model_id}.safetensors"
        save_file({"index": index, "logits": logits.contiguous()}, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=["ship", "golden", "cards"])
    parser.add_argument("--ids", nargs="+", default=list(SHIPPED))
    args = parser.parse_args()
    if args.stage == "ship":
        stage_ship(args.ids)
    elif args.stage == "golden":
        stage_golden(args.ids)
    else:
        for model_id in args.ids:
            subprocess.run([sys.executable, "-m", "zoo.cli", "card", model_id], check=True, cwd=REPO)


if __name__ == "__main__":
    main()
