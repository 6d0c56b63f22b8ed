"""The networks of idae.model: shapes, heads, projection, PCA start, spectral norm, losses, linear stage."""

import itertools
import math

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
    Projection,
    augment,
    dsm_loss,
    elbo_loss,
    infonce_loss,
    layer_table,
    reconstruction_loss,
)
from idae.train import seed_everything

N, GENES, DESIGN, D = 12, 40, 9, 3
SMALL = {"encoder_hidden": (16, 8), "condition_hidden": (8,), "decoder_hidden": (16,)}


def small_net(head="gaussian", augmentation=AUGMENTATIONS, seed=0, components=2 * D) -> IDAENet:
    """In eval mode: in training mode every forward runs a power-iteration step of the spectral norm,
    so two calls give (slightly) different weights."""
    torch.manual_seed(seed)
    net = IDAENet(GENES, DESIGN, D, components, head, augmentation, **SMALL)
    net.start_at_pca(torch.randn(50, GENES, generator=torch.Generator().manual_seed(seed)))
    with torch.no_grad():  # away from the PCA start, so that every path matters
        net.encoder.map.gain.fill_(0.5)
        net.decoder.map.gain.fill_(0.5)
        for p in net.condition_encoder.parameters():
            p.normal_(0, 0.3)
    return net.eval()


def linears(module: nn.Module) -> list[nn.Linear]:
    return [m for m in module.modules() if isinstance(m, nn.Linear)]


def spectral_norms(layers: list[nn.Linear]) -> list[float]:
    """Largest singular value of each Linear's effective (normalised) weight."""
    with torch.no_grad():
        return [torch.linalg.matrix_norm(layer.weight, ord=2).item() for layer in layers]


@pytest.fixture(scope="module")
def batch():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, GENES, generator=g)
    y = torch.randn(N, DESIGN, generator=g)
    return x, y


# ------------------------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("head", ["gaussian", "energy"])
def test_network_output_shapes(batch, head):
    x, y = batch
    net = small_net(head)
    k = 2 if head == "gaussian" else 3
    z = net.codes(x)
    assert z.shape == (N, D) and net.encode(x).shape == (N, D)
    assert net.head_natural_parameters(y).shape == (N, k * D)
    assert net.log_density(z, y).shape == (N,)
    assert net.logits(z, y).shape == (N, N)
    assert net.reconstruct(x).shape == (N, GENES) and net.decode(z).shape == (N, GENES)
    # the diagonal of the pairwise logits is the paired log-density
    torch.testing.assert_close(torch.diagonal(net.logits(z, y)), net.log_density(z, y))
    assert Encoder(2 * D, D, (16, 8))(torch.randn(N, 2 * D)).shape == (N, D)
    assert ConditionEncoder(DESIGN, 2 * D, (8,))(y).shape == (N, 2 * D)
    assert Decoder(D, GENES, (16,))(torch.randn(N, D)).shape == (N, GENES)


def test_gaussian_head_is_a_normalised_gaussian_density(batch):
    """T(z)ᵀλ(y) − A(λ(y)) is exactly Σ_j log N(z_j; m_j(y), v_j(y)): a positive variance and its log-partition."""
    x, y = batch
    net = small_net("gaussian")
    z = net.codes(x)
    mean, log_var = net.moments(y)
    expected = torch.distributions.Normal(mean, torch.exp(0.5 * log_var)).log_prob(z).sum(dim=1)
    torch.testing.assert_close(net.log_density(z, y), expected)
    assert (net.head_natural_parameters(y)[:, D:] < 0).all()  # -1/(2v): a positive precision


def test_default_hidden_sizes_and_layer_table():
    net = IDAENet(100, DESIGN, 6)
    rows = pd.DataFrame(layer_table(net))
    layers = rows[rows["shape"].str.contains("→")]
    encoder = layers[layers.network == "encoder"]
    assert list(encoder["shape"]) == ["12 → 6", "12 → 128", "128 → 128", "128 → 6"]  # 2 components per factor
    assert list(layers[layers.network == "decoder"]["shape"]) == ["6 → 100", "6 → 128", "128 → 128", "128 → 100"]
    assert list(layers[layers.network == "condition_encoder"]["shape"]) == [f"{DESIGN} → 12"]
    assert list(layers[layers.network == "condition_encoder"]["path"]) == ["linear"]  # one layer: a linear map
    assert encoder[encoder.path == "mlp"]["spectral_norm"].all() and not encoder[encoder.path == "linear"][
        "spectral_norm"].any()
    assert not rows[rows.network == "decoder"]["spectral_norm"].any()
    # the rows hold every parameter: the layers, then two gains, the genes' noise, the posterior sd and the head's scale
    assert rows["parameters"].sum() == sum(p.numel() for p in net.parameters())
    others = rows[~rows["shape"].str.contains("→")].set_index("path")
    assert others.loc["noise variance per gene", "parameters"] == 100
    assert others.loc["posterior variance per factor", "parameters"] == 6
    assert not others.loc["scale of the energy head", "trainable"]  # the Gaussian head fixes it
    assert rows["trainable"].sum() == len(rows) - 1


# ------------------------------------------------------------------------------ projection, PCA start


def test_projection_whitens_the_training_genes_and_zero_components_is_the_identity():
    x = torch.randn(200, GENES, generator=torch.Generator().manual_seed(1)) @ torch.randn(GENES, GENES)
    x = x - x.mean(dim=0)
    projection = Projection(GENES, 5)
    projection.fit(x)
    p = projection(x)
    torch.testing.assert_close(p.T @ p / len(x), torch.eye(5), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(projection.components.T @ projection.components, torch.eye(5), atol=1e-5, rtol=0)
    identity = Projection(GENES, 0)
    torch.testing.assert_close(identity(x), x)
    assert identity.width == GENES and projection.width == 5


def test_component_noise_corrupts_every_whitened_component_alike_and_only_while_training():
    # genes of very unequal spread: a corruption of the genes would reach the small components far more
    x = torch.randn(2000, GENES, generator=torch.Generator().manual_seed(2)) * torch.logspace(0, -2, GENES)
    x = x - x.mean(dim=0)
    projection = Projection(GENES, 5, noise=0.3)
    projection.fit(x)
    projection.eval()
    clean = projection(x)
    torch.testing.assert_close(projection(x), clean)
    projection.train()
    torch.manual_seed(0)
    spread = (projection(x) - clean).std(dim=0)
    torch.testing.assert_close(spread, torch.full((5,), 0.3), atol=0.02, rtol=0)


def test_untrained_model_is_pca_of_rank_d():
    """At the start, f gives the first d whitened principal components and h maps them back: rank-d PCA."""
    torch.manual_seed(0)
    x = torch.randn(300, GENES) @ torch.randn(GENES, GENES)
    x = x - x.mean(dim=0)
    net = IDAENet(GENES, DESIGN, D, 2 * D, **SMALL)
    net.start_at_pca(x)
    net.eval()
    u, s, vt = torch.linalg.svd(x, full_matrices=False)
    pcs = u[:, :D] * math.sqrt(len(x))  # whitened component scores
    z = net.codes(x)
    torch.testing.assert_close(z.abs(), pcs.abs(), atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(net.reconstruct(x), (u[:, :D] * s[:D]) @ vt[:D], atol=1e-3, rtol=1e-3)
    mean, log_var = net.moments(torch.randn(5, DESIGN))  # every factor N(0, 1) whatever the clinical state
    assert mean.abs().max() == 0 and log_var.abs().max() == 0


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


def test_energy_head_puts_augmentation_terms_in_canonical_order_gaussian_head_fixes_them():
    assert small_net("energy", ("z3", "z")).augmentation == ("z", "z3")
    assert small_net("gaussian", ("z3",)).augmentation == ("z", "z2")


@pytest.mark.parametrize("bad", [(), ("z", "z4"), ("cube",)])
def test_net_rejects_bad_augmentation_and_head(bad):
    with pytest.raises(ValueError, match="augmentation"):
        IDAENet(GENES, DESIGN, D, head="energy", augmentation=bad)
    with pytest.raises(ValueError, match="head"):
        IDAENet(GENES, DESIGN, D, head="laplace")


SUBSETS = [s for k in range(1, 4) for s in itertools.combinations(AUGMENTATIONS, k)]


@settings(max_examples=25, deadline=None)
@given(terms=st.sampled_from(SUBSETS).flatmap(st.permutations), d=st.integers(1, 5), n=st.integers(1, 7))
def test_any_subset_of_terms_gives_natural_parameters_of_width_k_times_d(terms, d, n):
    torch.manual_seed(0)
    net = IDAENet(GENES, DESIGN, d, 2 * d, "energy", tuple(terms), **SMALL).eval()
    z, y = torch.randn(n, d), torch.randn(n, DESIGN)
    k = len(terms)
    assert net.head_natural_parameters(y).shape == (n, k * d)
    canonical = tuple(t for t in AUGMENTATIONS if t in terms)
    expected = (augment(z, canonical) * net.head_natural_parameters(y)).sum(dim=1)
    torch.testing.assert_close(net.log_density(z, y), expected)


# ---------------------------------------------------------------------------------- architecture


def test_encoder_mlp_spectral_normalised_decoder_plain():
    net = small_net()
    mlp_layers = linears(net.encoder.map.net)
    assert mlp_layers and all(parametrize.is_parametrized(layer, "weight") for layer in mlp_layers)
    assert not parametrize.is_parametrized(net.encoder.map.linear)
    for layer in linears(net.decoder):
        assert type(layer) is nn.Linear and not parametrize.is_parametrized(layer)
    activations = [m for m in net.modules() if isinstance(m, nn.LeakyReLU)]
    assert activations and all(m.negative_slope == 0.2 for m in activations)
    assert not isinstance(net.encoder.map.net[-1], nn.LeakyReLU)
    assert not isinstance(net.decoder.map.net[-1], nn.LeakyReLU)
    assert not parametrize.is_parametrized(IDAENet(GENES, DESIGN, D, spectral=False).encoder.map.net[0])


def test_wide_spectral_layer_is_normalised_from_construction():
    # a 5000-input first layer (the encoder without projection) has close top singular values
    torch.manual_seed(0)
    encoder = Encoder(5000, 6).eval()
    assert max(spectral_norms(linears(encoder.map.net))) <= 1 + 1e-2


def test_parameters_grow_linearly_in_genes_never_quadratically():
    def count(genes):
        return sum(p.numel() for p in IDAENet(genes, DESIGN, 6).parameters())

    small, double = count(2000), count(4000)
    # only the decoder's output layers, its linear path and the genes' noise see the genes
    assert double - small == 2000 * (128 + 1 + 6 + 1 + 1)
    assert double < 4000**2 / 10
    buffers = sum(b.numel() for b in IDAENet(4000, DESIGN, 6).buffers())
    # the projection's 12 components, the inversion's direct and state paths (design × genes each), the stage's
    # and the state directions' few numbers
    assert buffers < 4000 * (13 + 2 * DESIGN) + 500


def test_decoder_noise_only_while_training():
    torch.manual_seed(0)
    dec = Decoder(6, GENES, (16,), noise=0.05)
    with torch.no_grad():
        dec.map.gain.fill_(1.0)
    t = torch.randn(4, 6)
    dec.eval()
    torch.testing.assert_close(dec(t), dec(t))
    dec.train()
    assert not torch.equal(dec(t), dec(t))


# -------------------------------------------------------------------------------------------- losses


@pytest.mark.parametrize("head", ["gaussian", "energy"])
def test_losses_are_finite_scalars_with_gradients(batch, head):
    x, y = batch
    net = small_net(head).train()
    w = torch.ones(N)
    losses = [infonce_loss(net, x, y, w, 0.5), dsm_loss(net, x, y, w, 0.5), reconstruction_loss(net, x, w, 0.5)]
    if head == "gaussian":
        losses.append(elbo_loss(net, x, y, w, 0.0)[0])
    for loss in losses:
        assert loss.shape == () and torch.isfinite(loss)
        grads = torch.autograd.grad(loss, [p for p in net.parameters() if p.requires_grad], allow_unused=True)
        assert any(g is not None and g.abs().sum() > 0 for g in grads)


def test_elbo_is_deterministic_in_eval_mode_and_bounds_by_its_terms(batch):
    x, y = batch
    net = small_net()
    w = torch.ones(N)
    loss, error = elbo_loss(net, x, y, w, 0.5)
    torch.testing.assert_close((loss, error), elbo_loss(net, x, y, w, 0.5))
    # in eval mode the reported error is that of the posterior mean, the model's reconstruction
    torch.testing.assert_close(error, ((net.reconstruct(x) - x) ** 2).mean())
    # at unit noise variance the bound's data term grows with the squared error
    with torch.no_grad():
        net.log_noise.zero_()
    assert elbo_loss(net, x + 1.0, y, w, 0.0)[0] > elbo_loss(net, x, y, w, 0.0)[0]


def test_the_infonce_term_joins_the_elbo_in_nats_per_patient(batch):
    """"ivae" with contrastive_weight w: -ELBO/genes + w * InfoNCE/genes; the reported terms stay the ELBO's."""
    from idae.train import Objective

    x, y = batch
    net = small_net()
    w = torch.ones(N)
    bound, error = elbo_loss(net, x, y, w, 0.0)
    nce = infonce_loss(net, x, y, w, 0.0)
    main, rec, total = Objective("ivae", contrastive_weight=7.0)(net, x, y, w)
    torch.testing.assert_close((main, rec), (bound, error))
    torch.testing.assert_close(total, bound + 7.0 * nce / GENES)
    torch.testing.assert_close(Objective("ivae")(net, x, y, w)[2], bound)


def test_detached_reconstruction_leaves_the_encoder_alone(batch):
    x, _ = batch
    net = small_net().train()
    loss = reconstruction_loss(net, x, torch.ones(N), 0.0, detach=True)
    grads = torch.autograd.grad(loss, list(net.encoder.parameters()), allow_unused=True)
    assert all(g is None or g.abs().sum() == 0 for g in grads)


def test_sample_weights_weight_the_losses(batch):
    x, y = batch
    net = small_net()
    only_first = torch.zeros(N)
    only_first[0] = 1.0
    full = reconstruction_loss(net, x, torch.ones(N), 0.5)
    first = reconstruction_loss(net, x, only_first, 0.5)
    torch.testing.assert_close(first, ((net.reconstruct(x[:1]) - x[:1]) ** 2).mean())
    assert not torch.isclose(full, first)


# ------------------------------------------------------------------------------------- linear stage


def test_linear_stage_is_applied_by_encode_and_undone_by_decode(batch):
    x, y = batch
    net = small_net()
    z = net.codes(x)
    centre, weight = torch.randn(D), torch.randn(D, D) + 3 * torch.eye(D)
    head_w, head_b = torch.randn(DESIGN, 2 * D), torch.randn(2 * D)
    net.set_unmixing(centre, weight, head_w, head_b)
    torch.testing.assert_close(net.encode(x), (z - centre) @ weight)
    torch.testing.assert_close(net.decode(net.encode(x)), net.reconstruct(x), atol=1e-4, rtol=1e-4)
    out = y @ head_w + head_b
    precision = torch.exp(-out[:, D:])
    torch.testing.assert_close(net.factor_natural_parameters(y), torch.cat([out[:, :D] * precision,
                                                                             -0.5 * precision], dim=1))


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


@pytest.mark.parametrize("objective", ["ivae", "infonce", "dsm"])
def test_encoder_mlp_stays_one_lipschitz_after_training(objective):
    clinical, genomic = tiny_cohort()
    noise = 0.5 if objective == "dsm" else 0.0
    model = idae.IDAE(latent_dim=3, objective=objective, noise=noise, max_epochs=40, patience=100, progress=False,
                      **SMALL)  # fmt: skip
    model.fit(genomic, clinical)
    assert len(model.history_.train_objective) == 40
    norms = spectral_norms(linears(model.net_.encoder.map.net))
    assert max(norms) <= 1 + 1e-2, norms
    # the decoder is unconstrained: nothing pins its layers to norm 1
    assert all(parametrize.is_parametrized(layer) is False for layer in linears(model.net_.decoder))
