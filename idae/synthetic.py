"""Synthetic data with a known ground truth: latent sources, invertible mixing and true counterfactuals.

`make_cohort`, pandas tables indexed by patient ID: a breast-cancer-like cohort. Clinical covariates (ER, grade,
node, age) modulate the mean and the variance of d conditionally independent Gaussian sources, which an invertible
LeakyReLU MLP mixes into p genes plus per-gene noise. Exogenous noise is stored, so per-patient counterfactuals are
exact. The mixing and the parameter checks are shared with the segment simulation (`idae.segments`).

Model (ICE-BeeM Theorem 1 / iVAE): p(s | y) = prod_j N(s_j; mu_j(y), sigma_j(y)^2), x = f(s) (+ noise), f injective.
Identifiability needs the natural parameters (mu / sigma^2, -1 / 2 sigma^2) to vary across conditions y.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from idae.errors import IdaeError

NEG_SLOPE = 0.2  # LeakyReLU negative slope of the mixing MLP
LEVELS: dict[str, tuple[str, ...]] = {"er": ("neg", "pos"), "grade": ("1", "2", "3"), "node": ("neg", "pos")}
CLINICAL_COLUMNS = ("er", "grade", "node", "age")
AGE_MEAN, AGE_SD = 58.0, 12.0  # years
# coding of the true clinical state that drives the sources: main effects plus two interactions with ER
FEATURES = ("er_pos", "grade2", "grade3", "node_pos", "age_z", "er_pos:grade3", "er_pos:age_z")
N_REFERENCE = 1000  # patients of a seed's reference cohort, used to scale effects and gene noise (independent of n)


# --------------------------------------------------------------------------------------------------
# parameter checks


def check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise IdaeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise IdaeError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_float(name: str, value: Any, low: float, high: float, high_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise IdaeError(f"{name} must be a finite number, got {value!r}")
    if value < low or value > high or (high_open and value == high):
        interval = f"[{low}, {high})" if high_open else f"[{low}, {high}]"
        raise IdaeError(f"{name} must lie in {interval}, got {value}")
    return float(value)


def patient_ids(prefix: str, n: int, width: int = 4) -> list[str]:
    width = max(width, len(str(n - 1)))
    return [f"{prefix}{i:0{width}d}" for i in range(n)]


# --------------------------------------------------------------------------------------------------
# invertible LeakyReLU mixing


def leaky_relu(h: np.ndarray, slope: float = NEG_SLOPE) -> np.ndarray:
    return np.where(h > 0, h, slope * h)


def random_mixing(
    d: int, p: int, depth: int, rng: np.random.Generator, bias_sd: float = 0.0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Layers (W, b) of an injective MLP R^d -> R^p: `depth` affine maps with LeakyReLU between them.

    Layer 1 is W (d, p) = diag(u) Q^T sqrt(p/d), Q (p, d) with orthonormal columns: full column rank.
    Layers 2..depth are W (p, p) = diag(u) Q^T, Q orthogonal. u ~ U(0.5, 2), so each layer's condition
    number is at most 4 (the well-conditioned mixing of TCL / iVAE, here by construction, not rejection).
    Hidden biases ~ N(0, bias_sd^2); the last layer has no bias. depth=1 is a linear map.
    """
    layers = []
    for layer in range(depth):
        d_in = d if layer == 0 else p
        q, r = np.linalg.qr(rng.normal(size=(p, d_in)))
        q = q * np.sign(np.diag(r))  # Haar-distributed orthonormal columns
        u = rng.uniform(0.5, 2.0, size=d_in)
        w = u[:, None] * q.T * (math.sqrt(p / d) if layer == 0 else 1.0)
        b = rng.normal(0.0, bias_sd, size=p) if layer < depth - 1 else np.zeros(p)
        layers.append((w, b))
    return layers


def apply_mixing(s: np.ndarray, layers: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """(n, d) sources -> (n, p) mixed values; LeakyReLU between layers, none after the last."""
    h = s @ layers[0][0] + layers[0][1]
    for w, b in layers[1:]:
        h = leaky_relu(h) @ w + b
    return h


# --------------------------------------------------------------------------------------------------
# clinical cohort


def _sample_clinical(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """True, complete clinical values for n patients (columns er, grade, node, age; levels as strings)."""
    er = rng.random(n) < 0.7
    # ER-negative tumours are mostly high grade (as in gse1992 / gse4335, where no ER- tumour is grade 1)
    p_grade = np.where(er[:, None], [0.25, 0.50, 0.25], [0.05, 0.30, 0.65])
    grade = 1 + (rng.random(n)[:, None] > np.cumsum(p_grade, axis=1)).sum(axis=1)
    node = rng.random(n) < 0.30 + 0.10 * (grade == 3)
    age = np.clip(rng.normal(AGE_MEAN, AGE_SD, size=n), 20.0, 95.0)
    return pd.DataFrame(
        {
            "er": pd.Categorical(np.where(er, "pos", "neg"), categories=list(LEVELS["er"])),
            "grade": pd.Categorical(grade.astype(str), categories=list(LEVELS["grade"])),
            "node": pd.Categorical(np.where(node, "pos", "neg"), categories=list(LEVELS["node"])),
            "age": age.astype(float),
        }
    )


def _features(clinical: pd.DataFrame) -> np.ndarray:
    """(n, 7) coding of the true clinical state, columns as in FEATURES (one-hot / standardised age)."""
    er = (clinical["er"].astype(str) == "pos").to_numpy(float)
    grade = clinical["grade"].astype(str).to_numpy()
    age_z = (clinical["age"].to_numpy(float) - AGE_MEAN) / AGE_SD
    g3 = (grade == "3").astype(float)
    node = (clinical["node"].astype(str) == "pos").to_numpy(float)
    return np.column_stack([er, (grade == "2").astype(float), g3, node, age_z, er * g3, er * age_z])


@dataclasses.dataclass
class _CohortParams:
    centre: np.ndarray  # (7,) mean feature vector of the reference cohort
    mean_effects: np.ndarray  # (7, d)
    logsd_effects: np.ndarray  # (7, d)
    logsd_base: np.ndarray  # (d,)
    layers: list[tuple[np.ndarray, np.ndarray]]
    baseline: np.ndarray  # (p,) gene expression level
    gene_noise: np.ndarray  # (n, p) the added per-gene noise, absolute units


def _source_moments(clinical: pd.DataFrame, par: _CohortParams) -> tuple[np.ndarray, np.ndarray]:
    """(n, d) mean and (n, d) sd of the sources given true clinical values."""
    f = _features(clinical) - par.centre
    return f @ par.mean_effects, np.exp(par.logsd_base + f @ par.logsd_effects)


def _draw_effects(d: int, rng: np.random.Generator) -> tuple[_CohortParams, np.ndarray]:
    """Random clinical effects on the sources' mean and log sd; returns params (no mixing yet), explained share."""
    k = len(FEATURES)
    # node is weak on purpose: in real breast-cancer cohorts it carries almost no expression signal
    mean_scale = np.array([1.0, 0.6, 0.9, 0.25, 0.5, 0.5, 0.3])
    sd_scale = np.array([0.35, 0.2, 0.3, 0.1, 0.15, 0.15, 0.1])
    mean_fx = rng.normal(size=(k, d)) * mean_scale[:, None] * (rng.random((k, d)) < 0.5)
    sd_fx = rng.normal(size=(k, d)) * sd_scale[:, None] * (rng.random((k, d)) < 0.5)
    # ER moves the mean and the variance of at least half of the sources (at least 2 when d >= 2)
    n_er = max(min(2, d), math.ceil(d / 2))
    er_src = rng.choice(d, size=n_er, replace=False)
    mean_fx[0, er_src] = rng.choice([-1.0, 1.0], size=n_er) * rng.uniform(0.8, 1.5, size=n_er)
    sd_fx[0, er_src] = rng.choice([-1.0, 1.0], size=n_er) * rng.uniform(0.25, 0.5, size=n_er)
    # every source gets a sizeable grade effect on its mean or variance when ER leaves it alone
    for j in range(d):
        if j not in er_src:
            mean_fx[2, j] = rng.choice([-1.0, 1.0]) * rng.uniform(0.6, 1.2)
            sd_fx[2, j] = rng.choice([-1.0, 1.0]) * rng.uniform(0.2, 0.4)
    logsd_base = rng.normal(0.0, 0.2, size=d)
    # scale each source's mean effects so the clinical state explains a share rho_j of its variance
    ref = _features(_sample_clinical(N_REFERENCE, rng))
    centre = ref.mean(axis=0)
    mu, sd = (ref - centre) @ mean_fx, np.exp(logsd_base + (ref - centre) @ sd_fx)
    rho = rng.uniform(0.3, 0.6, size=d)
    mean_fx *= np.sqrt(rho / (1 - rho) * (sd**2).mean(axis=0) / mu.var(axis=0))
    par = _CohortParams(centre, mean_fx, sd_fx, logsd_base, [], np.zeros(0), np.zeros((0, 0)))
    mu = (ref - centre) @ mean_fx
    explained = mu.var(axis=0) / (mu.var(axis=0) + (sd**2).mean(axis=0))
    return par, explained


@dataclasses.dataclass
class SyntheticCohort:
    """A synthetic clinical-genomic cohort with its ground truth.

    clinical (n, 4) with missing cells, clinical_true (n, 4) complete; genomic (n, p) genes "G0000"...;
    sources (n, d) "s0"...; exogenous (n, d) the standard-normal noise eps of s = mu(y) + sd(y) * eps;
    mean_effects / logsd_effects (7 features, d) the clinical effects on each source's mean / log sd;
    explained (d,) share of each source's variance explained by the clinical state (reference cohort).
    """

    clinical: pd.DataFrame
    clinical_true: pd.DataFrame
    genomic: pd.DataFrame
    sources: pd.DataFrame
    exogenous: pd.DataFrame
    mean_effects: pd.DataFrame
    logsd_effects: pd.DataFrame
    explained: pd.Series
    params: _CohortParams = dataclasses.field(repr=False)

    def mix(self, sources: np.ndarray | pd.DataFrame) -> np.ndarray:
        """(m, d) sources -> (m, p) noise-free gene values (the true mixing f, gene baseline included)."""
        s = np.asarray(sources, dtype=float)
        if s.ndim != 2 or s.shape[1] != self.sources.shape[1]:
            raise IdaeError(f"sources: expected shape (m, {self.sources.shape[1]}), got {s.shape}")
        return apply_mixing(s, self.params.layers) + self.params.baseline

    def source_moments(
        self, changes: Mapping[str, Any] | pd.DataFrame | None = None
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Mean and sd (each n × d) of the sources given the true clinical values, after `changes` if given."""
        clinical = self.clinical_true if changes is None else self._changed(changes)[0]
        mu, sd = _source_moments(clinical, self.params)
        return (
            pd.DataFrame(mu, index=clinical.index, columns=self.sources.columns),
            pd.DataFrame(sd, index=clinical.index, columns=self.sources.columns),
        )

    def counterfactual_sources(self, changes: Mapping[str, Any] | pd.DataFrame) -> pd.DataFrame:
        """Sources (n × d) under changed true clinical values, with the same exogenous noise eps.

        `changes`: {column: value for every patient} or a DataFrame (index within the cohort's, columns a
        subset of er/grade/node/age, NaN = keep). Only the named values change (no propagation er -> grade).
        """
        new, changed = self._changed(changes)
        out = self.sources.to_numpy().copy()
        if changed.any():
            mu, sd = _source_moments(new[changed], self.params)
            out[changed] = mu + sd * self.exogenous.to_numpy()[changed]
        return pd.DataFrame(out, index=self.sources.index, columns=self.sources.columns)

    def counterfactual(self, changes: Mapping[str, Any] | pd.DataFrame) -> pd.DataFrame:
        """Genomic profiles (n × p) under changed clinical values: same eps, same per-gene noise.

        Patients whose clinical values do not change keep their observed profile bit for bit.
        """
        new, changed = self._changed(changes)
        out = self.genomic.to_numpy().copy()
        if changed.any():
            mu, sd = _source_moments(new[changed], self.params)
            s = mu + sd * self.exogenous.to_numpy()[changed]
            out[changed] = self.mix(s) + self.params.gene_noise[changed]
        return pd.DataFrame(out, index=self.genomic.index, columns=self.genomic.columns)

    def _changed(self, changes: Mapping[str, Any] | pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
        """True clinical table after `changes`, and a boolean (n,) mask of patients whose values changed."""
        true = self.clinical_true
        new = true.copy()
        if isinstance(changes, pd.DataFrame):
            unknown = changes.index.difference(true.index)
            if len(unknown):
                raise IdaeError(f"changes: unknown patients {list(unknown[:5])} ({len(unknown)} in all)")
            items = [(col, changes[col]) for col in changes.columns]
        elif isinstance(changes, Mapping):
            items = list(changes.items())
        else:
            raise IdaeError(f"changes: expected a dict or a DataFrame, got {type(changes).__name__}")
        for col, value in items:
            if col not in CLINICAL_COLUMNS:
                raise IdaeError(f"changes: unknown clinical column {col!r} (known: {', '.join(CLINICAL_COLUMNS)})")
            if isinstance(value, pd.Series):
                value = value.astype(object).where(value.notna(), None).reindex(true.index)
                keep = value.isna().to_numpy()
                values = [_clinical_value(col, v) for v in value[~keep]]
                column = np.array(new[col].astype(object), dtype=object)
                column[~keep] = values
            else:
                if not np.isscalar(value):
                    raise IdaeError(f"changes[{col!r}]: expected one value for every patient, got {value!r}")
                column = np.full(len(true), _clinical_value(col, value), dtype=object)
            new[col] = column.astype(float) if col == "age" else pd.Categorical(column, categories=list(LEVELS[col]))
        changed = np.zeros(len(true), dtype=bool)
        for col in CLINICAL_COLUMNS:
            changed |= (new[col] != true[col]).to_numpy()
        return new, changed


def _clinical_value(col: str, value: Any) -> Any:
    if col == "age":
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise IdaeError(f"changes[{col!r}]: age must be a finite number of years, got {value!r}")
        return float(value)
    level = str(int(value)) if isinstance(value, numbers.Real) and float(value).is_integer() else str(value)
    if isinstance(value, bool) or level not in LEVELS[col]:
        raise IdaeError(f"changes[{col!r}]: invalid level {value!r} (levels: {', '.join(LEVELS[col])})")
    return level


def _missing_mask(n: int, k: int, share: float, rng: np.random.Generator) -> np.ndarray:
    """(n, k) boolean mask with round(share * n * k) True cells at random, never a whole row."""
    n_missing = round(share * n * k)
    anchor = rng.integers(k, size=n)  # one cell per row that stays observed
    candidates = np.flatnonzero(np.arange(k)[None, :] != anchor[:, None])
    mask = np.zeros(n * k, dtype=bool)
    mask[rng.choice(candidates, size=min(n_missing, len(candidates)), replace=False)] = True
    return mask.reshape(n, k)


def make_cohort(
    n_samples: int = 1000,
    n_genes: int = 500,
    latent_dim: int = 6,
    depth: int = 3,
    noise: float = 0.1,
    missing: float = 0.1,
    seed: int = 0,
) -> SyntheticCohort:
    """A breast-cancer-like clinical-genomic cohort with known sources, mixing and counterfactuals.

    Clinical (true): er neg/pos (~70% pos), grade 1/2/3 (ER- tends to grade 3), node neg/pos, age ~ N(58, 12)
    years clipped to [20, 95]. Sources s_j = mu_j(y) + sd_j(y) * eps_j, eps ~ N(0, 1), with mu_j and log sd_j
    linear in the coding FEATURES of y (main effects + er:grade3, er:age); ER moves >= half of the sources,
    every source depends on y through its mean and its variance, and y explains 30-60% of each source's
    variance. Genes x = f(s) + noise: f an injective LeakyReLU(0.2) MLP of `depth` layers (see
    `random_mixing`) plus a per-gene baseline ~ N(6, 1.5^2); the noise is N(0, (noise * sd_g)^2) with sd_g
    the gene's clean sd in a reference cohort. A share `missing` of clinical cells is NaN (never a whole row).
    Parameters (effects, mixing, noise level) depend on the seed only, not on n_samples.

    Parameters
    ----------
    n_samples, n_genes, latent_dim : int
        patients, genes and sources d
    depth : int
        layers of the mixing MLP (1: linear)
    noise : float
        per-gene noise sd as a share of the gene's clean sd
    missing : float
        share of clinical cells set to NaN, in [0, 1)
    seed : int
        draws the effects, the mixing, the noise and the patients

    Returns
    -------
    SyntheticCohort
        `clinical`, `genomic`, the true `sources`, and `counterfactual(changes)` for each patient's exact profile
        under other clinical values

    Examples
    --------
    >>> cohort = make_cohort(n_samples=2000, n_genes=600, latent_dim=6, depth=3, missing=0.05, seed=0)
    >>> truth = cohort.counterfactual({"er": "pos"})
    """
    n = check_int("n_samples", n_samples, 1)
    d = check_int("latent_dim", latent_dim, 1)
    p = check_int("n_genes", n_genes, 1)
    if p < d:
        raise IdaeError(f"n_genes ({p}) must be >= latent_dim ({d}) for the mixing to be injective")
    depth = check_int("depth", depth, 1)
    noise = check_float("noise", noise, 0.0, math.inf)
    k = len(CLINICAL_COLUMNS)
    missing = check_float("missing", missing, 0.0, 1.0, high_open=True)
    if missing > (k - 1) / k:
        raise IdaeError(f"missing must be <= {(k - 1) / k} so that every patient keeps a clinical value")
    seed = check_int("seed", seed, 0)
    rng_clin, rng_fx, rng_eps, rng_mix, rng_noise, rng_miss = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(6)
    )

    par, explained = _draw_effects(d, rng_fx)
    par.layers = random_mixing(d, p, depth, rng_mix, bias_sd=0.5)
    par.baseline = rng_mix.normal(6.0, 1.5, size=p)
    # per-gene noise sd relative to the gene's clean sd in a reference cohort (so it does not depend on n)
    ref = _sample_clinical(N_REFERENCE, rng_mix)
    mu, sd = _source_moments(ref, par)
    gene_sd = apply_mixing(mu + sd * rng_mix.normal(size=mu.shape), par.layers).std(axis=0)

    patients = patient_ids("P", n)
    true = _sample_clinical(n, rng_clin)
    true.index = pd.Index(patients, name="patient")
    eps = rng_eps.normal(size=(n, d))
    par.gene_noise = noise * gene_sd * rng_noise.normal(size=(n, p))
    mu, sd = _source_moments(true, par)
    s = mu + sd * eps
    x = apply_mixing(s, par.layers) + par.baseline + par.gene_noise

    clinical = true.copy()
    mask = _missing_mask(n, k, missing, rng_miss)
    for j, col in enumerate(CLINICAL_COLUMNS):
        clinical[col] = clinical[col].mask(mask[:, j])
    src_cols = [f"s{j}" for j in range(d)]
    return SyntheticCohort(
        clinical=clinical,
        clinical_true=true,
        genomic=pd.DataFrame(x, index=true.index, columns=patient_ids("G", p)),
        sources=pd.DataFrame(s, index=true.index, columns=src_cols),
        exogenous=pd.DataFrame(eps, index=true.index, columns=src_cols),
        mean_effects=pd.DataFrame(par.mean_effects, index=list(FEATURES), columns=src_cols),
        logsd_effects=pd.DataFrame(par.logsd_effects, index=list(FEATURES), columns=src_cols),
        explained=pd.Series(explained, index=src_cols, name="explained"),
        params=par,
    )
