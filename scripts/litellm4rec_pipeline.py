"""Build and measure the litellm4rec family (Lite-LLM4Rec, arXiv 2402.09543) on MovieLens-1M.

Stages:

* ``ship --ids ID [ID ...]``: train each registered checkpoint from its recipe into ``cards/<id>`` (skipped when the
  weights exist), record its sha256 in the registry and the training time in ``results/litellm4rec/ship.json``, then
  ``zoo eval`` it into ``results/litellm4rec/<id>.json``.
* ``fit --recipe R --out DIR [--max-epochs E] [--max-minutes M]``: train a recipe that is not shipped (the generative
  baseline, the MiniLM variant) into ``DIR`` (a Hub-layout folder) and record its training time and epochs in
  ``DIR/train.json``.
* ``cards``: regenerate the cards of the shipped checkpoints.

The inference benchmark and the reproduction table are ``scripts/bench_litellm4rec.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import lightning as L

sys.path.insert(0, str(Path(__file__).resolve().parent))
REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "results" / "litellm4rec"
SHIPPED = ("litellm4rec-smollm2-ml1m", "litellm4rec-sasrec-ml1m")


class PrintProgress(L.Callback):
    """Print the batch count, loss and elapsed time every ``every`` training batches (logs that are not a terminal)."""

    def __init__(self, every: int = 20) -> None:
        self.every, self.t0 = every, time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx % self.every == 0:
            loss = float(outputs["loss"]) if isinstance(outputs, dict) else float(outputs)
            print(f"epoch {trainer.current_epoch} batch {batch_idx}/{trainer.num_training_batches} loss {loss:.4f} "
                  f"{time.perf_counter() - self.t0:.0f}s", flush=True)  # fmt: skip

    def on_validation_end(self, trainer, pl_module) -> None:
        print("validation", {k: round(float(v), 4) for k, v in trainer.callback_metrics.items()}, flush=True)


def fit(recipe: str, out: Path, max_epochs: int | None, max_minutes: float | None) -> dict:
    """Train ``recipe`` in this process, save the selected weights to ``out`` and return the run's record."""
    import yaml

    from zoo.registry import import_object
    from zoo.utils import machine

    cfg = yaml.safe_load((REPO / recipe).read_text())
    L.seed_everything(cfg.get("seed_everything", 0))
    trainer_args = dict(cfg["trainer"]) | {"enable_progress_bar": False}
    if max_epochs:
        trainer_args["max_epochs"] = max_epochs
    if max_minutes:
        trainer_args["max_time"] = {"minutes": max_minutes}
    module = import_object(cfg["model"]["class_path"].replace(".LiteLLM4RecModule", ":LiteLLM4RecModule"))(
        **cfg["model"]["init_args"]
    )
    dm = import_object("zoo.litellm4rec.data:SeqRecDataModule")(**cfg["data"]["init_args"])
    trainer = L.Trainer(**trainer_args, callbacks=[PrintProgress()])
    t = time.perf_counter()
    trainer.fit(module, datamodule=dm)
    seconds = time.perf_counter() - t
    out.mkdir(parents=True, exist_ok=True)
    module.save_pretrained(out)
    record = {
        "recipe": recipe,
        "seconds": round(seconds, 1),
        "epochs": trainer.current_epoch,
        "best_epoch": module.best_epoch,
        "best_val_recall@10": module.best_val,
        "trainable_parameters": sum(p.numel() for p in module.net.parameters() if p.requires_grad),
        "machine": machine(),
    }
    (out / "train.json").write_text(json.dumps(record, indent=1) + "\n")
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=["ship", "fit", "cards"])
    parser.add_argument("--ids", nargs="+", default=list(SHIPPED))
    parser.add_argument("--recipe")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--max-epochs", type=int)
    parser.add_argument("--max-minutes", type=float)
    args = parser.parse_args()
    if args.stage == "ship":
        from shipping import ship_and_eval

        ship_and_eval(args.ids, RESULTS)
    elif args.stage == "fit":
        print(fit(args.recipe, args.out, args.max_epochs, args.max_minutes))
    else:
        from zoo.cli import write_card

        for model_id in SHIPPED:
            print(write_card(model_id))


if __name__ == "__main__":
    main()
