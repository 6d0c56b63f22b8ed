"""The identifiable denoising autoencoder, top to bottom.

    x  (n, genes)                 standardised genes
    p  = P(x)      (n, k)         whitened leading principal components of the training genes (fixed)
    z  = f(p)      (n, d)         factors: spectral-normalised LeakyReLU MLP beside a linear path
    y  (n, design) --g-->         the distribution of each factor given the clinical state
    ℓ(z, y)        = T(z)ᵀλ(y) − A(λ(y))       the conditional log-density (energy −ℓ)
    x̂  = h(z)      (n, genes)     the decoder
    u  = (z − c) W (n, d)         the conditional linear stage, fitted after training (`unmixing`)

The energy is ICE-BeeM's (Khemakhem et al., NeurIPS 2020, eq. 3). Two heads give λ(y):

- "gaussian" (default): T(z) = [z, z²] and λ(y) = [m/v, −1/(2v)] with m(y), log v(y) from g, so every
  factor is Gaussian given y with a positive variance and A(λ) = m²/(2v) + ½ log v is its exact
  log-partition: a normalisable conditional, the matched head of generalised contrastive learning
  (Hyvärinen et al., AISTATS 2019) and of iVAE (Khemakhem et al., AISTATS 2020).
- "energy": the seed's free λ(y) = scale · g(y) over T(z) = [z, z², 0.1·z³] (any subset), no log-partition.

Three objectives:

- `elbo_loss` ("ivae", default): the evidence lower bound of log p(x | y) for the generative model
  z ~ p(z | y) (the Gaussian head), x = h(z) + per-gene Gaussian noise, with q(z | x) = N(f(p̃), diag s²)
  and p̃ the projection of a corrupted profile. Identifiable up to permutation and per-factor affine maps
  (iVAE, Theorem 1), with a likelihood in which the clinical modulation of the factors' variances fixes
  their rotation. By default the InfoNCE term below is added with weight `contrastive_weight` (both terms
  in nats per patient divided by the gene count, `train.Objective`): it matters where the likelihood has few
  dimensions to speak from.
- `infonce_loss`: a softmax over ℓ(z_i, y_j) of a batch, which clinical state goes with each profile.
- `dsm_loss`: conditional denoising score matching (Vincent 2011): x̃ + σ²∇ₓ̃ℓ(f(P x̃), y) denoises x̃.

The last two are combined with the denoising reconstruction loss ‖h(f(P x̃)) − x‖².

Both f and h start at principal component analysis (the linear paths at the leading components, the
nonlinear parts switched off by a zero gain) and leave it as far as training supports: on a small cohort
early stopping keeps them close to PCA, on a large one the nonlinear parts take over.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

NEGATIVE_SLOPE = 0.2
AUGMENTATIONS = ("z", "z2", "z3")
HEADS = ("gaussian", "energy")
LOG_VARIANCE_RANGE = (-12.0, 12.0)  # of a factor given y: keeps exp() finite in float32


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


class Projection(nn.Module):
    """P: standardised genes (n, p) -> whitened principal components (n, k), fitted once (`fit`), not trained.

    With k = 0 it is the identity (the encoder then reads every gene, as in the seed model). While training,
    `noise` adds Gaussian corruption of that sd to each output, in whitened units: every component is corrupted
    alike, where a corruption of the genes reaches component j with sd noise / (its sd), so that it swamps the
    small components and barely touches the large ones.
    """

    def __init__(self, n_genes: int, n_components: int, noise: float = 0.0):
        super().__init__()
        self.register_buffer("components", torch.zeros(n_genes, n_components))  # unit columns
        self.register_buffer("scale", torch.ones(n_components))  # sd of each component on the training data
        self.noise = noise

    @property
    def width(self) -> int:
        return self.components.shape[1] or self.components.shape[0]

    @torch.no_grad()
    def fit(self, x: torch.Tensor) -> None:
        """Principal axes of the training genes x (n, p), which are centred already (standardised)."""
        k = self.components.shape[1]
        if k:
            _, s, vt = torch.linalg.svd(x.double(), full_matrices=False)
            self.components.copy_(vt[:k].T)
            self.scale.copy_((s[:k] / math.sqrt(len(x))).clamp_min(1e-6 * float(s[0])))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = x @ self.components / self.scale if self.components.shape[1] else x
        if self.training and self.noise > 0:
            p = p + self.noise * torch.randn_like(p)
        return p

    def loadings(self, d: int) -> torch.Tensor:
        """(p, d): genes as a linear function of the first d whitened components, the inverse of `forward`."""
        return self.components[:, :d] * self.scale[:d]


class Residual(nn.Module):
    """A linear map beside an MLP whose output is scaled by a learnt gain, zero at the start (ReZero,
    Bachlechner et al. 2020): the module starts linear and becomes nonlinear only as training needs."""

    def __init__(self, n_in: int, n_out: int, hidden: tuple[int, ...], spectral: bool):
        super().__init__()
        self.linear = nn.Linear(n_in, n_out)
        self.net = mlp([n_in, *hidden, n_out], spectral=spectral) if hidden else None
        self.gain = nn.Parameter(torch.zeros(())) if hidden else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.linear(x)
        return out if self.net is None else out + self.gain * self.net(x)


class Encoder(nn.Module):
    """f: projected genes (n, k) -> factors (n, d). Spectral-normalised LeakyReLU MLP beside a linear path."""

    def __init__(self, n_in: int, latent_dim: int, hidden: tuple[int, ...] = (128, 128), spectral: bool = True):
        super().__init__()
        self.map = Residual(n_in, latent_dim, hidden, spectral)

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        return self.map(p)


class ConditionEncoder(nn.Module):
    """g: clinical design (n, q) -> the head's outputs: (m, log v) (n, 2d), or free natural parameters (n, k·d)."""

    def __init__(self, n_design: int, n_out: int, hidden: tuple[int, ...] = (), spectral: bool = False):
        super().__init__()
        self.net = mlp([n_design, *hidden, n_out], spectral=spectral)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.net(y)


class Decoder(nn.Module):
    """h: factors (n, d) -> genes (n, p). Plain Linear + LeakyReLU (Kaiming init) beside a linear path.

    Light Gaussian noise on its input while training keeps it smooth around the training codes (the
    contrastive objectives; the ELBO's posterior draws do this for "ivae").
    """

    def __init__(self, latent_dim: int, n_genes: int, hidden: tuple[int, ...] = (128, 128), noise: float = 0.0):
        super().__init__()
        self.map = Residual(latent_dim, n_genes, hidden, spectral=False)
        self.noise = noise
        if self.map.net is not None:
            for layer in self.map.net:
                if isinstance(layer, nn.Linear):
                    nn.init.kaiming_normal_(layer.weight, a=NEGATIVE_SLOPE, nonlinearity="leaky_relu")
                    nn.init.zeros_(layer.bias)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.training and self.noise > 0:
            z = z + self.noise * torch.randn_like(z)
        return self.map(z)


class IDAENet(nn.Module):
    """The projection, the three networks, the energy that ties the encoders and the linear stage."""

    def __init__(
        self,
        n_genes: int,
        n_design: int,
        latent_dim: int,
        input_components: int = 12,
        head: str = "gaussian",
        augmentation: tuple[str, ...] = ("z", "z2"),
        encoder_hidden: tuple[int, ...] = (128, 128),
        condition_hidden: tuple[int, ...] = (),
        decoder_hidden: tuple[int, ...] = (128, 128),
        decoder_noise: float = 0.0,
        spectral: bool = True,
        component_noise: float = 0.0,
    ):
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {head!r}")
        unknown = set(augmentation) - set(AUGMENTATIONS)
        if unknown or not augmentation:
            raise ValueError(f"augmentation terms must be a non-empty subset of {AUGMENTATIONS}, got {augmentation}")
        self.head = head
        # the Gaussian head fixes T(z) = [z, z²]; the energy head uses the chosen terms
        self.augmentation = ("z", "z2") if head == "gaussian" else tuple(t for t in AUGMENTATIONS if t in augmentation)
        self.latent_dim = latent_dim
        n_out = 2 * latent_dim if head == "gaussian" else latent_dim * len(self.augmentation)
        self.projection = Projection(n_genes, min(input_components, n_genes), component_noise)
        self.encoder = Encoder(self.projection.width, latent_dim, encoder_hidden, spectral)
        # The energy head's condition encoder is spectral-normalised with one learnt scale (a temperature),
        # as in the seed; the Gaussian head's outputs are a mean and a log-variance, which need their range.
        self.condition_encoder = ConditionEncoder(n_design, n_out, condition_hidden, spectral=head == "energy")
        self.decoder = Decoder(latent_dim, n_genes, decoder_hidden, decoder_noise)
        self.log_scale = nn.Parameter(torch.tensor(2.0 if head == "energy" else 0.0), requires_grad=head == "energy")
        # "ivae": per-gene noise of x given z, and the posterior sd of each factor given x
        self.log_noise = nn.Parameter(torch.zeros(n_genes))
        self.posterior_log_var = nn.Parameter(torch.full((latent_dim,), -4.0))
        # the conditional linear stage u = (z - centre) @ unmixing, identity until `set_unmixing`, and its
        # Gaussian model of u given y: [m(y), log v(y)] = y @ stage_head_weight + stage_head_bias
        self.register_buffer("staged", torch.zeros(()))
        self.register_buffer("centre", torch.zeros(latent_dim))
        self.register_buffer("unmixing", torch.eye(latent_dim))
        self.register_buffer("mixing", torch.eye(latent_dim))
        self.register_buffer("stage_head_weight", torch.zeros(n_design, 2 * latent_dim))
        self.register_buffer("stage_head_bias", torch.zeros(2 * latent_dim))
        # the inversion's direct path (idae.invert.fit_direct_path): per-gene effects of the clinical design
        # on what the decoder does not explain, in standardised gene units; zero until fitted
        self.register_buffer("direct_effect", torch.zeros(n_design, n_genes))
        # its state path (idae.invert.fit_state_path): per design column, a direction in the factors (or their
        # positions, Config.state_basis) and per-gene slopes along it, in standardised gene units; zero until fitted
        self.register_buffer("state_direction", torch.zeros(n_design, latent_dim))
        self.register_buffer("state_effect", torch.zeros(n_design, n_genes))

    # ------------------------------------------------------------------------------------- setup

    @torch.no_grad()
    def start_at_pca(self, x: torch.Tensor) -> None:
        """Fit the projection on the training genes x (n, p); set f to the first d whitened components and
        h to their loadings, so that the untrained model is PCA of rank d."""
        d = self.latent_dim
        self.projection.fit(x)
        k = self.projection.components.shape[1]
        if not k:  # no projection: the linear paths keep their default initialisation
            return
        linear = self.encoder.map.linear
        linear.weight.zero_()
        linear.bias.zero_()
        n = min(d, k)
        linear.weight[:n, :n] = torch.eye(n)
        self.decoder.map.linear.weight.zero_()
        self.decoder.map.linear.weight[:, :n] = self.projection.loadings(n)
        self.decoder.map.linear.bias.zero_()
        if self.head == "gaussian":  # every factor starts as N(0, 1) given any y
            last = self.condition_encoder.net[-1]
            last.weight.zero_()
            last.bias.zero_()

    @torch.no_grad()
    def set_unmixing(self, centre: torch.Tensor, unmixing: torch.Tensor, head_weight: torch.Tensor,
                     head_bias: torch.Tensor) -> None:  # fmt: skip
        """Install the linear stage (see `idae.unmixing`): u = (z - centre) @ unmixing, u | y Gaussian."""
        self.centre.copy_(centre)
        self.unmixing.copy_(unmixing)
        self.mixing.copy_(torch.linalg.inv(unmixing.double()).to(unmixing.dtype))
        self.stage_head_weight.copy_(head_weight)
        self.stage_head_bias.copy_(head_bias)
        self.staged.fill_(1.0)

    # ------------------------------------------------------------------------- the two directions

    def codes(self, x: torch.Tensor) -> torch.Tensor:
        """z = f(P x): (n, genes) -> (n, d), the factors before the linear stage."""
        return self.encoder(self.projection(x))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The final factors u = (f(P x) - centre) @ unmixing: (n, genes) -> (n, d)."""
        return (self.codes(x) - self.centre) @ self.unmixing

    def decode(self, u: torch.Tensor) -> torch.Tensor:
        """h at the final factors u (n, d) -> standardised genes (n, p)."""
        return self.decoder(u @ self.mixing + self.centre)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.codes(x))

    # ---------------------------------------------------------------------------------- the energy

    def moments(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gaussian head: mean m(y) and log-variance log v(y) of each factor, each (n, d)."""
        out = self.condition_encoder(y)
        d = self.latent_dim
        return out[:, :d], out[:, d:].clamp(*LOG_VARIANCE_RANGE)

    def head_natural_parameters(self, y: torch.Tensor) -> torch.Tensor:
        """The head's λ(y): (n, design) -> (n, k·d), the coefficients of T(z) in the log-density (before any linear
        stage; `factor_natural_parameters` gives those of the final factors)."""
        if self.head == "gaussian":
            mean, log_var = self.moments(y)
            precision = torch.exp(-log_var)
            return torch.cat([mean * precision, -0.5 * precision], dim=1)
        return self.log_scale.exp() * self.condition_encoder(y)

    def factor_natural_parameters(self, y: torch.Tensor) -> torch.Tensor:
        """λ(y) of the final factors u: the linear stage's Gaussian model once it is fitted, else the head's."""
        if not bool(self.staged):
            return self.head_natural_parameters(y)
        d = self.latent_dim
        out = y @ self.stage_head_weight + self.stage_head_bias
        precision = torch.exp(-out[:, d:].clamp(*LOG_VARIANCE_RANGE))
        return torch.cat([out[:, :d] * precision, -0.5 * precision], dim=1)

    def log_partition(self, y: torch.Tensor) -> torch.Tensor:
        """A(λ(y)) (n,), so that T(z)ᵀλ − A is a normalised log-density (zero for the energy head)."""
        if self.head == "energy":
            return torch.zeros(len(y), device=y.device)
        mean, log_var = self.moments(y)
        return (0.5 * mean**2 * torch.exp(-log_var) + 0.5 * log_var + 0.5 * math.log(2 * math.pi)).sum(dim=1)

    def log_density(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """ℓ(z_i, y_i) = T(z_i)ᵀλ(y_i) − A(λ(y_i)) for paired rows: (n,)."""
        return (augment(z, self.augmentation) * self.head_natural_parameters(y)).sum(dim=1) - self.log_partition(y)

    def logits(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """ℓ(z_i, y_j) for every pair: (n, n)."""
        return augment(z, self.augmentation) @ self.head_natural_parameters(y).T - self.log_partition(y)[None, :]


def weighted_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    return (values * weights).sum() / weights.sum()


def corrupt(x: torch.Tensor, sigma: float) -> torch.Tensor:
    return x + sigma * torch.randn_like(x) if sigma > 0 else x


def elbo_loss(
    net: IDAENet, x: torch.Tensor, y: torch.Tensor, weights: torch.Tensor, sigma: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(−ELBO per gene, squared reconstruction error per gene): E_q[−log p(x | z)] + KL(q(z | x) ‖ p(z | y)),
    q = N(f(P x̃), diag s²), x̃ = x + σε.

    The decoder's per-gene noise variance is learnt, so the bound weighs each gene by how well the factors
    explain it. Divided by the gene count so the loss reads per gene whatever the panel's size. The squared
    error (reported, not optimised) is that of the decoded posterior draw while training, of the mean in eval.
    """
    mean = net.encode(corrupt(x, sigma) if net.training else x)
    log_var_q = net.posterior_log_var.clamp(*LOG_VARIANCE_RANGE).expand_as(mean)
    z = mean + torch.exp(0.5 * log_var_q) * torch.randn_like(mean) if net.training else mean
    log_noise = net.log_noise.clamp(*LOG_VARIANCE_RANGE)
    error = (x - net.decode(z)) ** 2
    nll = 0.5 * (error * torch.exp(-log_noise) + log_noise + math.log(2 * math.pi)).sum(dim=1)
    prior_mean, log_var_p = net.moments(y)
    kl = 0.5 * (log_var_p - log_var_q + (torch.exp(log_var_q) + (mean - prior_mean) ** 2) * torch.exp(-log_var_p)
                - 1).sum(dim=1)  # fmt: skip
    return weighted_mean(nll + kl, weights) / x.shape[1], weighted_mean(error.detach().mean(dim=1), weights)


def infonce_loss(net: IDAENet, x: torch.Tensor, y: torch.Tensor, weights: torch.Tensor, sigma: float) -> torch.Tensor:
    """InfoNCE over the batch: which clinical state goes with each profile (rows of ℓ(z_i, y_j)).

    With the Gaussian head the optimum is ℓ(z, y) = log p(z | y) up to a term in x alone, which the
    softmax over y cancels; the energy head adds the columns (which profile goes with each state), as
    the seed did. Patients who share a clinical profile make the task ambiguous but not biased.
    """
    logits = net.logits(net.encode(corrupt(x, sigma) if net.training else x), y)
    target = torch.arange(len(x), device=x.device)
    per_sample = F.cross_entropy(logits, target, reduction="none")
    if net.head == "energy":
        per_sample = 0.5 * (per_sample + F.cross_entropy(logits.T, target, reduction="none"))
    return weighted_mean(per_sample, weights)


def dsm_loss(net: IDAENet, x: torch.Tensor, y: torch.Tensor, weights: torch.Tensor, sigma: float) -> torch.Tensor:
    """Conditional denoising score matching: ½‖x̃ + σ²∇ₓ̃ℓ(f(P x̃), y) - x‖² / (σ² · genes).

    Divided by σ² so the loss is on the score's scale, and by the gene count so it reads per gene.
    """
    noisy = (x + sigma * torch.randn_like(x)).requires_grad_(True)
    score = torch.autograd.grad(net.log_density(net.encode(noisy), y).sum(), noisy, create_graph=True)[0]
    denoised = noisy + sigma**2 * score
    per_sample = 0.5 * ((denoised - x) ** 2).mean(dim=1) / sigma**2
    return weighted_mean(per_sample, weights)


def reconstruction_loss(
    net: IDAENet, x: torch.Tensor, weights: torch.Tensor, sigma: float, detach: bool = False
) -> torch.Tensor:
    """Denoising reconstruction ‖h(f(P x̃)) - x‖² per gene. Genes are standardised, so a common σ
    is a corruption scaled to each gene's spread. With `detach` the decoder does not shape the encoder."""
    u = net.encode(corrupt(x, sigma) if net.training else x)
    return weighted_mean(((net.decode(u.detach() if detach else u) - x) ** 2).mean(dim=1), weights)


def layer_table(net: IDAENet) -> list[dict[str, object]]:
    """One row per Linear layer (network, path, input → output width, parameters, spectral norm), then one row per
    parameter outside them (the MLP gains, the per-gene noise, the posterior variances, the head's scale), so that
    the rows sum to every parameter of `net`; "trainable" says whether training moves it."""
    rows = []
    for part in ("encoder", "condition_encoder", "decoder"):
        module = getattr(net, part)
        if part == "condition_encoder":  # one Linear layer is a linear map, more an MLP
            depth = sum(isinstance(layer, nn.Linear) for layer in module.net)
            paths = [("linear" if depth == 1 else "mlp", module.net)]
        else:
            mlp = [("mlp", module.map.net)] if module.map.net is not None else []
            paths = [("linear", [module.map.linear]), *mlp]
        for path, layers in paths:
            layers = list(layers)
            for i, layer in enumerate(layers):
                if not isinstance(layer, nn.Linear):
                    continue
                rows.append({
                    "network": part,
                    "path": path,
                    "shape": f"{layer.in_features} → {layer.out_features}",
                    "parameters": sum(p.numel() for p in layer.parameters()),
                    "spectral_norm": hasattr(layer, "parametrizations"),
                    "activation after": "LeakyReLU(0.2)" if i < len(layers) - 1 else "-",
                    "trainable": True,
                })  # fmt: skip
    in_layers = {id(p) for m in net.modules() if isinstance(m, nn.Linear) for p in m.parameters()}
    meaning = {"encoder.map.gain": "gain of the MLP", "decoder.map.gain": "gain of the MLP",
               "log_scale": "scale of the energy head", "log_noise": "noise variance per gene",
               "posterior_log_var": "posterior variance per factor"}  # fmt: skip
    for name, p in net.named_parameters():
        if id(p) not in in_layers:
            rows.append({"network": name.split(".")[0] if "." in name else "head", "path": meaning.get(name, name),
                         "shape": " × ".join(map(str, p.shape)) or "1", "parameters": p.numel(), "spectral_norm": False,
                         "activation after": "-", "trainable": p.requires_grad})  # fmt: skip
    return rows
