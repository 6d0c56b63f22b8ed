"""Inversion: a patient's genomic profile had their clinical state been different.

In the model, each factor z_j given the clinical state y follows an exponential family whose natural
parameters are λ(y) (ICE-BeeM). With the sufficient statistics (z, z²) that is a Gaussian whose mean
and variance move with y. So a patient's factor is z = μ(y) + σ(y)·u, where u is what is specific to
that patient, and the counterfactual keeps u:

    z' = μ(y') + σ(y') · (z - μ(y)) / σ(y)

μ and log σ² are fitted per factor on the training patients by ridge regression on the regressors
given by `method`: "design" (the clinical design matrix) or "energy" (the natural parameters λ(y)).
The decoder then maps the move to genes, added to the patient's own profile so that whatever the
decoder does not explain (the patient's residual) is preserved:

    x' = x + h(T(z')) - h(T(z))
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from idae.errors import IdaeError
from idae.model import augment

if TYPE_CHECKING:
    from idae.estimator import IDAE

METHODS = ("design", "energy")


@dataclasses.dataclass
class LatentModel:
    """Per-factor heteroscedastic linear model: z_j ~ N(a_j + b_jᵀr, exp(c_j + e_jᵀr)) for regressors r."""

    method: str
    mean_coef: list[list[float]]  # (1 + regressors, d)
    logvar_coef: list[list[float]]  # (1 + regressors, d)

    def moments(self, regressors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mean, sd), each (n, d)."""
        r = np.column_stack([np.ones(len(regressors)), regressors])
        mean = r @ np.asarray(self.mean_coef)
        # clip: extrapolating a log-variance to unseen combinations must not blow up a factor
        logvar = np.clip(r @ np.asarray(self.logvar_coef), -8.0, 8.0)
        return mean, np.exp(0.5 * logvar)


def _ridge(r: np.ndarray, target: np.ndarray, alpha: float) -> np.ndarray:
    """Ridge coefficients with an unpenalised intercept: (1 + q, d)."""
    mu_r, mu_t = r.mean(axis=0), target.mean(axis=0)
    rc, tc = r - mu_r, target - mu_t
    coef = np.linalg.solve(rc.T @ rc + alpha * len(r) * np.eye(r.shape[1]), rc.T @ tc)
    return np.vstack([mu_t - mu_r @ coef, coef])


def fit_latent_model(z: np.ndarray, regressors: np.ndarray, method: str, alpha: float = 1e-2) -> LatentModel:
    """Fit μ(y) and log σ²(y) of the factors on training codes z (n, d) and regressors (n, q)."""
    mean_coef = _ridge(regressors, z, alpha)
    resid = z - np.column_stack([np.ones(len(z)), regressors]) @ mean_coef
    # E[log ε²] = log σ² - 1.27 for Gaussian ε: the offset turns the log-residual fit into log σ².
    logvar_coef = _ridge(regressors, np.log(resid**2 + 1e-8) + 1.27, alpha * 10)
    return LatentModel(method, mean_coef.tolist(), logvar_coef.tolist())


def regressors(model: IDAE, clinical: pd.DataFrame, method: str) -> np.ndarray:
    """The regressors of the latent model for each patient: (n, q)."""
    if method == "design":
        return model.design.transform(clinical).astype(float)
    return model.natural_parameters(clinical)


def apply_changes(clinical: pd.DataFrame, changes: dict[str, Any] | pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """A copy of `clinical` with the changes applied, each checked against the model's columns."""
    new = clinical.copy()
    if isinstance(changes, dict):
        if not changes:
            raise IdaeError("changes is empty: name at least one clinical column to change")
        for col, value in changes.items():
            if col not in columns:
                raise IdaeError(f"cannot change {col!r}: not a clinical column of the model ({columns})")
            if isinstance(new[col].dtype, pd.CategoricalDtype):
                new[col] = new[col].astype(object)
            new[col] = value
    elif isinstance(changes, pd.DataFrame):
        unknown = [c for c in changes.columns if c not in columns]
        if unknown:
            raise IdaeError(f"changes has columns that are not clinical columns of the model: {unknown}")
        absent = changes.index.difference(clinical.index)
        if len(absent):
            raise IdaeError(f"changes has patients not in the clinical table, e.g. {absent[:5].tolist()}")
        for col in changes.columns:
            column = new[col].astype(object) if isinstance(new[col].dtype, pd.CategoricalDtype) else new[col]
            update = changes[col].reindex(new.index)
            new[col] = column.where(update.isna(), update)
    else:
        raise IdaeError(f"changes must be a dict or a DataFrame, got {type(changes).__name__}")
    return new


@torch.no_grad()
def counterfactual(
    model: IDAE,
    genomic: pd.DataFrame,
    clinical: pd.DataFrame,
    changes: dict[str, Any] | pd.DataFrame,
    method: str | None = None,
) -> pd.DataFrame:
    """x' for every patient (see the module docstring); same index and genes as the model's input."""
    net = model._check_fitted()
    latent = model.latent_model
    if method is not None and method != latent.method:
        raise IdaeError(f"this model's latent model was fitted with method {latent.method!r}, not {method!r}")
    genomic = model._genomic(genomic, fitted=True)
    clinical = model._clinical(clinical, genomic.index)
    new_clinical = apply_changes(clinical, changes, model.design.columns)
    old_r = regressors(model, clinical, latent.method)
    new_r = regressors(model, new_clinical, latent.method)
    x = model._tensor(genomic)
    z = net.encoder(x).double().cpu().numpy()
    mean_old, sd_old = latent.moments(old_r)
    mean_new, sd_new = latent.moments(new_r)
    z_new = mean_new + sd_new * (z - mean_old) / sd_old
    def decode(codes: np.ndarray) -> torch.Tensor:
        return net.decoder(augment(torch.as_tensor(codes, dtype=torch.float32, device=model.device), net.augmentation))

    delta = (decode(z_new) - decode(z)).double().cpu().numpy()
    out = genomic + delta * model.standardizer.scale.to_numpy()
    return out
