"""CONN (arXiv 2310.05212): the paper's test oracles for the perceptual layer, the augmentation, the activation
and the seeding of CONN vs the baseline."""

import math

import pytest
import torch

from zoo.models.conn import (
    ConnConfig,
    ConvAutoencoder,
    Cosid,
    MLPAutoencoder,
    PerceptualLayer,
    alpha_schedule,
    augment,
    build_conn,
    conv_ae_macs,
    sample_augmentation,
)


def _identity_params(n, size=28):
    params = sample_augmentation(n, 0.0, torch.Generator().manual_seed(0), size)
    return params


def test_alpha_schedule_matches_the_paper():
    alphas = alpha_schedule(30)
    assert alphas[0] == 1.0 and math.isclose(alphas[1], 1 / 2.6)
    assert 8e-13 < alphas[29] < 1e-12


def test_cosid_is_strictly_decreasing():
    x = torch.linspace(-20, 20, 200001, dtype=torch.float64)
    y = Cosid()(x)
    assert (y[1:] < y[:-1]).all()


def test_zero_strength_augmentation_is_identity(digits):
    out = augment(digits, _identity_params(len(digits)))
    assert torch.allclose(out, digits, atol=1e-5)  # two bilinear resamplings at exact pixel centres


def test_affine_rotation_and_translation_match_exact_pixel_moves(digits):
    params = _identity_params(len(digits))
    params["rotate"] = torch.full((len(digits),), 90.0)
    rotated = augment(digits, params)
    # a +90 degree rotation in image coordinates (y down) maps column j to row j: torch.rot90 with k=-1
    assert torch.allclose(rotated, torch.rot90(digits, k=-1, dims=(2, 3)), atol=1e-5)
    params = _identity_params(len(digits))
    params["translate"] = torch.tensor([[2 / 28, 0.0]]).repeat(len(digits), 1)
    shifted = augment(digits, params)
    expected = torch.zeros_like(digits)
    expected[..., 2:] = digits[..., :-2]
    assert torch.allclose(shifted, expected, atol=1e-5)


def test_stochastic_with_one_copy_and_zero_strength_equals_vanilla(digits):
    torch.manual_seed(0)
    ae = MLPAutoencoder([64, 16])
    vanilla = PerceptualLayer("vanilla", steps=5)(digits, ae)
    stochastic = PerceptualLayer("stochastic", copies=1, steps=5, alpha0=0.0)(digits, ae)
    assert torch.equal(stochastic, vanilla)


def test_stochastic_layer_is_deterministic_and_batch_independent(digits):
    torch.manual_seed(0)
    ae = MLPAutoencoder([64, 16])
    layer = PerceptualLayer("stochastic", copies=4, steps=3, chunk=3)
    batch = layer(digits, ae)
    assert torch.equal(layer(digits, ae), batch)
    single = torch.cat([layer(digits[i : i + 1], ae) for i in range(len(digits))])
    assert torch.allclose(single, batch, atol=1e-6)
    other = PerceptualLayer("stochastic", copies=4, steps=3, seed=1)(digits, ae)
    assert not torch.allclose(other, batch)


def test_stochastic_output_is_the_mean_over_copies(digits):
    torch.manual_seed(0)
    ae = MLPAutoencoder([64, 16])
    x = digits[:1]
    layer = PerceptualLayer("stochastic", copies=5, steps=2)
    out = layer(x, ae)
    # rebuild the copies by hand with the same generator and check the pixel-wise mean, in any copy order
    from zoo.models.conn import content_seeds

    g = torch.Generator().manual_seed(content_seeds(x, 0)[0])
    xs = x.repeat(5, 1, 1, 1)
    for alpha in alpha_schedule(2):
        xs = ae(augment(xs, sample_augmentation(5, alpha, g)))
    assert torch.allclose(out, xs.mean(0, keepdim=True), atol=1e-6)
    assert torch.allclose(out, xs[torch.randperm(5)].mean(0, keepdim=True), atol=1e-6)


def test_conv_autoencoder_shapes_and_the_papers_cost():
    ae = ConvAutoencoder(8)
    x = torch.rand(2, 1, 28, 28)
    assert ae.encode(x).shape == (2, 8, 1, 1) and ae(x).shape == (2, 1, 28, 28)
    assert 1.1e9 < conv_ae_macs(256) < 1.2e9  # the note's "1.15 GMAC per forward pass"
    params = sum(p.numel() for p in ConvAutoencoder(256).parameters())
    assert 6.4e6 < params < 6.7e6  # "about 6.5 M parameters"


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="expected perception in"):
        ConnConfig(perception="dreaming")
    with pytest.raises(ValueError, match="needs an autoencoder"):
        ConnConfig(autoencoder="none", perception="vanilla")
    assert build_conn({"autoencoder": "none", "perception": "none"}).autoencoder is None


def test_identity_perception_gives_the_baseline_exactly():
    """With P = identity and the same seed, CONN and the baseline train identically (the seeding oracle)."""
    import lightning as L

    from zoo.data.rmnist import RMNISTDataModule
    from zoo.methods.conn import ConnModule

    def run(net):
        module = ConnModule(net=net | {"classifier_widths": [32, 16]}, seed=0)
        trainer = L.Trainer(
            max_epochs=3,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            accelerator="cpu",
        )
        trainer.fit(module, datamodule=RMNISTDataModule(per_class=5, batch_size=20))
        (metrics,) = trainer.test(module, datamodule=RMNISTDataModule(per_class=5), verbose=False)
        return module.net.classifier.state_dict(), metrics["test/accuracy"]

    conn = run({"autoencoder": "mlp", "ae_widths": [64, 16], "perception": "stochastic", "steps": 0})
    base = run({"autoencoder": "none", "perception": "none"})
    assert conn[1] == base[1]
    for k in base[0]:
        assert torch.equal(conn[0][k], base[0][k]), k
