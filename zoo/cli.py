"""The ``zoo`` command.

* ``zoo fit|validate|test|predict --config recipes/<family>/<recipe>.yaml [--model.init_from ID] [...]``:
  LightningCLI, so every Trainer flag works (``--trainer.strategy ddp --trainer.devices 2`` included).
* ``zoo predict --model ID --text "..."`` (text classifiers) or ``--history 1,2,3`` (recommenders).
* ``zoo list [PATTERN]``: registered checkpoints with data, metric and size.
* ``zoo eval ID [--json]``: evaluate a pretrained checkpoint on its test data; with ``--json`` the last line
  printed is one JSON object of metrics (for a pattern such as ``'conn-*'``, one object keyed by id).
* ``zoo card ID``: regenerate ``cards/ID/README.md`` from the registry and the measured results.
* ``zoo push ID REPO``: upload a checkpoint to the Hugging Face Hub.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

__all__ = ["main", "evaluate", "write_card"]

LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")


def _lightning_cli(args: list[str]) -> None:
    import lightning as L
    from lightning.pytorch.cli import LightningCLI

    from zoo.hub import ZooModule

    try:
        LightningCLI(
            ZooModule,
            L.LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            args=args,
            save_config_kwargs={"overwrite": True},
            parser_kwargs={"prog": "zoo"},
        )
    finally:
        # Tear the DDP process group down before the interpreter exits: left to the atexit order, gloo's
        # worker threads can be destroyed while joinable and abort the process after a finished fit.
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


def evaluate(name: str, quiet: bool = False) -> dict:
    """Test a pretrained checkpoint (id, directory or Hub repo) on the test data of its registry entry.

    Returns:
        ``{"model": id, "dataset": ..., <metric>: value, ..., "seconds": wall time}``.
    """
    import lightning as L

    from zoo import from_pretrained, registry

    start = time.perf_counter()
    module = from_pretrained(name)
    if module.model_id is None:
        raise ValueError(f"{name} names no registered model id in its config.json, so its test data is unknown")
    entry = registry.get_entry(module.model_id)
    datamodule = registry.import_object(registry.get_family(entry.family).datamodule)(**entry.data)
    trainer = L.Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=not quiet,
        enable_model_summary=False,
    )
    (metrics,) = trainer.test(module, datamodule=datamodule, verbose=not quiet)
    out = {"model": entry.id, "dataset": entry.dataset}
    out |= {k.removeprefix("test/"): round(float(v), 6) for k, v in metrics.items()}
    out["seconds"] = round(time.perf_counter() - start, 1)
    return out


def render_card(model_id: str):
    """The model card of ``model_id`` (a ``huggingface_hub.ModelCard``) from the registry metadata and the measured
    results, as ``write_card`` saves it."""
    from zoo import registry
    from zoo.hub import build_card

    entry = registry.get_entry(model_id)
    family = registry.get_family(entry.family)
    card_fn = entry.card or family.card
    results, sections = registry.import_object(card_fn)(entry) if card_fn else ([], {})
    return build_card(entry.id, results=results, sections=sections)


def write_card(model_id: str) -> Path:
    """Regenerate ``cards/<id>/README.md`` from the registry metadata and the measured results."""
    from zoo import registry
    from zoo.hub import CARD, cards_dir

    path = cards_dir() / registry.get_entry(model_id).id / CARD
    path.parent.mkdir(parents=True, exist_ok=True)
    render_card(model_id).save(path)
    return path


def _list(pattern: str) -> None:
    from zoo import registry
    from zoo.hub import WEIGHTS, cards_dir

    rows = [("id", "data", "metric", "size")]
    for e in registry.list_entries(pattern):
        f = cards_dir() / e.id / WEIGHTS
        size = f"{f.stat().st_size / 1e6:.1f} MB" if f.exists() else "-"
        rows.append((e.id, e.dataset, e.metric, size))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


def _predict_with(model_id: str, method: str, refusal: str, inputs, **kwargs) -> tuple[int, object]:
    """``(0, module.<method>(inputs(), **kwargs))`` for the checkpoint ``model_id``; on bad input or a checkpoint
    without ``method``, print a one-line error and return ``(2, None)``. ``inputs`` runs before the (slow) load."""
    from zoo import from_pretrained

    try:
        data = inputs()
        module = from_pretrained(model_id)
        if not hasattr(module, method):
            raise ValueError(f"{model_id} ({module.family}) {refusal}; use `zoo predict --config`")
        return 0, getattr(module, method)(data, **kwargs)
    except (KeyError, ValueError, FileNotFoundError, OSError) as e:
        print(f"zoo predict: error: {e.args[0] if e.args else e}", file=sys.stderr)
        return 2, None


def _predict_text(argv: list[str]) -> int:
    """``zoo predict --model ID --text "..." [--text ...] [--json]``: classify raw text with a checkpoint whose
    module has ``predict_text`` (text families such as textssl)."""
    parser = argparse.ArgumentParser(prog="zoo predict", description="Classify raw text with a pretrained checkpoint.")
    parser.add_argument("--model", required=True, help="registered id, local directory or Hub repo id")
    parser.add_argument("--text", action="append", required=True, help="a document (repeat for a batch)")
    parser.add_argument("--json", action="store_true", help="print one JSON list of predictions")
    args = parser.parse_args(argv)
    rc, preds = _predict_with(args.model, "predict_text", "does not classify raw text", lambda: args.text)
    if rc:
        return rc
    if args.json:
        print(json.dumps(preds))
    else:
        for text, pred in zip(args.text, preds):
            top = ", ".join(f"{k} {v:.3f}" for k, v in sorted(pred["probabilities"].items(), key=lambda kv: -kv[1])[:3])
            print(f"{pred['label']}\t({top})\t{text[:60]}")
    return 0


def _predict_history(argv: list[str]) -> int:
    """``zoo predict --model ID --history 1,2,3 [--history ...] [--k 10] [--json]``: recommend the next items after
    histories of MovieLens movie ids with a checkpoint whose module has ``recommend`` (litellm4rec)."""
    parser = argparse.ArgumentParser(prog="zoo predict", description="Recommend items with a pretrained checkpoint.")
    parser.add_argument("--model", required=True, help="registered id, local directory or Hub repo id")
    parser.add_argument("--history", action="append", required=True,
                        help="comma-separated item ids, oldest first (repeat for a batch)")  # fmt: skip
    parser.add_argument("--k", type=int, default=10, help="number of recommendations")
    parser.add_argument("--include-seen", action="store_true", help="allow items of the history")
    parser.add_argument("--json", action="store_true", help="print one JSON list of recommendation lists")
    args = parser.parse_args(argv)

    def histories() -> list[list[int]]:
        out = []
        for h in args.history:
            try:
                out.append([int(x) for x in h.split(",") if x.strip()])
            except ValueError:
                raise ValueError(f"expected --history as comma-separated integer ids (1,2,3), got {h!r}") from None
        return out

    rc, recs = _predict_with(args.model, "recommend", "is not a recommender", histories, k=args.k,
                             exclude_seen=not args.include_seen)  # fmt: skip
    if rc:
        return rc
    if args.json:
        print(json.dumps(recs))
    else:
        for h, rec in zip(args.history, recs):
            print(f"history {h}:")
            for rank, r in enumerate(rec, 1):
                print(f"  {rank:>3}. {r['movie_id']:>5}  {r['title']} ({r['year']})  score {r['score']:.3f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["predict"] and any(a == "--text" or a.startswith("--text=") for a in argv):
        return _predict_text(argv[1:])
    if argv[:1] == ["predict"] and any(a == "--history" or a.startswith("--history=") for a in argv):
        return _predict_history(argv[1:])
    if argv and argv[0] in LIGHTNING_COMMANDS:
        _lightning_cli(argv)
        return 0
    parser = argparse.ArgumentParser(prog="zoo", description="The zoo: pretrained research models.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in LIGHTNING_COMMANDS:
        sub.add_parser(name, help=f"LightningCLI {name} (see `zoo {name} --help`)", add_help=False)
    p = sub.add_parser("list", help="list registered checkpoints")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style pattern, e.g. 'conn-*'")
    p = sub.add_parser("eval", help="evaluate a pretrained checkpoint on its test data")
    p.add_argument("id", help="registered id (or a pattern such as 'conn-*'), local directory or Hub repo id")
    p.add_argument("--json", action="store_true", help="print one JSON object of metrics as the last line")
    p = sub.add_parser("card", help="regenerate a checkpoint's model card")
    p.add_argument("id")
    p = sub.add_parser("push", help="upload a checkpoint to the Hugging Face Hub")
    p.add_argument("id", help="registered id or local directory")
    p.add_argument("repo", help="Hub repository id, org/name")
    p.add_argument("--private", action="store_true")
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            _list(args.pattern)
        elif args.command == "eval":
            if any(c in args.id for c in "*?["):  # a pattern: evaluate every matching checkpoint
                from zoo import list_models

                ids = list_models(args.id)
                if not ids:
                    raise KeyError(f"no registered checkpoint matches {args.id!r}; see `zoo list`")
                from zoo.data import DataError

                metrics = {}
                for i in ids:
                    try:
                        metrics[i] = evaluate(i, quiet=True)
                    except DataError as e:  # data that a script generates (not shipped): say so and go on
                        print(f"zoo eval: skipped {i}: {e}", file=sys.stderr)
                        continue
                    if not args.json:
                        print("  ".join(f"{k}={v}" for k, v in metrics[i].items()))
            else:
                metrics = evaluate(args.id, quiet=args.json)
                if not args.json:
                    print("  ".join(f"{k}={v}" for k, v in metrics.items()))
            if args.json:
                print(json.dumps(metrics))
        elif args.command == "card":
            print(write_card(args.id))
        elif args.command == "push":
            from zoo import from_pretrained, push_to_hub

            target = from_pretrained(args.id) if Path(args.id).is_dir() else args.id
            print(push_to_hub(target, args.repo, private=args.private))
    except (KeyError, ValueError, FileNotFoundError) as e:
        print(f"zoo {args.command}: error: {e.args[0] if e.args else e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
