"""Build and measure the litellm4rec family (Lite-LLM4Rec, arXiv 2402.09543) on MovieLens-1M.

Stages:

* ``ship --ids ID [ID ...]``: train each registered checkpoint from its recipe into ``cards/<id>`` (skipped when the
  weights exist), record its sha256 in the registry and the training time in ``results/litellm4rec/ship.json``, then
  ``zoo eval`` it into ``results/litellm4rec/<id>.json``.
* ``fit --recipe R --out DIR [--max-epochs E] [--max-minutes M] [--set KEY=VALUE ...]``: train a recipe that is not
  shipped (the generative baseline, the MiniLM variant) or a variant of one (``--set model.init_args.lr=0.0005``)
  into ``DIR`` (a Hub-layout folder) and record its training time, epochs and overrides in ``DIR/train.json``.
* ``golden``: write ``tests/golden/<id>.json``: each shipped checkpoint's recommendations (MovieLens ids and scores
  only: no MovieLens text is committed) for fixed histories, which ``tests/test_litellm4rec_checkpoints.py`` checks.
* ``cards``: regenerate the cards of the shipped checkpoints.

The inference benchmark and the reproduction table are ``scripts/bench_litellm4rec.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "results" / "litellm4rec"
GOLDEN_HISTORIES = [[1, 2, 3], [260, 1196, 1210, 2571], [1721, 2028, 1704, 356, 527, 318, 593, 2858, 2762, 110]]
SHIPPED = ("litellm4rec-smollm2-ml1m", "litellm4rec-minilm-ml1m", "litellm4rec-sasrec-ml1m")


def fit(
    recipe: str,
    out: Path,
    max_epochs: int | None,
    max_minutes: float | None,
    resume: bool = False,
    overrides: list[str] | tuple[str, ...] = (),
) -> dict:
    """Train ``recipe`` (with ``overrides``, ``"a.b=value"`` each) in this process, save the selected weights to ``out``
    and return the run's record. With ``resume``, start from the weights already in ``out`` (a new optimizer) and add
    this run to its record."""
    import lightning as L
    import yaml

    from zoo.registry import import_object
    from zoo.utils import PrintProgress, machine, set_dotted

    cfg = yaml.safe_load((REPO / recipe).read_text())
    for assignment in overrides:
        set_dotted(cfg, assignment)
    L.seed_everything(cfg.get("seed_everything", 0))
    trainer_args = dict(cfg["trainer"]) | {"enable_progress_bar": False}
    if max_epochs:
        trainer_args["max_epochs"] = max_epochs
    if max_minutes:
        trainer_args["max_time"] = {"minutes": max_minutes}
    init_args = dict(cfg["model"]["init_args"]) | ({"init_from": str(out)} if resume else {})
    previous = json.loads((out / "train.json").read_text()) if resume else {}
    module = import_object(cfg["model"]["class_path"].replace(".LiteLLM4RecModule", ":LiteLLM4RecModule"))(**init_args)
    dm = import_object("zoo.litellm4rec.data:SeqRecDataModule")(**cfg["data"]["init_args"])
    trainer = L.Trainer(**trainer_args, callbacks=[PrintProgress()])
    t = time.perf_counter()
    trainer.fit(module, datamodule=dm)
    seconds = time.perf_counter() - t
    out.mkdir(parents=True, exist_ok=True)
    module.save_pretrained(out)
    record = {
        "recipe": recipe,
        "overrides": list(overrides),
        "seconds": round(seconds + previous.get("seconds", 0), 1),
        "epochs": trainer.current_epoch + previous.get("epochs", 0),
        "runs": previous.get("runs", 1) + 1 if resume else 1,
        "best_epoch": module.best_epoch,
        "best_val_recall@10": module.best_val,
        "trainable_parameters": sum(p.numel() for p in module.net.parameters() if p.requires_grad),
        "machine": machine(),
    }
    (out / "train.json").write_text(json.dumps(record, indent=1) + "\n")
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=["ship", "fit", "golden", "cards"])
    parser.add_argument("--ids", nargs="+", default=list(SHIPPED))
    parser.add_argument("--recipe")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--max-epochs", type=int)
    parser.add_argument("--max-minutes", type=float)
    parser.add_argument("--resume", action="store_true", help="fit: continue from the weights in --out")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="fit: recipe overrides (YAML values)")
    args = parser.parse_args()
    if args.stage == "ship":
        from shipping import ship_and_eval

        ship_and_eval(args.ids, RESULTS, "--trainer.callbacks+=zoo.utils.PrintProgress")
    elif args.stage == "fit":
        print(fit(args.recipe, args.out, args.max_epochs, args.max_minutes, args.resume, args.set))
    elif args.stage == "golden":
        import zoo

        for model_id in args.ids:
            recs = zoo.from_pretrained(model_id).recommend(GOLDEN_HISTORIES, k=10)
            out = [[{"movie_id": r["movie_id"], "score": round(r["score"], 5)} for r in rec] for rec in recs]
            path = REPO / "tests" / "golden" / f"{model_id}.json"
            path.write_text(json.dumps({"histories": GOLDEN_HISTORIES, "recommendations": out}, indent=1) + "\n")
            print(path)
    else:
        from zoo.cli import write_card

        for model_id in SHIPPED:
            print(write_card(model_id))


if __name__ == "__main__":
    main()
