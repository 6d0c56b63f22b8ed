"""The networks of idae.model: shapes, augmentation, spectral norm, parameter growth, losses, determinism."""

import itertools

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils import parametrize

import idae
from idae.model import (
    AUGMENTATIONS,
    ConditionEncoder,
    Decoder,
    Encoder,
    IDAENet,
    augment,
    dsm_loss,
    infonce_loss,
    layer_table,
    reconstruction_loss,
)
from idae.train import seed_everything

N, GENES, DESIGN, D = 12, 40, 9, 3
SMALL = {"encoder_hidden": (16, 8), "condition_hidden": (8,), "decoder_hidden": (16,)}


def small_net(augmentation=AUGMENTATIONS, seed=0) -> IDAENet:
    """In eval mode: in training mode every forward runs a power-iteration step of the spectral norm,
    so two calls give (slightly) different weights."""
    torch.manual_seed(seed)
    return IDAENet(GENES, DESIGN, D, augmentation, **SMALL).eval()


def linears(module: nn.Module) -> list[nn.Linear]:
    return [m for m in module.modules() if isinstance(m, nn.Linear)]


def spectral_norms(module: nn.Module) -> list[float]:
    """Largest singular value of each Linear's effective (normalised) weight."""
    with torch.no_grad():
        return [torch.linalg.matrix_norm(layer.weight, ord=2).item() for layer in linears(module)]


@pytest.fixture(scope="module")
def batch():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, GENES, generator=g)
    y = torch.randn(N, DESIGN, generator=g)
    return x, y


# ------------------------------------------------------------------------------------------- shapes


def test_network_output_shapes(batch):
    x, y = batch
    torch.manual_seed(0)
    assert Encoder(GENES, D, (16, 8))(x).shape == (N, D)
    assert ConditionEncoder(DESIGN, 3 * D, (8,))(y).shape == (N, 3 * D)
    assert Decoder(3 * D, GENES, (16,))(torch.randn(N, 3 * D)).shape == (N, GENES)
    net = small_net()
    assert net.features(x).shape == (N, 3 * D)
    assert net.natural_parameters(y).shape == (N, 3 * D)
    assert net.log_density(x, y).shape == (N,)
    assert net.logits(x, y).shape == (N, N)
    assert net.reconstruct(x).shape == (N, GENES)
    # the diagonal of the pairwise logits is the paired log-density
    torch.testing.assert_close(torch.diagonal(net.logits(x, y)), net.log_density(x, y))


def test_default_hidden_sizes_and_layer_table():
    net = IDAENet(100, DESIGN, 6)
    rows = layer_table(net)
    assert [r["shape"] for r in rows if r["network"] == "encoder"] == ["100 → 256", "256 → 256", "256 → 6"]
    assert [r["shape"] for r in rows if r["network"] == "decoder"] == ["18 → 256", "256 → 256", "256 → 100"]
    assert all(r["spectral_norm"] for r in rows if r["network"] != "decoder")
    assert not any(r["spectral_norm"] for r in rows if r["network"] == "decoder")
    assert sum(r["parameters"] for r in rows) + 1 == sum(p.numel() for p in net.parameters())  # + log_scale


# ------------------------------------------------------------------------------------- augmentation


def test_augment_terms_and_order():
    z = torch.tensor([[1.0, -2.0], [0.5, 3.0]])
    torch.testing.assert_close(augment(z, ("z",)), z)
    torch.testing.assert_close(augment(z, ("z2",)), z**2)
    torch.testing.assert_close(augment(z, ("z3",)), 0.1 * z**3)
    torch.testing.assert_close(augment(z), torch.cat([z, z**2, 0.1 * z**3], dim=1))
    torch.testing.assert_close(augment(z, ("z", "z3")), torch.cat([z, 0.1 * z**3], dim=1))
    # z² and 0.1·z³ are non-monotonic / odd in the way ICE-BeeM needs: z² ignores the sign
    torch.testing.assert_close(augment(-z, ("z2",)), augment(z, ("z2",)))
    torch.testing.assert_close(augment(-z, ("z3",)), -augment(z, ("z3",)))


def test_net_puts_augmentation_terms_in_canonical_order(batch):
    x, _ = batch
    net = small_net(("z3", "z"))
    assert net.augmentation == ("z", "z3")
    z = net.encoder(x)
    torch.testing.assert_close(net.features(x), torch.cat([z, 0.1 * z**3], dim=1))


@pytest.mark.parametrize("bad", [(), ("z", "z4"), ("cube",)])
def test_net_rejects_bad_augmentation(bad):
    with pytest.raises(ValueError, match="augmentation"):
        IDAENet(GENES, DESIGN, D, bad)


SUBSETS = [s for k in range(1, 4) for s in itertools.combinations(AUGMENTATIONS, k)]


@settings(max_examples=25, deadline=None)
@given(terms=st.sampled_from(SUBSETS).flatmap(st.permutations), d=st.integers(1, 5), n=st.integers(1, 7))
def test_any_subset_of_terms_gives_features_of_width_k_times_d(terms, d, n):
    torch.manual_seed(0)
    net = IDAENet(GENES, DESIGN, d, tuple(terms), **SMALL).eval()
    x, y = torch.randn(n, GENES), torch.randn(n, DESIGN)
    k = len(terms)
    assert net.features(x).shape == (n, k * d)
    assert net.natural_parameters(y).shape == (n, k * d)
    assert net.decoder.net[0].in_features == k * d
    canonical = tuple(t for t in AUGMENTATIONS if t in terms)
    torch.testing.assert_close(net.features(x), augment(net.encoder(x), canonical))


# ---------------------------------------------------------------------------------- architecture


def test_encoders_spectral_normalised_decoder_plain():
    net = small_net()
    for part in (net.encoder, net.condition_encoder):
        layers = linears(part)
        assert layers and all(parametrize.is_parametrized(layer, "weight") for layer in layers)
    for layer in linears(net.decoder):
        assert type(layer) is nn.Linear and not parametrize.is_parametrized(layer)
        assert torch.count_nonzero(layer.bias) == 0  # Kaiming weights, zero biases
    activations = [m for m in net.modules() if isinstance(m, nn.LeakyReLU)]
    assert activations and all(m.negative_slope == 0.2 for m in activations)
    assert not isinstance(net.encoder.net[-1], nn.LeakyReLU) and not isinstance(net.decoder.net[-1], nn.LeakyReLU)


def test_wide_spectral_layer_is_normalised_from_construction():
    # a 5000-gene first layer has close top singular values: the estimate must be converged at init
    torch.manual_seed(0)
    encoder = Encoder(5000, 6).eval()
    assert max(spectral_norms(encoder)) <= 1 + 1e-2


def test_encoder_parameters_grow_linearly_in_genes_never_quadratically():
    def count(genes):
        return sum(p.numel() for p in Encoder(genes, 6).parameters())

    small, double = count(2000), count(4000)
    assert double - small == 256 * 2000  # exactly genes × hidden[0]: only the first layer sees genes
    assert 1.8 < double / small < 2.0
    assert double < 4000**2 / 10
    decoder = sum(p.numel() for p in Decoder(18, 4000).parameters())
    assert decoder < 4000**2 / 10


def test_decoder_noise_only_while_training():
    torch.manual_seed(0)
    dec = Decoder(6, GENES, (16,), noise=0.05)
    t = torch.randn(4, 6)
    dec.eval()
    torch.testing.assert_close(dec(t), dec(t))
    dec.train()
    assert not torch.equal(dec(t), dec(t))
    assert not torch.equal(Decoder(6, GENES, (16,), noise=0.0).train()(t), dec(t))


# -------------------------------------------------------------------------------------------- losses


def test_losses_are_finite_scalars_with_gradients(batch):
    x, y = batch
    net = small_net().train()
    w = torch.ones(N)
    for loss in (infonce_loss(net, x, y, w), dsm_loss(net, x, y, w, 0.5), reconstruction_loss(net, x, w, 0.5)):
        assert loss.shape == () and torch.isfinite(loss)
        grads = torch.autograd.grad(loss, [p for p in net.parameters() if p.requires_grad], allow_unused=True)
        assert any(g is not None and g.abs().sum() > 0 for g in grads)


def test_sample_weights_weight_the_losses(batch):
    x, y = batch
    net = small_net()
    only_first = torch.zeros(N)
    only_first[0] = 1.0
    full = reconstruction_loss(net, x, torch.ones(N), 0.5)
    first = reconstruction_loss(net, x, only_first, 0.5)
    torch.testing.assert_close(first, ((net.reconstruct(x[:1]) - x[:1]) ** 2).mean())
    assert not torch.isclose(full, first)


# ---------------------------------------------------------------------------------------- determinism


def test_same_seed_same_weights_different_seed_different():
    def weights(seed):
        seed_everything(seed)
        return IDAENet(GENES, DESIGN, D, **SMALL).state_dict()

    a, b, c = weights(3), weights(3), weights(4)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


# ------------------------------------------------------------------------- spectral norm after training


def tiny_cohort(n=60, genes=40, seed=0):
    rng = np.random.default_rng(seed)
    ids = [f"p{i:02d}" for i in range(n)]
    er = rng.choice(["neg", "pos"], n)
    clinical = pd.DataFrame(
        {"er": pd.Categorical(er), "grade": pd.Categorical(rng.choice(["1", "2", "3"], n)),
         "age": rng.normal(55, 10, n)}, index=ids,
    )  # fmt: skip
    x = rng.normal(size=(n, genes))
    x[:, :5] += 2.0 * (er == "pos")[:, None]
    return clinical, pd.DataFrame(x, index=ids, columns=[f"g{j}" for j in range(genes)])


@pytest.mark.parametrize("objective", ["infonce", "dsm"])
def test_encoders_stay_one_lipschitz_after_training(objective):
    clinical, genomic = tiny_cohort()
    model = idae.IDAE(latent_dim=3, objective=objective, max_epochs=40, progress=False, **SMALL)
    model.fit(genomic, clinical)
    assert len(model.history.train_objective) > 5
    for part in (model.net.encoder, model.net.condition_encoder):
        norms = spectral_norms(part)
        assert len(norms) == len(linears(part)) and max(norms) <= 1 + 1e-2, norms
    # the decoder is unconstrained: nothing pins its layers to norm 1
    assert all(parametrize.is_parametrized(layer) is False for layer in linears(model.net.decoder))
