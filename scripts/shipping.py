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


def ship_and_eval(ids, results_dir: Path, *extra: str) -> None:
    """``fit_and_register`` every id (with ``extra`` `zoo fit` arguments; training time and machine into
    ``results_dir/ship.json`` for those trained now), then ``eval_to_json`` every id."""
    from zoo import registry
    from zoo.utils import machine

    ship_path = results_dir / "ship.json"
    ship = json.loads(ship_path.read_text()) if ship_path.exists() else {}
    for model_id in ids:
        seconds = fit_and_register(model_id, registry.get_entry(model_id).recipe, *extra)
        if seconds is not None:
            ship[model_id] = {"seconds": seconds, "machine": machine()}
            ship_path.parent.mkdir(parents=True, exist_ok=True)
            ship_path.write_text(json.dumps(ship, indent=1, sort_keys=True) + "\n")
    for model_id in ids:
        eval_to_json(model_id, results_dir)


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


def append_row(path: Path, row: dict) -> None:
    """Append ``row`` to ``{"rows": [...]}`` in the JSON file ``path`` under a file lock (parallel table runs)."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = json.loads(path.read_text()) if path.exists() else {"rows": []}
        data["rows"].append(row)
        path.write_text(json.dumps(data, indent=1) + "\n")


def fit_and_test(module, datamodule, trainer_args: dict, max_epochs: int | None = None) -> tuple[dict, dict]:
    """Fit, then test the selected weights, in this process (no progress bar).

    Returns:
        ``(test metrics, run)``, ``run`` = ``{"best_val", "best_epoch", "epochs", "seconds"}`` (``best_val`` and
        ``best_epoch`` from a ``zoo.methods.BestValidation`` module).
    """
    import lightning as L

    trainer_args = dict(trainer_args) | {"enable_progress_bar": False}
    if max_epochs:
        trainer_args["max_epochs"] = max_epochs
    trainer = L.Trainer(**trainer_args)
    t = time.perf_counter()
    trainer.fit(module, datamodule=datamodule)
    seconds = time.perf_counter() - t
    (metrics,) = trainer.test(module, datamodule=datamodule, verbose=False)
    best = getattr(module, "best_val", None)
    run = {
        "best_val": round(float(best), 6) if best is not None else None,
        "best_epoch": getattr(module, "best_epoch", None),
        "epochs": trainer.current_epoch,
        "seconds": round(seconds, 1),
    }
    return metrics, run
