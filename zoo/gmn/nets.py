"""The input networks of the metanetwork task: small MNIST classifiers of several families, built from a JSON spec.

A spec is a dict of JSON-able values, ``{"family": ..., "width": ..., ...}``; ``build_net(spec)`` returns the
``nn.Module`` (every parameterised layer one that ``zoo.gmn.to_graph`` supports) and ``sample_spec(rng, family)``
draws one from the family's ranges. Inputs are MNIST images ``[B, 1, 28, 28]``; outputs 10 logits.

Families:

* ``cnn2d``: the image average-pooled to 14×14; 1–3 conv layers (3×3, stride 2 after the first), no / batch /
  group norm, then global average pooling and a linear head (gmn.md's "varying CNNs").
* ``cnn1d``: the image average-pooled to 14×14 and read as a 196-step sequence; 1–3 Conv1d layers (kernel 9,
  stride 2), optional batch norm, global average pooling, linear head.
* ``resnet``: 14×14 input, a conv stem and one or two residual blocks (identity or 1×1 projection shortcut),
  pooling, head.
* ``deepsets``: the image as the set of its 196 pixels of a 14×14 pooling, each pixel (value, row, column); one or
  two permutation-equivariant DeepSets layers, mean pooling, head.
* ``vit``: 7×7 patches (16 tokens) embedded by a strided conv, fixed sinusoidal positions, one or two pre-norm
  transformer blocks, mean over tokens, head.
"""

from __future__ import annotations

import math
import random

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["FAMILIES", "WIDTHS", "build_net", "sample_spec", "count_parameters"]

FAMILIES = ("cnn2d", "cnn1d", "resnet", "deepsets", "vit")
WIDTHS = (4, 6, 8, 12, 16)  # the OOD split trains on widths <= 8 and tests on 12 and 16
ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _norm2d(kind: str, width: int) -> list[nn.Module]:
    if kind == "bn":
        return [nn.BatchNorm2d(width)]
    if kind == "gn":
        return [nn.GroupNorm(2 if width % 2 == 0 else 1, width)]
    return []


class _Pool14(nn.Module):
    """[B, 1, 28, 28] → [B, 1, 14, 14] by 2×2 average pooling (no parameters)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(x, 2)


class _ToSequence(nn.Module):
    """[B, 1, 14, 14] → [B, 1, 196] (no parameters)."""

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(2)


class _ToPixelSet(nn.Module):
    """[B, 1, 14, 14] → a set of 196 pixels [B, 196, 3]: (value, row, column), coordinates in [0, 1]."""

    def forward(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        rows = torch.arange(h, device=x.device, dtype=x.dtype).div(h - 1).repeat_interleave(w)
        cols = torch.arange(w, device=x.device, dtype=x.dtype).div(w - 1).repeat(h)
        coords = torch.stack([rows, cols], -1).expand(b, h * w, 2)
        return torch.cat([x.flatten(1).unsqueeze(-1), coords], -1)


class _SetMean(nn.Module):
    """[B, S, d] → [B, d] (no parameters)."""

    def forward(self, x: Tensor) -> Tensor:
        return x.mean(1)


class _Tokens(nn.Module):
    """[B, d, 4, 4] patch embeddings → tokens [B, 16, d] plus fixed sinusoidal positions (a buffer, no parameters)."""

    def __init__(self, dim: int, tokens: int = 16) -> None:
        super().__init__()
        pos = torch.arange(tokens).float()[:, None]
        freq = torch.exp(-math.log(100.0) * torch.arange(0, dim, 2).float() / dim)
        pe = torch.zeros(tokens, dim)
        pe[:, 0::2] = torch.sin(pos * freq)
        pe[:, 1::2] = torch.cos(pos * freq[: dim // 2])
        self.register_buffer("pe", pe, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(2).transpose(1, 2) + self.pe


def build_net(spec: dict) -> nn.Module:
    """The network of ``spec`` (an ``nn.Sequential``), randomly initialised from ``torch``'s global generator."""
    from zoo.gmn import graph as G

    family, w = spec["family"], int(spec["width"])
    act = ACTIVATIONS[spec.get("act", "relu")]
    depth = int(spec.get("depth", 1))
    if family == "cnn2d":
        layers: list[nn.Module] = [_Pool14()]
        c_in = 1
        for i in range(depth):
            layers += [nn.Conv2d(c_in, w, 3, stride=1 if i == 0 else 2, padding=1), *_norm2d(spec["norm"], w), act()]
            c_in = w
        return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(w, 10))
    if family == "cnn1d":
        layers = [_Pool14(), _ToSequence()]
        c_in = 1
        for _ in range(depth):
            layers += [nn.Conv1d(c_in, w, 9, stride=2, padding=4)]
            layers += [nn.BatchNorm1d(w)] if spec["norm"] == "bn" else []
            layers += [act()]
            c_in = w
        return nn.Sequential(*layers, nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(w, 10))
    if family == "resnet":
        blocks = [_Pool14(), nn.Conv2d(1, w, 3, padding=1), nn.BatchNorm2d(w), act()]
        c_in = w
        for i in range(depth):
            c_out = w * (2 if i == 1 else 1)
            blocks.append(G.ResidualBlock(c_in, c_out, stride=1 if i == 0 else 2, activation=spec.get("act", "relu")))
            c_in = c_out
        return nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, 10))
    if family == "deepsets":
        layers = [_Pool14(), _ToPixelSet()]
        d_in = 3
        for _ in range(depth):
            layers += [G.DeepSetsLayer(d_in, w), act()]
            d_in = w
        return nn.Sequential(*layers, _SetMean(), nn.Linear(w, 10))
    if family == "vit":
        dim = 2 * w  # two heads of width w
        layers = [nn.Conv2d(1, dim, 7, stride=7), _Tokens(dim)]
        for _ in range(depth):
            layers.append(G.TransformerBlock(dim, heads=2, hidden=2 * dim, activation=spec.get("act", "gelu")))
        return nn.Sequential(*layers, nn.LayerNorm(dim), _SetMean(), nn.Linear(dim, 10))
    raise ValueError(f"expected family in {FAMILIES}, got {family!r}")


def sample_spec(rng: random.Random, family: str) -> dict:
    """One architecture and training budget of ``family``, drawn with ``rng``.

    The training hyperparameters follow the random recipe used for metanetwork zoos (lr, weight decay, label
    smoothing, budget all log-/uniformly random), so that test accuracies spread from chance to well trained.
    """
    if family not in FAMILIES:
        raise ValueError(f"expected family in {FAMILIES}, got {family!r}")
    spec = {
        "family": family,
        "width": rng.choice(WIDTHS),
        "depth": rng.choice((1, 2, 3) if family in ("cnn2d", "cnn1d") else (1, 2)),
        "act": rng.choice(("relu", "gelu", "tanh")),
        "norm": rng.choice(("none", "bn", "gn")) if family == "cnn2d" else rng.choice(("none", "bn")),
        "lr": round(10 ** rng.uniform(-3.3, -1.5), 6),
        "weight_decay": round(10 ** -rng.uniform(1, 5), 8),
        "label_smoothing": round(rng.uniform(0, 0.2), 4),
        "steps": rng.randint(20, 500),
        "batch_size": 128,
    }
    return spec
