"""The identifiable denoising autoencoder, top to bottom.

    x  (n, genes)      --Encoder f-->            z = f(x)   (n, d)        the identifiable factors
    T(z)               = [z, z², 0.1·z³]         (n, k·d)                 non-monotonic augmentation
    y  (n, design)     --ConditionEncoder g-->   λ = g(y)   (n, k·d)      natural parameters
    log-density        ℓ(x, y) = T(f(x))ᵀ g(y)   (up to terms in x or y alone)
    x̂  = h(T(f(x̃)))   --Decoder h-->            (n, genes)               clean profile from a noisy one

The energy in the ICE-BeeM sense is E(x, y) = -ℓ(x, y) (Khemakhem et al., NeurIPS 2020, eq. 3, with
their feature augmentation of section 3.2). Two estimators of ℓ are provided, each consistent
for the same conditional energy:

- `infonce_loss`: a softmax over the logits ℓ(x_i, y_j) of a batch, positive pairs on the diagonal;
- `dsm_loss`: conditional denoising score matching (Vincent 2011): with x̃ = x + σε the denoiser
  x̃ + σ²∇ₓ̃ℓ(x̃, y) is trained to return x, i.e. a squared-error denoising autoencoder whose
  decoder is the energy's gradient.

Both are combined with the explicit reconstruction loss of the decoder.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

NEGATIVE_SLOPE = 0.2
AUGMENTATIONS = ("z", "z2", "z3")


def mlp(sizes: list[int], spectral: bool) -> nn.Sequential:
    """Linear layers of the given sizes with LeakyReLU(0.2) between them (none after the last).

    With `spectral`, every Linear is spectral-normalised (largest singular value 1), so the
    network is 1-Lipschitz.
    """
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        linear = nn.Linear(n_in, n_out)
        if spectral:
            linear = spectral_norm(linear)
            # torch runs 15 power iterations at registration; a wide random matrix's top singular values
            # are close, so the estimate can be ~5% low until training refines it. Converge it now.
            with torch.no_grad():
                linear.parametrizations.weight[0]._power_method(linear.parametrizations.weight.original, 200)
        layers.append(linear)
        if i < len(sizes) - 2:
            layers.append(nn.LeakyReLU(NEGATIVE_SLOPE))
    return nn.Sequential(*layers)


def augment(z: torch.Tensor, terms: tuple[str, ...] = AUGMENTATIONS) -> torch.Tensor:
    """T(z): (n, d) -> (n, k·d), stacking the chosen terms among z, z² and 0.1·z³ (in that order)."""
    parts = {"z": lambda: z, "z2": lambda: z**2, "z3": lambda: 0.1 * z**3}
    return torch.cat([parts[t]() for t in terms], dim=1)


class Encoder(nn.Module):
    """f: genes (n, p) -> factors (n, d). Parameters p·hidden[0] + small: linear in the gene count."""

    def __init__(self, n_genes: int, latent_dim: int, hidden: tuple[int, ...] = (256, 256)):
        super().__init__()
        self.net = mlp([n_genes, *hidden, latent_dim], spectral=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ConditionEncoder(nn.Module):
    """g: clinical design (n, q) -> natural parameters λ (n, k·d)."""

    def __init__(self, n_design: int, n_features: int, hidden: tuple[int, ...] = (64, 64)):
        super().__init__()
        self.net = mlp([n_design, *hidden, n_features], spectral=True)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.net(y)


class Decoder(nn.Module):
    """h: T(z) (n, k·d) -> genes (n, p). Plain Linear + LeakyReLU, Kaiming init.

    Light Gaussian noise on its input while training keeps it smooth around the training codes,
    which matters when inversion moves a code to a place no training patient sat.
    """

    def __init__(self, n_features: int, n_genes: int, hidden: tuple[int, ...] = (256, 256), noise: float = 0.05):
        super().__init__()
        self.net = mlp([n_features, *hidden, n_genes], spectral=False)
        self.noise = noise
        for layer in self.net:
            if isinstance(layer, nn.Linear):
                nn.init.kaiming_normal_(layer.weight, a=NEGATIVE_SLOPE, nonlinearity="leaky_relu")
                nn.init.zeros_(layer.bias)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        if self.training and self.noise > 0:
            t = t + self.noise * torch.randn_like(t)
        return self.net(t)


class IDAENet(nn.Module):
    """The three networks and the energy that ties the encoders."""

    def __init__(
        self,
        n_genes: int,
        n_design: int,
        latent_dim: int,
        augmentation: tuple[str, ...] = AUGMENTATIONS,
        encoder_hidden: tuple[int, ...] = (256, 256),
        condition_hidden: tuple[int, ...] = (64, 64),
        decoder_hidden: tuple[int, ...] = (256, 256),
        decoder_noise: float = 0.05,
    ):
        super().__init__()
        unknown = set(augmentation) - set(AUGMENTATIONS)
        if unknown or not augmentation:
            raise ValueError(f"augmentation terms must be a non-empty subset of {AUGMENTATIONS}, got {augmentation}")
        self.augmentation = tuple(t for t in AUGMENTATIONS if t in augmentation)
        n_features = latent_dim * len(self.augmentation)
        self.encoder = Encoder(n_genes, latent_dim, encoder_hidden)
        self.condition_encoder = ConditionEncoder(n_design, n_features, condition_hidden)
        self.decoder = Decoder(n_features, n_genes, decoder_hidden, decoder_noise)
        # Spectral norm bounds ‖g(y)‖, so the logits get one learnt scale (a temperature); a scalar
        # leaves identifiability up to scaling untouched.
        self.log_scale = nn.Parameter(torch.tensor(2.0))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """T(f(x)): (n, genes) -> (n, k·d)."""
        return augment(self.encoder(x), self.augmentation)

    def natural_parameters(self, y: torch.Tensor) -> torch.Tensor:
        """λ(y) = scale·g(y): (n, design) -> (n, k·d)."""
        return self.log_scale.exp() * self.condition_encoder(y)

    def log_density(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """ℓ(x_i, y_i) = T(f(x_i))ᵀ λ(y_i) for paired rows: (n,)."""
        return (self.features(x) * self.natural_parameters(y)).sum(dim=1)

    def logits(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """ℓ(x_i, y_j) for every pair: (n, n)."""
        return self.features(x) @ self.natural_parameters(y).T

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.features(x))


def weighted_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    return (values * weights).sum() / weights.sum()


def infonce_loss(net: IDAENet, x: torch.Tensor, y: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE over the batch: which condition matches each profile, and vice versa.

    Patients who share a clinical profile make the task ambiguous but not biased: their rows of
    logits are equal, so the optimum is still ℓ(x, y) = log p(x|y) - log p(x) up to a term in x.
    """
    logits = net.logits(x, y)
    target = torch.arange(len(x), device=x.device)
    per_sample = 0.5 * (F.cross_entropy(logits, target, reduction="none")
                        + F.cross_entropy(logits.T, target, reduction="none"))
    return weighted_mean(per_sample, weights)


def dsm_loss(net: IDAENet, x: torch.Tensor, y: torch.Tensor, weights: torch.Tensor, sigma: float) -> torch.Tensor:
    """Conditional denoising score matching: ½‖x̃ + σ²∇ₓ̃ℓ(x̃, y) - x‖² / (σ² · genes).

    Divided by σ² so the loss is on the score's scale, and by the gene count so it reads per gene.
    """
    noisy = (x + sigma * torch.randn_like(x)).requires_grad_(True)
    score = torch.autograd.grad(net.log_density(noisy, y).sum(), noisy, create_graph=True)[0]
    denoised = noisy + sigma**2 * score
    per_sample = 0.5 * ((denoised - x) ** 2).mean(dim=1) / sigma**2
    return weighted_mean(per_sample, weights)


def reconstruction_loss(
    net: IDAENet, x: torch.Tensor, weights: torch.Tensor, sigma: float
) -> torch.Tensor:
    """Denoising reconstruction ‖h(T(f(x̃))) - x‖² per gene. Genes are standardised, so a common σ
    is a corruption scaled to each gene's spread."""
    noisy = x + sigma * torch.randn_like(x) if net.training else x
    return weighted_mean(((net.reconstruct(noisy) - x) ** 2).mean(dim=1), weights)


def layer_table(net: IDAENet) -> list[dict[str, object]]:
    """One row per Linear layer: network, index, input → output width, parameters, spectral norm."""
    rows = []
    for part in ("encoder", "condition_encoder", "decoder"):
        for i, layer in enumerate(getattr(net, part).net):
            if not isinstance(layer, nn.Linear):
                continue
            rows.append({
                "network": part,
                "layer": i,
                "shape": f"{layer.in_features} → {layer.out_features}",
                "parameters": sum(p.numel() for p in layer.parameters()),
                "spectral_norm": hasattr(layer, "parametrizations"),
                "activation after": "LeakyReLU(0.2)" if i < len(getattr(net, part).net) - 1 else "-",
            })  # fmt: skip
    return rows
