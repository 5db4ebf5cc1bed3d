"""Small helpers shared by the scripts."""

from __future__ import annotations

import os
import platform
from pathlib import Path

__all__ = ["cpu_name", "machine", "set_dotted"]


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo, else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    """One line naming the machine a measurement ran on: CPU, cores, torch version, threads and GPU."""
    import torch

    gpu = f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return f"{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} thread(s){gpu}"


def set_dotted(config: dict, assignment: str) -> dict:
    """Set one value of a nested recipe dict in place from ``"a.b.c=value"`` (the value parsed as YAML, so ``0.0005``
    is a float and ``null`` is None) and return ``config``.

    Raises:
        ValueError: no ``=``, or a path through a key that is missing or not a mapping (the message names it).
    """
    import yaml

    path, sep, raw = assignment.partition("=")
    if not sep or not path:
        raise ValueError(f"expected KEY.PATH=VALUE (e.g. model.init_args.lr=0.0005), got {assignment!r}")
    *parents, leaf = path.split(".")
    node = config
    for i, key in enumerate(parents):
        if not isinstance(node.get(key), dict):
            raise ValueError(
                f"{assignment!r}: {'.'.join(parents[: i + 1])!r} is not a section of the recipe; sections there: "
                f"{sorted(k for k, v in node.items() if isinstance(v, dict))}"
            )
        node = node[key]
    node[leaf] = yaml.safe_load(raw)
    return config


def _progress_callback():
    import time

    import lightning as L

    class PrintProgress(L.Callback):
        """Print the epoch, batch, loss and elapsed time every ``every`` training batches, and the metrics after each
        validation, as plain flushed lines (for logs written to a file, where progress bars do not show).

        Usage: ``zoo fit --config R --trainer.callbacks+=zoo.utils.PrintProgress``.
        """

        def __init__(self, every: int = 20) -> None:
            self.every, self.t0 = every, time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            if batch_idx % self.every == 0:
                loss = outputs["loss"] if isinstance(outputs, dict) else outputs
                print(f"epoch {trainer.current_epoch} batch {batch_idx}/{trainer.num_training_batches} loss "
                      f"{float(loss):.4f} {time.perf_counter() - self.t0:.0f}s", flush=True)  # fmt: skip

        def on_validation_end(self, trainer, pl_module) -> None:
            metrics = {k: round(float(v), 4) for k, v in trainer.callback_metrics.items()}
            print(f"epoch {trainer.current_epoch} validation {metrics}", flush=True)

    return PrintProgress


def __getattr__(name: str):
    if name == "PrintProgress":  # built on first use: `import zoo` must not import Lightning
        return _progress_callback()
    raise AttributeError(f"module 'zoo.utils' has no attribute {name!r}")
