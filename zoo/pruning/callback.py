"""``TVWPruning``: gradual tile-vector-wise (or any other pattern's) pruning as a Lightning callback.

Drop it into any Trainer::

    trainer = L.Trainer(callbacks=[TVWPruning(pattern="tvw", sparsity=0.75, start=100, end=1000)])

or in a LightningCLI recipe (every argument is a primitive)::

    trainer:
      callbacks:
        - class_path: zoo.pruning.TVWPruning
          init_args: {pattern: tvw, sparsity: 0.75, schedule: cubic, start: 100, end: 1000, frequency: 100}

At each pruning event the masks are recomputed from scratch with global thresholds at the scheduled sparsity
(pruned weights score zero under both scores, so they stay pruned); between events the masks are re-applied after
every optimizer step and the gradients of pruned weights are zeroed before it. The masks and the schedule state live
in the callback's checkpoint state, so a resumed run continues with the same masks. At the end of fitting the
pruning is made permanent (weights zeroed, masks dropped; the layout is kept in ``callback.layout``).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import lightning as L
import torch
from torch import nn

from zoo.pruning import patterns as P

__all__ = ["TVWPruning", "sparsity_at"]


def sparsity_at(
    t: int, final: float, start: int, end: int, schedule: str = "cubic", ladder: list[float] | None = None
) -> float:
    """Scheduled sparsity at time ``t`` (step or epoch).

    ``cubic`` (Zhu & Gupta): s(t) = s_f·(1 − (1 − (t − start)/(end − start))³) between ``start`` and ``end``;
    ``ladder``: the listed sparsities at evenly spaced events from ``start`` to ``end`` (the SC'20 BERT script's
    25, 35, 50, … ladder), each held until the next; ``oneshot``: ``final`` from ``start`` on. 0 before ``start``.
    """
    if t < start:
        return 0.0
    if schedule == "oneshot" or end <= start:
        return final
    if schedule == "cubic":
        frac = min(1.0, (t - start) / (end - start))
        return final * (1 - (1 - frac) ** 3)
    if schedule == "ladder":
        steps = ladder or [final]
        if len(steps) == 1:
            return steps[0]
        i = min(len(steps) - 1, int((t - start) * (len(steps) - 1) / (end - start)))
        return steps[i]
    raise ValueError(f"expected schedule in ('cubic', 'ladder', 'oneshot'), got {schedule!r}")


class TVWPruning(L.Callback):
    """Gradual structured pruning of any LightningModule, masks kept through checkpoints.

    Args:
        pattern: ``ew | nm | bw | tw | tew | tvw`` (see ``zoo.pruning.patterns``).
        sparsity: final overall sparsity of the targeted weights (``nm``: 1 − n/m, implied when None).
        schedule: ``cubic``, ``ladder`` or ``oneshot``.
        ladder: the sparsities of a ``ladder`` schedule (default: just ``sparsity``).
        start, end: first and last pruning time, in ``unit``s.
        frequency: prune every this many ``unit``s between start and end (and once at ``end``).
        unit: ``step`` (optimizer steps) or ``epoch``.
        score: ``magnitude`` or ``taylor`` (Σ (∂L/∂W ⊙ W)², accumulated over the steps before each event).
        score_steps: with ``taylor``, how many steps before an event are accumulated (0: all since the last event).
        targets, ignore: regular expressions of layer names (default: every supported layer but the output head).
        filter_fn: ``filter_fn(module, name) -> bool`` instead of the regexes (Python use; not for recipes).
        tile, n, m, block, restore, col_share, min_density, score_norm: pattern arguments (``compute_masks``).
        permanent: make the pruning permanent when fitting ends.
        verbose: print the sparsity report at each event.
    """

    def __init__(
        self,
        pattern: str = "tvw",
        sparsity: float | None = 0.75,
        schedule: str = "cubic",
        ladder: list[float] | None = None,
        start: int = 0,
        end: int = 0,
        frequency: int = 1,
        unit: str = "step",
        score: str = "magnitude",
        score_steps: int = 0,
        targets: list[str] | None = None,
        ignore: list[str] | None = None,
        filter_fn: Callable[[nn.Module, str], bool] | None = None,
        tile: int = 128,
        n: int = 2,
        m: int = 4,
        block: int = 32,
        restore: float = 0.05,
        col_share: float = 0.5,
        min_density: float = 0.02,
        score_norm: str = "count",
        permanent: bool = True,
        verbose: bool = False,
    ) -> None:
        if pattern not in P.PATTERNS:
            raise ValueError(f"expected pattern in {P.PATTERNS}, got {pattern!r}")
        if pattern == "nm":
            sparsity = 1 - n / m if sparsity is None else sparsity
        if sparsity is None or not 0 <= sparsity < 1:
            raise ValueError(f"expected 0 <= sparsity < 1, got {sparsity}")
        if unit not in ("step", "epoch"):
            raise ValueError(f"expected unit 'step' or 'epoch', got {unit!r}")
        if score not in ("magnitude", "taylor"):
            raise ValueError(f"expected score 'magnitude' or 'taylor', got {score!r}")
        if frequency < 1 or end < start:
            raise ValueError(f"expected frequency >= 1 and end >= start, got frequency={frequency}, {start=}, {end=}")
        sparsity_at(start, sparsity, start, end, schedule, ladder)  # validates the schedule name
        for expr in (targets or []) + (ignore or []):
            re.compile(expr)
        self.pattern, self.sparsity, self.schedule, self.ladder = pattern, sparsity, schedule, ladder
        self.start, self.end, self.frequency, self.unit = start, end, frequency, unit
        self.score, self.score_steps = score, score_steps
        self.targets, self.ignore, self.filter_fn = targets, ignore, filter_fn
        self.kwargs = dict(
            tile=tile, n=n, m=m, block=block, restore=restore, col_share=col_share,
            min_density=min_density, score_norm=score_norm,
        )  # fmt: skip
        self.permanent, self.verbose = permanent, verbose
        self.current = 0.0  # sparsity of the masks now applied
        self.events: list[dict] = []  # (time, target, achieved) of every pruning event
        self.layout: dict[str, dict] = {}  # the permanent layout after fitting
        self._layers: dict[str, nn.Module] | None = None
        self._taylor: P.TaylorScore | None = None
        self._pending_masks: dict[str, torch.Tensor] | None = None

    # -- helpers ----------------------------------------------------------------------------------------------------
    def _targets(self, pl_module: nn.Module) -> dict[str, nn.Module]:
        if self._layers is None:
            self._layers = P.find_targets(pl_module, self.targets, self.ignore, self.filter_fn)
        return self._layers

    def _is_event(self, t: int) -> bool:
        if t < self.start or t > self.end:
            return False
        return (t - self.start) % self.frequency == 0 or t == self.end

    def _prune(self, trainer: L.Trainer, pl_module: L.LightningModule, t: int, log: bool = True) -> None:
        target = sparsity_at(t, self.sparsity, self.start, self.end, self.schedule, self.ladder)
        if self.pattern == "tvw":  # the 2:4 half applies from the first event; the TW part follows the schedule
            target = max(target, 1 - self.kwargs["n"] / self.kwargs["m"])
        if self.pattern == "nm":
            if self.events:  # N:M is fixed: one event
                return
            target = None
        elif target <= self.current + 1e-12 and self.events:
            return
        layers = self._targets(pl_module)
        if self.score == "taylor" and self._taylor is not None and self._taylor.sums:
            scores = self._taylor.scores()
            self._taylor.reset()
        else:
            scores = "magnitude"
        report = P.prune_(pl_module, self.pattern, target, score=scores, filter_fn=lambda _m, name: name in layers,
                          **self.kwargs)  # fmt: skip
        self.current = report.sparsity
        self.events.append({"t": t, "unit": self.unit, "target": target, "sparsity": round(report.sparsity, 6)})
        if log:
            pl_module.log(
                "pruning/sparsity", report.sparsity, on_step=self.unit == "step", on_epoch=self.unit == "epoch"
            )
        if self.verbose and trainer.is_global_zero:
            print(f"[TVWPruning] {self.unit} {t}: target {target}, achieved {report.sparsity:.4f}\n{report}")

    # -- Lightning hooks --------------------------------------------------------------------------------------------
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit" and self.score == "taylor":
            self._taylor = P.TaylorScore(self._targets(pl_module))

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._pending_masks is not None:  # resumed: re-attach the masks of the checkpoint
            self._restore(pl_module)
        elif self.start == 0 and not self.events:  # a schedule that starts at 0 prunes before the first step
            self._prune(trainer, pl_module, 0, log=False)

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if self._taylor is not None:
            t = trainer.global_step if self.unit == "step" else trainer.current_epoch
            nxt = self._next_event(t)
            if self.score_steps == 0 or (nxt is not None and self.unit == "step" and nxt - t <= self.score_steps):
                self._taylor.accumulate()
        P.mask_gradients(pl_module)

    def _next_event(self, t: int) -> int | None:
        for u in range(max(t, self.start), self.end + 1):
            if self._is_event(u):
                return u
        return None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        P.apply_masks(pl_module)
        if self.unit == "step" and self._is_event(trainer.global_step):
            self._prune(trainer, pl_module, trainer.global_step)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self.unit == "epoch" and self._is_event(trainer.current_epoch + 1):
            self._prune(trainer, pl_module, trainer.current_epoch + 1)

    def on_fit_end(self, trainer, pl_module) -> None:
        if self.permanent and P.pruned_layers(pl_module):
            self.layout = P.make_permanent(pl_module)
            pl_module.sparsity_record = self.layout  # read by zoo.hub.SavePretrained

    def state_dict(self) -> dict:
        return {"current": self.current, "events": self.events}

    def load_state_dict(self, state_dict: dict) -> None:
        self.current = state_dict["current"]
        self.events = state_dict["events"]

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        layers = P.pruned_layers(pl_module)
        checkpoint["tvw_pruning"] = {
            name: {
                "mask": m.tvw_mask.cpu(),
                "pattern": m.tvw_pattern,
                "layout": m.tvw_layout,
                "nm": list(m.tvw_nm),
            }
            for name, m in layers.items()
        }

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        self._pending_masks = checkpoint.get("tvw_pruning")
        if self._pending_masks is not None and pl_module is not None:
            self._restore(pl_module)

    def _restore(self, pl_module: nn.Module) -> None:
        modules = dict(pl_module.named_modules())
        missing = sorted(set(self._pending_masks) - set(modules))
        if missing:
            raise KeyError(f"the checkpoint has pruning masks for layers this model lacks: {missing}")
        for name, rec in self._pending_masks.items():
            mask = rec["mask"]
            module = modules[name]
            if tuple(mask.shape) != tuple(module.weight.shape):
                raise ValueError(
                    f"mask of {name} in the checkpoint has shape {tuple(mask.shape)}, the layer's weight "
                    f"{tuple(module.weight.shape)}"
                )
            nk = mask.t() if P._is_hf_conv1d(module) else mask.reshape(mask.shape[0], -1)
            P._attach(module, nk, rec["pattern"], rec["layout"], tuple(rec["nm"]))
        P.apply_masks(pl_module)
        self._pending_masks = None
