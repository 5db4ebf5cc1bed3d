"""Perceptualized classifier of CONN, "Semiotics Networks Representing Perceptual Inference".

Paper: David Kupeev, Eyal Nitzany, arXiv:2310.05212 (v5; v1/v2 titled "Interpretable Semiotics Networks
Representing Awareness"). Upstream code: https://github.com/kupeev/kupeev-conscious-neural-networks-practical
(code MIT, trained models CC BY-NC 4.0). This file is an independent implementation, MIT licensed.

An autoencoder (AE) trained to memorise a small training set turns its training images into attracting fixed
points. "Observed" is the encoding z = E(x), "seen" the decoding D(z); the perceptual layer P iterates
observed -> seen from the input, either plainly (vanilla) or on K randomly augmented copies with a decaying
augmentation strength (stochastic), and the classifier C is the baseline MLP trained on P(training set):
f(x) = C(P(x)).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "ConnConfig",
    "Cosid",
    "ConvAutoencoder",
    "MLPAutoencoder",
    "MLPClassifier",
    "PerceptualLayer",
    "PerceptualizedClassifier",
    "augment",
    "sample_augmentation",
    "alpha_schedule",
    "build_conn",
]

AUTOENCODERS = ("mlp", "conv", "none")
PERCEPTIONS = ("stochastic", "vanilla", "none")


@dataclass
class ConnConfig:
    """Architecture of a perceptualized classifier; every value is JSON-able.

    The defaults are the paper's (conv AE of width 256, 500 copies, 30 steps); the shipped checkpoints use the
    scaled values of their recipes.

    Args:
        autoencoder: ``"conv"`` (the paper's ``fconv=1`` AE), ``"mlp"`` (its ``fconv=0`` option) or ``"none"``.
        ae_channels: channels of every conv layer of the conv AE (paper: 256).
        ae_widths: hidden widths of the MLP encoder, the last one is the latent size; the decoder mirrors them.
        perception: ``"stochastic"``, ``"vanilla"`` or ``"none"`` (the raw-image baseline).
        copies: K, augmented copies per image in the stochastic layer (paper: 500).
        steps: T, observed -> seen iterations (paper: 30).
        alpha0: augmentation strength of the first step (paper: 1).
        beta: strength decay, alpha_t = alpha0 * beta ** -t (paper: 2.6).
        seed: base seed of the stochastic layer's random augmentations.
        classifier_widths: hidden widths of the classifier MLP (paper: 500, 100).
        num_classes: number of output classes.
        image_size: side of the square grey-scale input images.
    """

    autoencoder: str = "conv"
    ae_channels: int = 256
    ae_widths: list[int] = field(default_factory=lambda: [1024, 512, 256])
    perception: str = "stochastic"
    copies: int = 500
    steps: int = 30
    alpha0: float = 1.0
    beta: float = 2.6
    seed: int = 0
    classifier_widths: list[int] = field(default_factory=lambda: [500, 100])
    num_classes: int = 10
    image_size: int = 28

    def __post_init__(self) -> None:
        if self.autoencoder not in AUTOENCODERS:
            raise ValueError(f"expected autoencoder in {AUTOENCODERS}, got {self.autoencoder!r}")
        if self.perception not in PERCEPTIONS:
            raise ValueError(f"expected perception in {PERCEPTIONS}, got {self.perception!r}")
        if self.perception != "none" and self.autoencoder == "none":
            raise ValueError(f"perception {self.perception!r} needs an autoencoder; set autoencoder to 'mlp' or 'conv'")
        if self.copies < 1 or self.steps < 0:
            raise ValueError(f"expected copies >= 1 and steps >= 0, got copies={self.copies}, steps={self.steps}")
        if self.autoencoder == "conv" and self.image_size != 28:
            raise ValueError(f"the conv autoencoder is defined for 28x28 images, got image_size={self.image_size}")
        self.ae_widths = [int(w) for w in self.ae_widths]
        self.classifier_widths = [int(w) for w in self.classifier_widths]

    def to_dict(self) -> dict:
        return asdict(self)


class Cosid(nn.Module):
    r"""The paper's activation :math:`\mathrm{cosid}(x) = \cos(x) - x`, a strictly decreasing bijection of R."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.cos(x) - x


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1), Cosid())


class ConvAutoencoder(nn.Module):
    """The paper's conv AE: 5 stride-2 convs down to a ``channels x 1 x 1`` latent, then upconvs back.

    Decoder: upconv1, then four times (nearest x2, upconv), nearest resize to 28x28, two more convs and a
    ``channels -> 1`` output conv; every conv is 3x3 followed by cosid. Input and output ``[B, 1, 28, 28]``.
    """

    def __init__(self, channels: int = 256) -> None:
        super().__init__()
        c = channels
        self.encoder = nn.Sequential(_conv(1, c, 2), *[_conv(c, c, 2) for _ in range(4)])  # 28->14->7->4->2->1
        self.up = nn.ModuleList([_conv(c, c) for _ in range(5)])
        self.refine = nn.Sequential(_conv(c, c), _conv(c, c), _conv(c, 1))

    def encode(self, x: Tensor) -> Tensor:
        return self.encoder(x)

    def decode(self, z: Tensor) -> Tensor:
        h = self.up[0](z)
        for layer in self.up[1:]:
            h = layer(F.interpolate(h, scale_factor=2.0, mode="nearest"))  # 1->2->4->8->16
        h = F.interpolate(h, size=(28, 28), mode="nearest")
        return self.refine(h)

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))


class MLPAutoencoder(nn.Module):
    """MLP AE (the paper's ``fconv=0`` option, scaled): ``d -> widths... -> latent -> ...widths -> d`` with cosid
    after every layer, the output layer included. Input and output ``[B, 1, H, W]``."""

    def __init__(self, widths: list[int], image_size: int = 28) -> None:
        super().__init__()
        d = image_size * image_size
        dims = [d, *widths]
        self.image_size = image_size
        self.encoder = nn.Sequential(*[m for a, b in zip(dims, dims[1:]) for m in (nn.Linear(a, b), Cosid())])
        back = dims[::-1]
        self.decoder = nn.Sequential(*[m for a, b in zip(back, back[1:]) for m in (nn.Linear(a, b), Cosid())])

    def encode(self, x: Tensor) -> Tensor:
        return self.encoder(x.flatten(1))

    def decode(self, z: Tensor) -> Tensor:
        return self.decoder(z).view(-1, 1, self.image_size, self.image_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))


class MLPClassifier(nn.Module):
    """The paper's classifier (``aside2.py``): flattened image -> 500 -> 100 -> classes, ReLU."""

    def __init__(self, in_features: int = 784, widths: list[int] = (500, 100), num_classes: int = 10) -> None:
        super().__init__()
        dims = [in_features, *widths]
        layers = [m for a, b in zip(dims, dims[1:]) for m in (nn.Linear(a, b), nn.ReLU())]
        self.net = nn.Sequential(*layers, nn.Linear(dims[-1], num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.flatten(1))


def alpha_schedule(steps: int, alpha0: float = 1.0, beta: float = 2.6) -> list[float]:
    """Augmentation strength per step, alpha_t = alpha0 * beta ** -t for t = 0..steps-1."""
    return [alpha0 * beta ** (-t) for t in range(steps)]


def sample_augmentation(n: int, alpha: float, generator: torch.Generator, size: int = 28) -> dict[str, Tensor]:
    """Draw the random parameters of ``augment`` for ``n`` images, all from ``generator``.

    The ranges are the upstream imgaug pipeline's (``get_aug``), every one scaled by ``alpha``; intensities are
    in the [0, 1] units of the images (so the noise sigma of at most 0.05 is 5% of the value range).
    """

    def u(lo: float, hi: float, *shape: int) -> Tensor:
        return lo + (hi - lo) * torch.rand(n, *shape, generator=generator)

    a = alpha
    return {
        "crop": u(0.0, 0.04 * a, 4),  # fraction cut from top, right, bottom, left
        "blur": u(0.0, 0.6 * a) * (torch.rand(n, generator=generator) < 0.5),  # sigma, applied half of the time
        "contrast": u(1 - 0.25 * a, 1 + 0.5 * a),
        "noise_sigma": u(0.0, 0.05 * a),
        "noise": torch.randn(n, 1, size, size, generator=generator),
        "multiply": u(1 - 0.2 * a, 1 + 0.2 * a),
        "scale": u(1 - 0.3 * a, 1 + 0.3 * a),
        "translate": u(-0.1 * a, 0.1 * a, 2),  # fraction of the image side, x and y
        "rotate": u(-10.0 * a, 10.0 * a),  # degrees
        "shear": u(-6.0 * a, 6.0 * a),  # degrees
    }


def _warp(x: Tensor, theta: Tensor) -> Tensor:
    # theta: [N, 2, 3] maps output to input coordinates in [-1, 1]
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _gaussian_blur(x: Tensor, sigma: Tensor) -> Tensor:
    # one separable 5-tap kernel per image; sigma = 0 gives the identity
    offsets = torch.arange(-2, 3, dtype=x.dtype, device=x.device)
    s = sigma.to(x).clamp_min(1e-6)[:, None]
    k = torch.exp(-0.5 * (offsets[None] / s) ** 2)
    k = k / k.sum(1, keepdim=True)  # [N, 5]
    n, c, h, w = x.shape
    y = x.reshape(1, n * c, h, w)
    y = F.conv2d(F.pad(y, (2, 2, 0, 0), mode="replicate"), k.repeat_interleave(c, 0)[:, None, None, :], groups=n * c)
    y = F.conv2d(F.pad(y, (0, 0, 2, 2), mode="replicate"), k.repeat_interleave(c, 0)[:, None, :, None], groups=n * c)
    return y.view(n, c, h, w)


def augment(x: Tensor, params: dict[str, Tensor]) -> Tensor:
    """Apply the paper's augmentation with given parameters (see ``sample_augmentation``).

    Order as upstream: crop (resized back to full size), Gaussian blur, linear contrast around 0.5, additive
    Gaussian noise, multiply, affine (scale, translate, rotate, shear about the centre); clipped to [0, 1].

    Args:
        x: images ``[N, 1, H, W]`` in [0, 1].
        params: tensors with leading dimension ``N`` on the CPU.

    Returns:
        Augmented images ``[N, 1, H, W]``.
    """
    p = {k: v.to(device=x.device, dtype=x.dtype) for k, v in params.items()}
    n = x.shape[0]
    top, right, bottom, left = p["crop"].unbind(1)
    theta = torch.zeros(n, 2, 3, dtype=x.dtype, device=x.device)
    theta[:, 0, 0] = 1 - left - right
    theta[:, 0, 2] = left - right
    theta[:, 1, 1] = 1 - top - bottom
    theta[:, 1, 2] = top - bottom
    x = _warp(x, theta)
    blur = p["blur"] > 0
    if blur.any():
        x = torch.where(blur[:, None, None, None], _gaussian_blur(x, p["blur"]), x)
    x = 0.5 + p["contrast"][:, None, None, None] * (x - 0.5)
    x = x + p["noise_sigma"][:, None, None, None] * p["noise"]
    x = x * p["multiply"][:, None, None, None]
    # forward map A = T R Sh S about the centre; grid_sample needs its inverse
    rot, shear = torch.deg2rad(p["rotate"]), torch.deg2rad(p["shear"])
    a = torch.zeros(n, 3, 3, dtype=x.dtype, device=x.device)
    a[:, 0, 0] = p["scale"] * torch.cos(rot)
    a[:, 0, 1] = p["scale"] * (-torch.sin(rot) + torch.cos(rot) * torch.tan(shear))
    a[:, 1, 0] = p["scale"] * torch.sin(rot)
    a[:, 1, 1] = p["scale"] * (torch.cos(rot) + torch.sin(rot) * torch.tan(shear))
    a[:, :2, 2] = 2 * p["translate"]
    a[:, 2, 2] = 1
    x = _warp(x, torch.linalg.inv(a)[:, :2])
    return x.clamp(0.0, 1.0)


def content_seeds(x: Tensor, seed: int) -> list[int]:
    """One seed per image from its 8-bit content, so P(x) does not depend on the batch it came in."""
    q = (x.detach().flatten(1).float().cpu() * 255).round().long()
    w = torch.arange(1, q.shape[1] + 1, dtype=torch.long) * 2654435761 % 1000003
    h = (q * w).sum(1) % 2147483647
    return [int(seed) * 2147483647 + int(v) for v in h]


class PerceptualLayer(nn.Module):
    """The perceptual layer P: iterated observed -> seen, x <- D(E(x)).

    * ``vanilla``: ``steps`` iterations of x <- D(E(x)).
    * ``stochastic``: K copies of each image; for t = 0..T-1, every copy independently becomes
      D(E(aug_{alpha_t}(copy))) with alpha_t = alpha0 * beta ** -t; the output is the pixel-wise mean of the
      copies. Random parameters come from one generator per image, seeded from ``seed`` and the image content,
      so the output is deterministic and independent of batching.
    * ``none``: identity (the baseline).

    The AE is passed to ``forward`` (it belongs to the enclosing model, not to this layer).

    Args:
        mode: ``"stochastic"``, ``"vanilla"`` or ``"none"``.
        copies: K.
        steps: T.
        alpha0: first-step strength.
        beta: strength decay.
        seed: base seed.
        chunk: images processed together (bounds memory at ``chunk * copies`` images).
    """

    def __init__(
        self,
        mode: str = "stochastic",
        copies: int = 500,
        steps: int = 30,
        alpha0: float = 1.0,
        beta: float = 2.6,
        seed: int = 0,
        chunk: int = 16,
    ) -> None:
        super().__init__()
        if mode not in PERCEPTIONS:
            raise ValueError(f"expected mode in {PERCEPTIONS}, got {mode!r}")
        self.mode, self.copies, self.steps = mode, copies, steps
        self.alpha0, self.beta, self.seed, self.chunk = alpha0, beta, seed, chunk

    @torch.no_grad()
    def forward(self, x: Tensor, autoencoder: nn.Module | None) -> Tensor:
        """Perceive ``x`` of shape ``[B, 1, H, W]`` through ``autoencoder``; returns images of the same shape."""
        if self.mode == "none" or self.steps == 0:
            return x
        if self.mode == "vanilla":
            for _ in range(self.steps):
                x = autoencoder(x)
            return x
        return torch.cat([self._stochastic(c, autoencoder) for c in x.split(self.chunk)])

    def _stochastic(self, x: Tensor, autoencoder: nn.Module) -> Tensor:
        b, k = x.shape[0], self.copies
        gens = [torch.Generator().manual_seed(s) for s in content_seeds(x, self.seed)]
        xs = x.repeat_interleave(k, 0)  # [B*K, 1, H, W], copies of image i at rows i*K..(i+1)*K-1
        for alpha in alpha_schedule(self.steps, self.alpha0, self.beta):
            if alpha == 0:  # strength 0 is the identity augmentation: skip it (exactly a vanilla step)
                xs = autoencoder(xs)
                continue
            draws = [sample_augmentation(k, alpha, g, x.shape[-1]) for g in gens]
            params = {name: torch.cat([d[name] for d in draws]) for name in draws[0]}
            xs = autoencoder(augment(xs, params))
        return xs.view(b, k, *x.shape[1:]).mean(1)


class PerceptualizedClassifier(nn.Module):
    """f(x) = C(P(x)): the perceptual layer followed by the MLP classifier.

    Args:
        config: the architecture.
    """

    def __init__(self, config: ConnConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        if c.autoencoder == "conv":
            self.autoencoder = ConvAutoencoder(c.ae_channels)
        elif c.autoencoder == "mlp":
            self.autoencoder = MLPAutoencoder(c.ae_widths, c.image_size)
        else:
            self.autoencoder = None
        self.classifier = MLPClassifier(c.image_size**2, c.classifier_widths, c.num_classes)
        self.perception = PerceptualLayer(c.perception, c.copies, c.steps, c.alpha0, c.beta, c.seed)

    def perceive(self, x: Tensor) -> Tensor:
        """P(x), ``[B, 1, H, W]`` -> ``[B, 1, H, W]``."""
        return self.perception(x, self.autoencoder)

    def forward(self, x: Tensor) -> Tensor:
        """Class logits ``[B, num_classes]`` for images ``[B, 1, H, W]`` in [0, 1]."""
        return self.classifier(self.perceive(x))


def build_conn(config: ConnConfig | dict) -> PerceptualizedClassifier:
    """Build the plain ``nn.Module`` from a config (a ``ConnConfig`` or its dict)."""
    if isinstance(config, dict):
        config = ConnConfig(**config)
    return PerceptualizedClassifier(config)


def conv_ae_macs(channels: int = 256) -> int:
    """Multiply-accumulates of one conv-AE forward pass (the paper's width gives about 1.15 G)."""
    c, k = channels, 9
    enc = 14 * 14 * c * k + sum(s * s * c * c * k for s in (7, 4, 2, 1))
    dec = sum(s * s * c * c * k for s in (1, 2, 4, 8, 16)) + 2 * 28 * 28 * c * c * k + 28 * 28 * c * k
    return enc + dec


# -- registry ---------------------------------------------------------------------------------------------------------
from zoo.registry import Family, register_family, register_model  # noqa: E402

register_family(
    Family(
        name="conn",
        module="zoo.methods.conn:ConnModule",
        datamodule="zoo.data.rmnist:RMNISTDataModule",
        paper={
            "title": "Semiotics Networks Representing Perceptual Inference",
            "arxiv": "2310.05212",
            "authors": ["David Kupeev", "Eyal Nitzany"],
            "year": 2023,
        },
        license="mit",
        upstream="https://github.com/kupeev/kupeev-conscious-neural-networks-practical",
        citation="""@article{kupeev2023semiotics,
  title   = {Semiotics Networks Representing Perceptual Inference},
  author  = {Kupeev, David and Nitzany, Eyal},
  journal = {arXiv preprint arXiv:2310.05212},
  year    = {2023}
}""",
        card="zoo.methods.conn:card_sections",
    )
)


def _scaled(**overrides) -> ConnConfig:
    # the CPU-scaled architecture of the shipped checkpoints (see their cards): MLP AE, K = 16, T = 30
    base = dict(autoencoder="mlp", ae_widths=[1024, 512, 256], perception="stochastic", copies=16, steps=30)
    return ConnConfig(**(base | overrides))


@register_model(
    family="conn",
    dataset="rmnist-10",
    data={"per_class": 10},
    recipe="recipes/conn/rmnist_stochastic.yaml",
    sha256="09bd7de8b4b4424815f46e6ac43f68d35332c35561742b249b4b0ebe4d09ddf7",
    summary="Stochastic perceptualized MLP classifier (CONN) trained on 10 MNIST images per class (scaled).",
    tags=("image-classification", "mnist", "few-shot"),
)
def conn_stochastic_rmnist10(**overrides) -> ConnConfig:
    return _scaled(**overrides)


@register_model(
    family="conn",
    dataset="rmnist-50",
    data={"per_class": 50},
    recipe="recipes/conn/rmnist_stochastic.yaml",
    sha256="34ddd934f437955d84750103a61c0934f76daf06240277b09b09f7db30eb704e",
    summary="Stochastic perceptualized MLP classifier (CONN) trained on 50 MNIST images per class (scaled).",
    tags=("image-classification", "mnist", "few-shot"),
)
def conn_stochastic_rmnist50(**overrides) -> ConnConfig:
    return _scaled(**overrides)


@register_model(
    family="conn",
    dataset="rmnist-10",
    data={"per_class": 10},
    recipe="recipes/pruning/conn_tvw_rmnist10.yaml",
    sha256="c94d5bb22c736cec0efe17d314f2fcab0f29988536968978eff9fca0bbefe3b4",
    summary="conn-stochastic-rmnist10 with its classifier pruned to 75% tile-vector-wise sparsity (TW 50% x 2:4).",
    tags=("image-classification", "mnist", "pruned", "tvw"),
    card="zoo.pruning.card:card_sections",
)
def conn_stochastic_tvw75_rmnist10(**overrides) -> ConnConfig:
    return _scaled(**overrides)
