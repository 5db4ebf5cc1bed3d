"""One LightningModule per family, plus what their cards share."""

from __future__ import annotations

import copy
import math


class BestValidation:
    """Mixin of a ``ZooModule``: keep ``self.net``'s weights of the best validation epoch and restore them when
    training ends (before callbacks such as ``SavePretrained`` run at fit end), so that ``trainer.test`` after
    ``trainer.fit`` evaluates the selected weights. ``best_val`` and ``best_epoch`` record the choice.

    Call ``consider_best(value)`` from ``on_validation_epoch_end`` (higher is better; NaN never wins). With
    ``later_ties_win`` an equal value replaces the kept one (the ``>=`` of some official codes).
    """

    later_ties_win: bool = False
    _best: tuple | None = None
    best_val: float | None = None
    best_epoch: int | None = None

    def consider_best(self, value: float) -> None:
        if self.trainer.sanity_checking or self.trainer.state.fn != "fit":
            return
        value = -math.inf if math.isnan(value) else value
        best = self._best
        if best is None or value > best[0] or (self.later_ties_win and value == best[0]):
            self._best = (value, self.current_epoch, copy.deepcopy(self.net.state_dict()))

    def on_fit_start(self) -> None:
        self._best = None

    def on_train_end(self) -> None:
        if self._best is not None:
            self.best_val, self.best_epoch = self._best[0], self._best[1]
            self.net.load_state_dict(self._best[2])


def mean_std(groups: dict) -> dict:
    """``key -> (mean, std, n)`` of each list of values (std 0 for a single value), for reproduction tables."""
    import torch

    out = {}
    for key, values in groups.items():
        t = torch.tensor(values, dtype=torch.float64)
        out[key] = (float(t.mean()), float(t.std()) if len(values) > 1 else 0.0, len(values))
    return out


def recipe_config(entry) -> dict:
    """The parsed YAML recipe of a registry entry (``entry.recipe``, relative to the repository root)."""
    from pathlib import Path

    import yaml

    return yaml.safe_load((Path(__file__).resolve().parents[2] / entry.recipe).read_text())


def reproduce(entry, results_dir, setup: str = "") -> str:
    """A card's reproduce block: ``setup`` lines, ``zoo fit`` of the entry's recipe into ``cards/<id>`` and
    ``zoo eval``, followed by the training time recorded in ``results_dir/ship.json`` (when there is one)."""
    import json
    from pathlib import Path

    ship_path = Path(results_dir) / "ship.json"
    ship = json.loads(ship_path.read_text()).get(entry.id, {}) if ship_path.exists() else {}
    block = (
        "```bash\n" + setup + f"zoo fit --config {entry.recipe} \\\n"
        f"  --trainer.callbacks+=zoo.hub.SavePretrained --trainer.callbacks.dirpath=cards/{entry.id} "
        f"--trainer.callbacks.model_id={entry.id}\n"
        f"zoo eval {entry.id} --json\n"
        "```"
    )
    if ship:
        block += f"\n\nTraining took {ship['seconds']:.0f} s on {ship.get('machine', 'this machine')}."
    return block
