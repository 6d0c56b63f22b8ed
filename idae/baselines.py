"""What a user would otherwise pick: baselines set beside every idae figure.

A. Latent factors (identifiability, MCC): `fit_latent(method, genomic, clinical, latent_dim)` for
   `LATENT_METHODS`, each returning a `LatentBaseline` whose `.transform(genomic)` gives (n, d) codes.
B. Inversion (counterfactual profiles): `fit_inversion(method, genomic, clinical)` for
   `INVERSION_METHODS`, each returning an `InversionBaseline` with the same `predict(genomic,
   clinical, changes)` contract as `IDAE.invert`.
"""

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

from idae.checks import check_clinical, check_genomic, level_name, to_float32
from idae.data import Standardizer, most_variable_genes
from idae.design import ClinicalDesign
from idae.errors import IdaeError
from idae.invert import apply_changes, fit_direct_path, fit_state_path, ridge, shrink
from idae.model import mlp
from idae.train import seed_everything

LATENT_METHODS = ("raw", "pca", "ica", "dae", "cebra")
INVERSION_METHODS = ("no_change", "group_shift", "group_shift_shrunk", "collapse", "linear", "linear_shrunk",
                     "linear_state", "nearest_neighbours")

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


# --------------------------------------------------------------------------------------------------
# input checks shared by both families


def _genomic(genomic: pd.DataFrame, genes: list[str] | None = None) -> pd.DataFrame:
    """A finite float table (n, p); restricted to `genes`, in their order, when given (`data.check_genomic`)."""
    return check_genomic(genomic, genes)


def _clinical(clinical: pd.DataFrame, index: pd.Index, columns: list[str] | None = None) -> pd.DataFrame:
    """The clinical rows of the patients in `index`, in that order (`data.check_clinical`)."""
    return check_clinical(clinical, index, columns)


def _options(method: str, options: dict[str, Any]) -> dict[str, Any]:
    known = LATENT_OPTIONS[method]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise IdaeError(f"unknown options {unknown} for method {method!r}; known: {sorted(known) or 'none'}")
    return {**known, **options}


# --------------------------------------------------------------------------------------------------
# A. latent-factor baselines


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
        genomic = _genomic(genomic, self.genes)
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
    genomic = _genomic(genomic)
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
    return _fit_cebra(x, genes, scaler, _clinical(clinical, genomic.index), latent_dim, seed, **opts)


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


# --------------------------------------------------------------------------------------------------
# B. inversion baselines


class InversionBaseline:
    """x' for a change of clinical state, without a latent model. `fit` then `predict`."""

    method = ""

    def fit(self, genomic: pd.DataFrame, clinical: pd.DataFrame) -> InversionBaseline:
        """Fit on genomic (n, p) and clinical (n, variables; NaN = missing), matched on the index."""
        genomic = _genomic(genomic)
        if len(genomic) < 2:
            raise IdaeError(f"fit needs at least 2 patients, got {len(genomic)}")
        self.genes = list(genomic.columns)
        self.x = genomic
        self.clinical = _clinical(clinical, genomic.index)
        self.design = ClinicalDesign.fit(self.clinical)
        self.mean = genomic.to_numpy().mean(axis=0)
        # per-gene least-squares slope on each numeric column, over the patients where it is observed
        self.slopes: dict[str, np.ndarray] = {}
        for col in self.design.mean:
            seen = self.clinical[col].notna().to_numpy()
            y = self.clinical[col].to_numpy(dtype=float)[seen]
            xs = genomic.to_numpy()[seen]
            yc = y - y.mean()
            self.slopes[col] = yc @ (xs - xs.mean(axis=0)) / max(float(yc @ yc), 1e-12)
        return self

    def predict(
        self, genomic: pd.DataFrame, clinical: pd.DataFrame, changes: dict[str, Any] | pd.DataFrame
    ) -> pd.DataFrame:
        """Predicted profiles (n, p) with `genomic`'s index and the fitted genes; `changes` as in `IDAE.invert`."""
        if not hasattr(self, "genes"):
            raise IdaeError(f"this {self.method} baseline is not fitted yet: call fit(genomic, clinical)")
        genomic = _genomic(genomic, self.genes)
        clinical = _clinical(clinical, genomic.index, self.design.columns)
        new = apply_changes(clinical, changes, self.design.columns)
        changed = list(changes) if isinstance(changes, dict) else list(changes.columns)
        for col in changed:
            if col in self.design.levels:
                unseen = sorted(set(_levels(new[col]).dropna()) - set(self.design.levels[col]))
                if unseen:
                    raise IdaeError(
                        f"cannot change {col!r} to level(s) {unseen}: never seen in training "
                        f"(known levels {self.design.levels[col]})"
                    )
            elif pd.to_numeric(new[col], errors="coerce").isna().gt(new[col].isna()).any():
                raise IdaeError(f"cannot change numeric column {col!r} to a non-number: {_changes_of(changes, col)}")
        out = self._predict(genomic.to_numpy(), clinical, new, changed)
        return pd.DataFrame(out, index=genomic.index, columns=self.genes)

    def _predict(self, x: np.ndarray, old: pd.DataFrame, new: pd.DataFrame, changed: list[str]) -> np.ndarray:
        raise NotImplementedError

    # shared by group_shift and collapse

    def _group_means(self, table: pd.DataFrame, columns: list[str]) -> np.ndarray:
        """Training mean of the genes in each row's group (n, p); overall mean where a cell is missing.

        A group is a combination of levels of the categorical `columns`; none -> overall mean.
        """
        out = np.tile(self.mean, (len(table), 1))
        if not columns:
            return out
        train = pd.DataFrame({c: _levels(self.clinical[c]) for c in columns}, index=self.clinical.index)
        train = train.dropna()
        means = self.x.loc[train.index].groupby([train[c] for c in columns]).mean()
        rows = {(k,) if len(columns) == 1 else k: v for k, v in zip(means.index, means.to_numpy(), strict=True)}
        keys = pd.DataFrame({c: _levels(table[c]) for c in columns}, index=table.index)
        for i, key in enumerate(keys.itertuples(index=False, name=None)):
            if any(pd.isna(k) for k in key):
                continue
            if key not in rows:
                combo = ", ".join(f"{c}={k}" for c, k in zip(columns, key, strict=True))
                raise IdaeError(f"no training patient has {combo}: its group mean is undefined")
            out[i] = rows[key]
        return out

    def _numeric_shift(self, old: pd.DataFrame, new: pd.DataFrame, columns: list[str]) -> np.ndarray:
        """Σ_c slope_c · (new_c − old_c) over numeric `columns` (n, p); a missing old value counts as the mean."""
        out = np.zeros((len(old), len(self.genes)))
        for col in columns:
            before = old[col].astype(float).fillna(self.design.mean[col])
            after = pd.to_numeric(new[col], errors="coerce").astype(float).fillna(before)
            out += np.outer((after - before).to_numpy(), self.slopes[col])
        return out

    def _split(self, changed: list[str]) -> tuple[list[str], list[str]]:
        return [c for c in changed if c in self.design.levels], [c for c in changed if c not in self.design.levels]


def _changes_of(changes: dict[str, Any] | pd.DataFrame, col: str) -> list[Any]:
    return [changes[col]] if isinstance(changes, dict) else changes[col].dropna().unique()[:3].tolist()


def _levels(values: pd.Series) -> pd.Series:
    """Level names as `ClinicalDesign` spells them (1.0 -> "1"), NaN kept."""
    return values.astype(object).map(lambda v: v if pd.isna(v) else level_name(v))


class NoChange(InversionBaseline):
    """x' = x."""

    method = "no_change"

    def _predict(self, x, old, new, changed):
        return x.copy()


class GroupShift(InversionBaseline):
    """x' = x + mean(genes | target group) − mean(genes | own group), then + slope·Δ for numeric changes.

    Groups are the level combinations of the changed categorical columns; a patient whose own (or
    target) value is missing uses the overall training mean for that group. A changed numeric column
    moves each gene by its least-squares slope on that column times the change.
    """

    method = "group_shift"

    def _predict(self, x, old, new, changed):
        cat, num = self._split(changed)
        return x + self._group_means(new, cat) - self._group_means(old, cat) + self._numeric_shift(old, new, num)


class Collapse(InversionBaseline):
    """x' = mean(genes | target group) (+ slope·(target − training mean) for numeric changes): no patient detail."""

    method = "collapse"

    def _predict(self, x, old, new, changed):
        cat, num = self._split(changed)
        at_mean = pd.DataFrame({c: self.design.mean[c] for c in num}, index=old.index)
        return self._group_means(new, cat) + self._numeric_shift(at_mean, new, num)


class Linear(InversionBaseline):
    """x' = x + (D(y') − D(y)) B, with B (design, p) the per-gene ridge fit of genes on the full design D.

    D is `ClinicalDesign` (one-hot, standardised numeric, missing indicators; missing at expectation).
    """

    method = "linear"

    def __init__(self, alpha: float = 1e-3):
        self.alpha = alpha

    def fit(self, genomic: pd.DataFrame, clinical: pd.DataFrame) -> Linear:
        super().fit(genomic, clinical)
        design = self.design.transform(self.clinical).astype(float)
        self.coef = ridge(design, self.x.to_numpy(), self.alpha)[1:]  # drop the intercept row
        return self

    def _predict(self, x, old, new, changed):
        delta = self.design.transform(new).astype(float) - self.design.transform(old).astype(float)
        return x + delta @ self.coef


def _whitened_loadings(x: np.ndarray, mean: np.ndarray, components: int) -> np.ndarray:
    """(p, k) loadings whose scores (x - mean) @ loadings are the first k ≤ `components` principal components of
    x (n, p), each of unit variance: the patient state of `linear_state` and `nearest_neighbours`."""
    k = min(components, len(x) - 1, x.shape[1])
    _, sv, vt = np.linalg.svd(x - mean, full_matrices=False)
    return vt[:k].T / sv[:k] * np.sqrt(len(x))


class GroupShiftShrunk(InversionBaseline):
    """`group_shift` with each gene's difference of group means shrunk by empirical Bayes across genes
    (`idae.invert.shrink`; its standard error from the two groups' variances), so that genes whose difference
    is within its noise do not move. Numeric changes as in `group_shift`."""

    method = "group_shift_shrunk"

    def _predict(self, x, old, new, changed):
        cat, num = self._split(changed)
        out = x + self._numeric_shift(old, new, num)
        if not cat:
            return out
        train = pd.DataFrame({c: _levels(self.clinical[c]) for c in cat}, index=self.clinical.index).dropna()
        groups = {k if isinstance(k, tuple) else (k,): block.to_numpy()
                  for k, block in self.x.loc[train.index].groupby([train[c] for c in cat], observed=True)}  # fmt: skip
        keys = [pd.DataFrame({c: _levels(t[c]) for c in cat}, index=t.index) for t in (old, new)]
        shifts: dict[tuple, np.ndarray] = {}
        plain = self._group_means(new, cat) - self._group_means(old, cat)
        for i, (a, b) in enumerate(zip(*(k.itertuples(index=False, name=None) for k in keys), strict=True)):
            if a == b or a not in groups or b not in groups or len(groups[a]) < 2 or len(groups[b]) < 2:
                out[i] += plain[i]  # a missing value or a group too small for a standard error: unshrunk
                continue
            if (a, b) not in shifts:
                ga, gb = groups[a], groups[b]
                se = np.sqrt(ga.var(axis=0, ddof=1) / len(ga) + gb.var(axis=0, ddof=1) / len(gb))
                shifts[(a, b)] = shrink(gb.mean(axis=0) - ga.mean(axis=0), se)
            out[i] += shifts[(a, b)]
        return out


class LinearShrunk(Linear):
    """`linear` by least squares with each design column's per-gene effects shrunk by empirical Bayes across
    genes (`idae.invert.fit_direct_path`, the same estimator as idae's direct path, here on the genes)."""

    method = "linear_shrunk"

    def fit(self, genomic: pd.DataFrame, clinical: pd.DataFrame) -> LinearShrunk:
        InversionBaseline.fit(self, genomic, clinical)
        design = self.design.transform(self.clinical).astype(float)
        self.coef, self.null = fit_direct_path(design, self.x.to_numpy(), self.design.contrast_columns())
        return self


class LinearState(LinearShrunk):
    """Per-gene regression on the design and on design × patient state, x' = x + ΔD B + Σ_j ΔD_j (s·w_j) c_j,
    where the state s is the patient's first `components` whitened principal components (PCA of the training
    genes). B (and which genes each column moves) from `linear_shrunk`; the directions w_j and slopes c_j from
    `idae.invert.fit_state_path` on the genes, the same estimator as idae's state path."""

    method = "linear_state"

    def __init__(self, components: int = 6):
        self.components = components

    def fit(self, genomic: pd.DataFrame, clinical: pd.DataFrame) -> LinearState:
        super().fit(genomic, clinical)  # B, as `linear_shrunk`
        x = self.x.to_numpy()
        design = self.design.transform(self.clinical).astype(float)
        self.loadings = _whitened_loadings(x, self.mean, self.components)
        keep = self.design.contrast_columns()
        self.directions, self.slopes = fit_state_path(design, self.state(x), x, keep, self.null)
        return self

    def state(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) @ self.loadings

    def _predict(self, x, old, new, changed):
        moved = self.design.transform(new).astype(float) - self.design.transform(old).astype(float)
        return x + moved @ self.coef + (moved * (self.state(x) @ self.directions.T)) @ self.slopes


class NearestNeighbours(InversionBaseline):
    """x' = the mean profile of the `k` training patients of the target group (the level combination of the
    changed categorical columns) nearest to the patient in the space of the first `components` whitened
    principal components. Categorical changes only."""

    method = "nearest_neighbours"

    def __init__(self, k: int = 5, components: int = 6):
        self.k, self.components = k, components

    def fit(self, genomic: pd.DataFrame, clinical: pd.DataFrame) -> NearestNeighbours:
        super().fit(genomic, clinical)
        self.loadings = _whitened_loadings(self.x.to_numpy(), self.mean, self.components)
        return self

    def _predict(self, x, old, new, changed):
        cat, num = self._split(changed)
        if num:
            raise IdaeError(f"nearest_neighbours matches on categorical columns only; cannot change numeric {num}")
        train = pd.DataFrame({c: _levels(self.clinical[c]) for c in cat}, index=self.clinical.index)
        train_codes = (self.x.to_numpy() - self.mean) @ self.loadings
        codes = (x - self.mean) @ self.loadings
        target = pd.DataFrame({c: _levels(new[c]) for c in cat}, index=new.index)
        out = x.copy()
        for i, key in enumerate(target.itertuples(index=False, name=None)):
            if any(pd.isna(v) for v in key):
                continue  # no target group: the patient is left as they are
            pool = np.flatnonzero((train == pd.Series(key, index=cat)).all(axis=1).to_numpy())
            if not len(pool):
                combo = ", ".join(f"{c}={v}" for c, v in zip(cat, key, strict=True))
                raise IdaeError(f"no training patient has {combo}: nothing to match to")
            nearest = pool[np.argsort(((train_codes[pool] - codes[i]) ** 2).sum(axis=1))[: self.k]]
            out[i] = self.x.to_numpy()[nearest].mean(axis=0)
        return out


_INVERSION = {"no_change": NoChange, "group_shift": GroupShift, "group_shift_shrunk": GroupShiftShrunk,
              "collapse": Collapse, "linear": Linear, "linear_shrunk": LinearShrunk, "linear_state": LinearState,
              "nearest_neighbours": NearestNeighbours}  # fmt: skip


def fit_inversion(method: str, genomic: pd.DataFrame, clinical: pd.DataFrame) -> InversionBaseline:
    """Fit one of `INVERSION_METHODS` on genomic (n, p) and clinical (n, variables)."""
    if method not in INVERSION_METHODS:
        raise IdaeError(f"method must be one of {INVERSION_METHODS}, got {method!r}")
    return _INVERSION[method]().fit(genomic, clinical)
