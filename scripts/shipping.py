"""Shared steps of the build scripts that ship checkpoints: train through `zoo fit` with `SavePretrained`, record the
weights' sha256 in the registry source, and evaluate the shipped checkpoint in a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def fit_and_register(model_id: str, recipe: str, *extra: str) -> float | None:
    """Train ``recipe`` into ``cards/<model_id>`` unless the weights are there; record their sha256. Returns the
    training seconds, or None when nothing was trained."""
    from zoo import registry
    from zoo.data import sha256_file
    from zoo.hub import cards_dir

    out = cards_dir() / model_id
    seconds = None
    if not (out / "model.safetensors").exists():
        cmd = [
            sys.executable, "-m", "zoo.cli", "fit", "--config", str(REPO / recipe), *extra,
            "--trainer.callbacks+=zoo.hub.SavePretrained", f"--trainer.callbacks.dirpath={out}",
            f"--trainer.callbacks.model_id={model_id}",
        ]  # fmt: skip
        print("$", " ".join(cmd), flush=True)
        t = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=REPO)
        seconds = round(time.perf_counter() - t, 1)
    registry.write_sha256(model_id, sha256_file(out / "model.safetensors"))
    return seconds


def eval_to_json(model_id: str, results_dir: Path) -> dict:
    """`zoo eval ID --json` in a fresh process (so the registry holds the new hash); writes ``<id>.json``."""
    proc = subprocess.run(
        [sys.executable, "-m", "zoo.cli", "eval", model_id, "--json"], capture_output=True, text=True, cwd=REPO
    )
    if proc.returncode:
        raise RuntimeError(f"zoo eval {model_id} failed:\n{proc.stderr[-3000:]}")
    metrics = json.loads(proc.stdout.strip().splitlines()[-1])
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / f"{model_id}.json").write_text(json.dumps(metrics, indent=1) + "\n")
    print(model_id, metrics, flush=True)
    return metrics
