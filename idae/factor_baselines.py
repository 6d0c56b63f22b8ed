"""The factor baselines a user would otherwise pick, set beside idae's factors in the identifiability
benchmarks (MCC): `fit_latent(method, genomic, clinical, latent_dim)` for `LATENT_METHODS`, each returning a
`LatentBaseline` whose `.transform(genomic)` gives (n, d) codes."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.decomposition import PCA, FastICA

from idae.checks import check_clinical, check_genomic, to_float32
from idae.data import Standardizer, most_variable_genes
from idae.design import ClinicalDesign
from idae.errors import IdaeError
from idae.model import mlp
from idae.train import seed_everything

LATENT_METHODS = ("raw", "pca", "ica", "dae", "cebra")

# every option each latent method takes through fit_latent(**options), with its default
LATENT_OPTIONS: dict[str, dict[str, Any]] = {
    "raw": {},
    "pca": {},
    "ica": {"max_iter": 2000, "tol": 1e-4},
    "dae": {"noise": 1.0, "hidden": (256, 256), "max_epochs": 300, "patience": 20, "batch_size": 256,
            "learning_rate": 1e-3, "weight_decay": 1e-4, "val_fraction": 0.15},
    "cebra": {"max_iterations": 1500, "pca_components": 100, "delta": 0.1, "batch_size": 512,
              "learning_rate": 3e-4, "num_hidden_units": 32, "temperature": 1.0, "distance": "cosine",
              "model_architecture": "offset1-model"},
}  # fmt: skip


def _options(method: str, options: dict[str, Any]) -> dict[str, Any]:
    known = LATENT_OPTIONS[method]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise IdaeError(f"unknown options {unknown} for method {method!r}; known: {sorted(known) or 'none'}")
    return {**known, **options}


@dataclasses.dataclass
class LatentBaseline:
    """A fitted latent baseline: genes -> (optional per-gene standardisation) -> `encode` -> (n, d)."""

    method: str
    genes: list[str]
    standardizer: Standardizer | None
    encode: Callable[[np.ndarray], np.ndarray]  # (n, p) float64 -> (n, d)
    model: Any = None  # the fitted sklearn / torch / cebra object, for inspection

    def transform(self, genomic: pd.DataFrame) -> np.ndarray:
        """Codes (n, latent_dim) float64, rows in `genomic`'s order."""
        genomic = check_genomic(genomic, self.genes)
        if self.standardizer is not None:
            genomic = self.standardizer.transform(genomic)
        if self.method in ("dae", "cebra"):  # float32 networks: 1e300 must not become inf
            to_float32(genomic.to_numpy(dtype=np.float64), genomic.index, self.genes, "genomic", "gene")
        return np.asarray(self.encode(genomic.to_numpy(dtype=np.float64)), dtype=np.float64)


def fit_latent(
    method: str,
    genomic: pd.DataFrame,
    clinical: pd.DataFrame | None,
    latent_dim: int,
    seed: int = 0,
    **options: Any,
) -> LatentBaseline:
    """Fit one of `LATENT_METHODS` on genomic (n, p); `clinical` (n, variables) is read by "cebra" only.

    Options and their defaults are listed per method in `LATENT_OPTIONS`.
    """
    if method not in LATENT_METHODS:
        raise IdaeError(f"method must be one of {LATENT_METHODS}, got {method!r}")
    opts = _options(method, options)
    genomic = check_genomic(genomic)
    n, p = genomic.shape
    if isinstance(latent_dim, bool) or not isinstance(latent_dim, int) or latent_dim < 1:
        raise IdaeError(f"latent_dim must be a positive integer, got {latent_dim!r}")
    if latent_dim > p:
        raise IdaeError(f"latent_dim={latent_dim} exceeds the number of genes ({p})")
    if method in ("pca", "ica") and latent_dim > n:
        raise IdaeError(f"latent_dim={latent_dim} exceeds the number of patients ({n}) for method {method!r}")
    if method == "raw":
        genes = most_variable_genes(genomic, latent_dim)
        return LatentBaseline("raw", genes, None, lambda x: x)
    scaler = Standardizer.fit(genomic)
    x = scaler.transform(genomic).to_numpy(dtype=np.float64)
    genes = list(genomic.columns)
    if method == "pca":
        pca = PCA(n_components=latent_dim, random_state=seed).fit(x)
        return LatentBaseline("pca", genes, scaler, pca.transform, pca)
    if method == "ica":
        ica = FastICA(latent_dim, whiten="unit-variance", max_iter=opts["max_iter"], tol=opts["tol"],
                      random_state=seed).fit(x)  # fmt: skip
        return LatentBaseline("ica", genes, scaler, ica.transform, ica)
    if method == "dae":
        net = _fit_dae(x, latent_dim, seed, **opts)
        return LatentBaseline("dae", genes, scaler, lambda a: _encode_dae(net, a), net)
    if clinical is None:
        raise IdaeError("clinical is required for method 'cebra' (its auxiliary variables)")
    return _fit_cebra(x, genes, scaler, check_clinical(clinical, genomic.index), latent_dim, seed, **opts)


class DAE(torch.nn.Module):
    """Plain denoising autoencoder: genes (n, p) -> (n, d) -> genes (n, p); LeakyReLU(0.2), no spectral norm."""

    def __init__(self, n_genes: int, latent_dim: int, hidden: tuple[int, ...] = (256, 256)):
        super().__init__()
        self.encoder = mlp([n_genes, *hidden, latent_dim], spectral=False)
        self.decoder = mlp([latent_dim, *hidden[::-1], n_genes], spectral=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def _fit_dae(
    x: np.ndarray,
    latent_dim: int,
    seed: int,
    *,
    noise: float,
    hidden: tuple[int, ...],
    max_epochs: int,
    patience: int,
    batch_size: int,
    learning_rate: float,
    weight_decay: float,
    val_fraction: float,
) -> DAE:
    """Train a `DAE` on standardised x (n, p): corrupt with N(0, noise²), reconstruct the clean x (MSE).

    Early stopping on a seeded `val_fraction` hold-out (none below 20 patients), scored on one fixed
    corruption draw; the best epoch's weights are kept.
    """
    if not noise > 0:
        raise IdaeError(f"noise must be positive, got {noise!r}")
    seed_everything(seed)
    order = np.random.default_rng(seed).permutation(len(x))
    n_val = max(2, round(val_fraction * len(x))) if val_fraction > 0 and len(x) >= 20 else 0
    x = torch.tensor(x, dtype=torch.float32)
    x_val, x_train = x[order[:n_val]], x[order[n_val:]]
    net = DAE(x.shape[1], latent_dim, tuple(hidden))
    optimiser = torch.optim.AdamW(net.parameters(), lr=learning_rate, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed + 1)
    val_noisy = x_val + noise * torch.randn(x_val.shape, generator=gen)
    best, best_state, since_best = math.inf, copy.deepcopy(net.state_dict()), 0
    for _ in range(max_epochs):
        net.train()
        perm = torch.randperm(len(x_train))
        for start in range(0, len(x_train), batch_size):
            batch = x_train[perm[start : start + batch_size]]
            loss = torch.nn.functional.mse_loss(net(batch + noise * torch.randn_like(batch)), batch)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
        if n_val == 0:
            best_state = copy.deepcopy(net.state_dict())
            continue
        net.eval()
        with torch.no_grad():
            val = torch.nn.functional.mse_loss(net(val_noisy), x_val).item()
        if val < best - 1e-4 * abs(best):
            best, best_state, since_best = val, copy.deepcopy(net.state_dict()), 0
        else:
            since_best += 1
            if since_best >= patience:
                break
    net.load_state_dict(best_state)
    return net.eval()


@torch.no_grad()
def _encode_dae(net: DAE, x: np.ndarray) -> np.ndarray:
    return net.encoder(torch.tensor(x, dtype=torch.float32)).double().numpy()


@contextlib.contextmanager
def _seeded_cebra_sampling(value: int) -> Iterator[None]:
    """Seed the generators of CEBRA's samplers.

    cebra 0.6 seeds each distribution's torch.Generator from the OS (`HasGenerator.__init__` calls
    `generator.seed()`), so its prior draws ignore torch.manual_seed and two fits differ. For the
    duration of the block, new distributions are seeded with `value` instead.
    """
    from cebra.distributions.base import HasGenerator

    original = HasGenerator.__init__

    def seeded(self: Any, device: str, seed: int | None = None) -> None:
        original(self, device=device, seed=seed)
        self._seed = value
        self._generator = torch.Generator(device=device).manual_seed(value)

    HasGenerator.__init__ = seeded
    try:
        yield
    finally:
        HasGenerator.__init__ = original


def _fit_cebra(
    x: np.ndarray,
    genes: list[str],
    scaler: Standardizer,
    clinical: pd.DataFrame,
    latent_dim: int,
    seed: int,
    *,
    max_iterations: int,
    pca_components: int | None,
    delta: float,
    batch_size: int,
    learning_rate: float,
    num_hidden_units: int,
    temperature: float,
    distance: str,
    model_architecture: str,
) -> LatentBaseline:
    """CEBRA-behaviour with the clinical variables as continuous auxiliary variables.

    Input: the standardised genes, reduced to their first `pca_components` principal components
    (fitted on train) when there are more genes than that -- the usual preprocessing for CEBRA on
    expression data, and it keeps the first layer small; None feeds all genes.
    Auxiliary variables: the `ClinicalDesign` (one-hot, standardised numeric, missing indicators;
    missing cells at their expectation). Patients are not a time series, so positives are drawn with
    conditional="delta_normal": the patient nearest to the reference's design plus N(0, delta²)
    noise. Patients with the same design would all map to the first of them (argmin ties), so 64
    tie-break columns of seeded N(0, 1e-4²) noise are appended: they leave the clinical distances
    intact and spread the positives over every patient of the group (within ~3× of uniform).
    Seeded: torch/numpy global seeds plus `_seeded_cebra_sampling`, so a fit is deterministic on CPU.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # cebra 0.6 calls torch.jit.script at import
        import cebra

    design = ClinicalDesign.fit(clinical)
    rng = np.random.default_rng(seed)
    labels = np.hstack([design.transform(clinical), 1e-4 * rng.standard_normal((len(x), 64))]).astype(np.float32)
    pca = None
    if pca_components is not None and x.shape[1] > pca_components:
        k = min(pca_components, len(x))
        pca = PCA(n_components=k, random_state=seed).fit(x)
    inputs = (pca.transform(x) if pca is not None else x).astype(np.float32)
    model = cebra.CEBRA(
        model_architecture=model_architecture, output_dimension=latent_dim, batch_size=min(batch_size, len(x)),
        max_iterations=max_iterations, learning_rate=learning_rate, num_hidden_units=num_hidden_units,
        temperature=temperature, distance=distance, conditional="delta_normal", delta=delta,
        device="cpu", verbose=False,
    )  # fmt: skip
    seed_everything(seed)
    with _seeded_cebra_sampling(seed):
        model.fit(inputs, labels)

    def encode(a: np.ndarray) -> np.ndarray:
        return model.transform((pca.transform(a) if pca is not None else a).astype(np.float32))

    return LatentBaseline("cebra", genes, scaler, encode, model)
