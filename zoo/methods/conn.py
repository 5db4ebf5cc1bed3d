"""Training of the CONN perceptualized classifier (arXiv 2310.05212) as one LightningModule with two phases.

* ``phase="autoencoder"``: train the memorising AE; loss is the batch mean of the per-image Frobenius norm
  ``||x - D(E(x))||_F`` (not squared), as upstream.
* ``phase="classifier"``: freeze the AE and train the MLP on P(x), the perceived training images (computed
  once per image and cached); with ``perception="none"`` this is the raw-image baseline. The classifier is
  initialised from ``seed`` alone, so CONN and the baseline start from the same weights and, with the data
  module's seeded sampler, see the same batch order (the paper resets the seed before each model and loader).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics.classification import MulticlassAccuracy

from zoo.hub import ZooModule
from zoo.models.conn import ConnConfig, build_conn

__all__ = ["ConnModule"]

PHASES = ("autoencoder", "classifier")


def _reset(module: torch.nn.Module, seed: int) -> None:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for m in module.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()


class ConnModule(ZooModule):
    """LightningModule of the perceptualized classifier.

    Args:
        net: the architecture (``ConnConfig`` or its dict).
        phase: ``"autoencoder"`` or ``"classifier"``.
        lr: classifier Adam learning rate (paper 1e-3, betas (0.9, 0.999), eps 1e-8, no weight decay).
        weight_decay: classifier L2 (paper's PyTorch code: 0; its sklearn comment suggests alpha=1).
        ae_lr: AE Adam learning rate, decayed to 0 by a cosine over the run when ``ae_cosine``.
        ae_cosine: cosine-decay the AE learning rate over ``trainer.max_steps``.
        seed: seed of the classifier's initialisation.
        ae_seed: seed of the AE's initialisation (paper: 3).
        init_from: checkpoint (id, directory or Hub repo) whose weights initialise the network, e.g. a trained
            AE for the classifier phase, or a full model to fine-tune.
    """

    family = "conn"

    def __init__(
        self,
        net: ConnConfig | dict | None = None,
        phase: str = "classifier",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        ae_lr: float = 1e-3,
        ae_cosine: bool = True,
        seed: int = 0,
        ae_seed: int = 3,
        init_from: str | None = None,
    ) -> None:
        super().__init__()
        if phase not in PHASES:
            raise ValueError(f"expected phase in {PHASES}, got {phase!r}")
        self.net_config = net if isinstance(net, ConnConfig) else ConnConfig(**(net or {}))
        self.save_hyperparameters(ignore=["net"])
        self.hparams["net"] = self.net_config.to_dict()
        if phase == "autoencoder" and self.net_config.autoencoder == "none":
            raise ValueError("phase 'autoencoder' needs net.autoencoder 'mlp' or 'conv', got 'none'")
        self.phase = phase
        self.net = build_conn(self.net_config)
        self.labels = [str(d) for d in range(self.net_config.num_classes)]
        if self.net.autoencoder is not None:
            _reset(self.net.autoencoder, ae_seed)
        _reset(self.net.classifier, seed)
        if init_from:
            self.init_weights_from(init_from)
        if phase == "classifier" and self.net.autoencoder is not None:
            self.net.autoencoder.requires_grad_(False)
        self._cache: dict[str, dict[int, Tensor]] = {}
        n = self.net_config.num_classes
        self.val_acc = MulticlassAccuracy(n, average="micro")
        self.test_acc = MulticlassAccuracy(n, average="micro")

    def forward(self, x: Tensor) -> Tensor:
        """Class logits ``[B, classes]`` of images ``[B, 1, 28, 28]`` in [0, 1]."""
        return self.net(x)

    def perceive(self, x: Tensor, index: Tensor | None = None, key: str = "") -> Tensor:
        """P(x), cached per data-set index under ``key`` (P is deterministic per image, so caching is exact)."""
        if self.net.perception.mode == "none":
            return x
        if index is None:
            return self.net.perceive(x)
        cache = self._cache.setdefault(key, {})
        todo = [i for i, j in enumerate(index.tolist()) if j not in cache]
        if todo:
            out = self.net.perceive(x[todo])
            for i, row in zip(todo, out):
                cache[int(index[i])] = row
        return torch.stack([cache[int(j)] for j in index.tolist()])

    def _recon(self, x: Tensor) -> Tensor:
        return (self.net.autoencoder(x) - x).flatten(1).norm(dim=1).mean()

    def training_step(self, batch, batch_idx: int) -> Tensor:
        x, y, idx = batch
        if self.phase == "autoencoder":
            loss = self._recon(x)
            self.log("train/recon", loss, prog_bar=True)
            return loss
        logits = self.net.classifier(self.perceive(x, idx, "train"))
        loss = F.cross_entropy(logits, y)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        x, y, idx = batch
        if self.phase == "autoencoder":
            self.log("val/recon", self._recon(x), prog_bar=True)
            err = (self.net.autoencoder(x) - x).flatten(1).norm(dim=1).max()
            self.log("val/recon_max", err)
            return
        self.val_acc(self.net.classifier(self.perceive(x, idx, "train")), y)
        self.log("val/accuracy", self.val_acc, prog_bar=True)

    def test_step(self, batch, batch_idx: int) -> None:
        x, y, idx = batch
        self.test_acc(self.net.classifier(self.perceive(x, idx, "test")), y)
        self.log("test/accuracy", self.test_acc)

    def predict_step(self, batch, batch_idx: int) -> dict[str, Tensor]:
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        probs = self(x).softmax(-1)
        return {"label": probs.argmax(-1), "probs": probs}

    def configure_optimizers(self):
        if self.phase == "classifier":
            return torch.optim.Adam(
                self.net.classifier.parameters(), lr=self.hparams.lr, betas=(0.9, 0.999), eps=1e-8,
                weight_decay=self.hparams.weight_decay,
            )
        opt = torch.optim.Adam(self.net.autoencoder.parameters(), lr=self.hparams.ae_lr)
        if not self.hparams.ae_cosine:
            return opt
        total = max(1, int(self.trainer.estimated_stepping_batches))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["zoo_phase"] = self.phase
