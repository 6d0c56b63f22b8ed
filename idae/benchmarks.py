"""The identifiability benchmarks: fixed splits of synthetic data with known sources, and one scoring path.

Every method, idae's variants and the baselines, goes through `score_method`: fit on the training split,
encode the held-out split, and score strong and weak MCC against the true sources, raw and after the same
conditional linear stage (`idae.unmixing`, fitted on the training codes and the clinical design). The
notebook and `scripts/identifiability_sweep.py` both use it, so a table and its re-measurement agree.

Settings:
- `cohort_split`: `make_cohort` with 3 mixing layers, 600 genes, 6 sources, 5% missing clinical cells,
  the first 1,500 patients for training and 500 held out (the harder setting; `n_train=800`, 500 genes and
  10% missing give the report's lighter default cohort).
- `segments_split`: the ICE-BeeM segment simulation (20 segments, 5 sources, depth 4), 80% / 20% at random.
- `processed_split`: the processed real cohort (notebook 01), its training patients against the held-out ones.
  With no true sources, `stability` scores fits against each other: across seeds and across resampled
  training sets.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from typing import Any

import numpy as np
import pandas as pd

from idae import unmixing
from idae.data import Prepared, subsample
from idae.design import ClinicalDesign
from idae.errors import IdaeError
from idae.estimator import IDAE
from idae.factor_baselines import LATENT_METHODS, fit_latent
from idae.metrics import cross_seed_mcc, mcc, off_diagonal, weak_mcc
from idae.segments import make_segments
from idae.synthetic import make_cohort

# The seed model as it was first built: DSM on every gene with the free energy head over [z, z², 0.1z³],
# heavy corruption, a spectral-normalised condition MLP, decoder input noise, no linear stage.
SEED_MODEL = {"objective": "dsm", "head": "energy", "augmentation": ("z", "z2", "z3"), "components_per_factor": 0,
              "noise": 2.0, "decoder_noise": 0.05, "condition_hidden": (64, 64), "linear_stage": False,
              "max_epochs": 300}  # fmt: skip

# name -> (method, options, what changes from the default)
VARIANTS: dict[str, tuple[str, dict, str]] = {
    "default": ("idae", {}, "iVAE objective + InfoNCE term (weight 50), Gaussian head, 2d whitened components, SN "
                "encoder, linear stage"),
    "no linear stage": ("idae", {"linear_stage": False}, "linear stage"),
    "input: every gene": ("idae", {"components_per_factor": 0}, "input whitening"),
    "input: d components": ("idae", {"components_per_factor": 1}, "input whitening"),
    "input: 4d components": ("idae", {"components_per_factor": 4}, "input whitening"),
    "linear encoder and decoder": ("idae", {"encoder_hidden": (), "decoder_hidden": ()}, "nonlinearity"),
    "no spectral norm": ("idae", {"spectral_norm": False}, "spectral norm"),
    "input corruption 0.25": ("idae", {"noise": 0.25}, "denoising corruption"),
    "input corruption 0.5": ("idae", {"noise": 0.5}, "denoising corruption"),
    "component corruption 0.05": ("idae", {"component_noise": 0.05}, "denoising corruption"),
    "objective infonce": ("idae", {"objective": "infonce"}, "objective"),
    "ELBO only (no InfoNCE term)": ("idae", {"contrastive_weight": 0.0}, "objective"),
    "InfoNCE term weight 5": ("idae", {"contrastive_weight": 5.0}, "objective"),
    "InfoNCE term weight 500": ("idae", {"contrastive_weight": 500.0}, "objective"),
    "objective dsm": ("idae", {"objective": "dsm", "noise": 0.5}, "objective"),
    "dsm, decoder detached": ("idae", {"objective": "dsm", "noise": 0.5, "detach_decoder": True},
                              "decoder gradient into the encoder"),
    "infonce, energy head [z, z², 0.1z³]": ("idae", {"objective": "infonce", "head": "energy"}, "head"),
    "infonce, energy head [z, z²]": ("idae", {"objective": "infonce", "head": "energy", "augmentation": ("z", "z2")},
                                     "augmentation terms"),
    "seed model (dsm, energy head, every gene)": ("idae", SEED_MODEL, "the first design"),
    "seed model + linear stage": ("idae", {**SEED_MODEL, "linear_stage": True}, "the first design"),
    "PCA": ("pca", {}, "baseline"),
    "FastICA": ("ica", {"max_iter": 10_000}, "baseline"),
    "plain DAE": ("dae", {}, "baseline"),
    "CEBRA": ("cebra", {}, "baseline"),
}
SEGMENT_VARIANTS = ("default", "no linear stage", "linear encoder and decoder", "objective infonce",
                    "ELBO only (no InfoNCE term)", "InfoNCE term weight 5", "InfoNCE term weight 500",
                    "input corruption 0.25", "input corruption 0.5", "component corruption 0.05", "PCA", "FastICA",
                    "plain DAE", "CEBRA")
# measured for stability on synthetic cohorts, where the sources are known: the default and the factor baselines
COHORT_STABILITY_VARIANTS = ("default", "PCA", "FastICA")
# measured for stability on the real cohort: the default, the variants the cohort table puts level with or above it
# (and `input: every gene`, level when the list was made; notebook 04 sets each beside today's cohort table) and every
# baseline
REAL_VARIANTS = ("default", "input: every gene", "input: 4d components", "input corruption 0.25",
                 "input corruption 0.5", "component corruption 0.05", "PCA", "FastICA", "plain DAE", "CEBRA")


@dataclasses.dataclass
class Split:
    """A benchmark split: training tables, held-out profiles, the held-out true sources (n_test, d) when known,
    and optionally a (genomic, clinical) validation pair for idae's early stopping."""

    name: str
    genomic_train: pd.DataFrame
    clinical_train: pd.DataFrame
    genomic_test: pd.DataFrame
    sources_test: np.ndarray | None = None
    validation: tuple[pd.DataFrame, pd.DataFrame] | None = None
    latent_dim: int = 0

    def __post_init__(self) -> None:
        if not self.latent_dim:
            if self.sources_test is None:
                raise IdaeError("a split without true sources needs its latent_dim")
            self.latent_dim = self.sources_test.shape[1]

    def subsample(self, share: float, seed: int) -> Split:
        """The same split with a random `share` of the training patients (seeded): stability under resampling."""
        genomic, clinical = subsample(self.genomic_train, self.clinical_train, seed, share)
        return dataclasses.replace(self, genomic_train=genomic, clinical_train=clinical)


def cohort_split(seed: int, n_train: int = 1500, n_test: int = 500, n_genes: int = 600, latent_dim: int = 6,
                 depth: int = 3, missing: float = 0.05) -> Split:  # fmt: skip
    """`make_cohort(seed)` split into the first `n_train` patients and the next `n_test`."""
    cohort = make_cohort(n_samples=n_train + n_test, n_genes=n_genes, latent_dim=latent_dim, depth=depth,
                         missing=missing, seed=seed)  # fmt: skip
    train, test = slice(0, n_train), slice(n_train, None)
    return Split(f"cohort (depth {depth}, {n_train} training patients)", cohort.genomic.iloc[train],
                 cohort.clinical.iloc[train], cohort.genomic.iloc[test], cohort.sources.iloc[test].to_numpy())


SEGMENTS_TRAIN_SHARE = 0.8  # of the segment observations, for training; the rest are held out for scoring


def segments_held_out(n_observations: int) -> int:
    """How many of `n_observations` segment observations `segments_split` holds out."""
    return n_observations - int(SEGMENTS_TRAIN_SHARE * n_observations)


def segments_split(seed: int, depth: int = 4, n_per_segment: int = 1000) -> Split:
    """`make_segments(seed)`, 80% of the observations (at random, seeded) for training, 20% held out."""
    data = make_segments(n_per_segment=n_per_segment, depth=depth, seed=seed)
    order = np.random.default_rng(seed).permutation(len(data.genomic))
    n_train = len(order) - segments_held_out(len(order))
    train, test = data.genomic.index[order[:n_train]], data.genomic.index[order[n_train:]]
    return Split(f"segments (depth {depth}, {n_per_segment} per segment)", data.genomic.loc[train],
                 data.clinical.loc[train], data.genomic.loc[test], data.sources.loc[test].to_numpy())


def processed_split(prepared: Prepared, latent_dim: int) -> Split:
    """The processed cohort: its "train" patients for fitting (its "validation" patients for idae's early
    stopping), every patient outside "train" held out for scoring."""
    train, validation = prepared.split == "train", prepared.split == "validation"
    return Split("real cohort", prepared.genomic[train], prepared.clinical[train], prepared.genomic[~train],
                 validation=(prepared.genomic[validation], prepared.clinical[validation]), latent_dim=latent_dim)


def fit_codes(method: str, split: Split, seed: int, **options: Any) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(training codes, held-out codes, notes) of `method`: "idae" (options are `IDAE` arguments) or one of
    the latent baselines (options are `fit_latent` options). Notes say whether FastICA converged."""
    notes: dict[str, Any] = {}
    if method == "idae":
        model = IDAE(latent_dim=split.latent_dim, seed=seed, progress=False, **options)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the condition report is read from the model
            model.fit(split.genomic_train, split.clinical_train, validation=split.validation)
        notes["epochs"] = len(model.history_.train_objective)
        notes["condition met"] = bool(model.condition_.ok)
        if model.history_.val_objective:  # the held-out objective of the epoch kept (negative ELBO per gene)
            notes["validation objective"] = model.history_.val_objective[model.history_.best_epoch]
        return model.encode(split.genomic_train), model.encode(split.genomic_test), notes
    if method not in LATENT_METHODS:
        raise IdaeError(f"method must be 'idae' or one of {LATENT_METHODS}, got {method!r}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fitted = fit_latent(method, split.genomic_train, split.clinical_train, split.latent_dim, seed, **options)
    if method == "ica":
        notes["converged"] = not any("did not converge" in str(w.message) for w in caught)
    return fitted.transform(split.genomic_train), fitted.transform(split.genomic_test), notes


def staged(train: np.ndarray, test: np.ndarray, clinical_train: pd.DataFrame, seed: int) -> np.ndarray:
    """Held-out codes after the conditional linear stage fitted on the training codes and clinical design."""
    design = ClinicalDesign.fit(clinical_train).transform(clinical_train)
    return unmixing.fit(train, design, seed=seed).transform(test)


def held_out_codes(method: str, split: Split, seed: int, stage: bool = True, **options: Any) -> dict[str, Any]:
    """{"codes": held-out codes, "codes + stage": the same after the linear stage (when `stage` and the method
    has none of its own), notes...}. idae's linear stage is part of the model (`linear_stage`, on by default)."""
    train, test, notes = fit_codes(method, split, seed, **options)
    out = {"codes": test, **notes}
    if stage and not (method == "idae" and options.get("linear_stage", True)):
        out["codes + stage"] = staged(train, test, split.clinical_train, seed)
    return out


def score_method(method: str, split: Split, seed: int, stage: bool = True, **options: Any) -> dict[str, Any]:
    """Fit, encode, score against the true sources: strong and weak MCC of the held-out codes, and the strong MCC
    after the linear stage (baselines and idae without its own stage), with the fit's seconds and notes."""
    began = time.perf_counter()
    out = held_out_codes(method, split, seed, stage, **options)
    codes, truth = out.pop("codes"), split.sources_test
    row: dict[str, Any] = {"strong MCC": mcc(codes, truth), "weak MCC": weak_mcc(codes, truth)}
    if "codes + stage" in out:
        row["strong MCC + stage"] = mcc(out.pop("codes + stage"), truth)
    row["seconds"] = time.perf_counter() - began
    return {**row, **out}


def stability(method: str, split: Split, seeds: int = 5, resamples: int = 5, share: float = 0.8,
              **options: Any) -> dict[str, Any]:  # fmt: skip
    """Strong MCC between fits on the held-out patients (mean over pairs) when fits differ in their seed only
    ("across seeds": seeds 0..seeds-1) and when each sees a random `share` of the training patients ("across
    resampled training sets": resampling seeds 100.., model seed 0), with the median seconds per fit. Baselines
    are scored after the linear stage, idae with its own (the codes `held_out_codes` would score). For idae with
    validation patients, also the median over seeds of the held-out objective and whether every seed's fit met
    the identifiability condition. With true sources, also each protocol's median, lowest and highest strong MCC
    of a fit with the sources ("truth, across seeds: median", ...): how far the sample, beside the seed, moves
    what a fit recovers."""
    out: dict[str, Any] = {}
    times, objective, condition = [], [], []
    for protocol, fits in (("across seeds", [(split, s) for s in range(seeds)]),
                           ("across resampled training sets", [(split.subsample(share, 100 + r), 0)
                                                               for r in range(resamples)])):  # fmt: skip
        codes = []
        for data, seed in fits:
            began = time.perf_counter()
            fitted = held_out_codes(method, data, seed, **options)
            times.append(time.perf_counter() - began)
            codes.append(fitted.get("codes + stage", fitted["codes"]))
            if protocol == "across seeds" and "validation objective" in fitted:
                objective.append(fitted["validation objective"])
                condition.append(fitted["condition met"])
        out[protocol] = float(off_diagonal(cross_seed_mcc(codes)).mean())
        if split.sources_test is not None:
            with_truth = [mcc(c, split.sources_test) for c in codes]
            for name, value in (("median", np.median), ("lowest", np.min), ("highest", np.max)):
                out[f"truth, {protocol}: {name}"] = float(value(with_truth))
    out["seconds per fit"] = float(np.median(times))
    if objective:
        out["validation objective"] = float(np.median(objective))
        out["condition met"] = all(condition)
    return out
