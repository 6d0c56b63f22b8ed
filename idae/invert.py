"""Inversion: a patient's genomic profile had their clinical state been different.

In the model, each factor z_j given the clinical state y follows an exponential family whose natural
parameters are λ(y) (ICE-BeeM). With the sufficient statistics (z, z²) that is a Gaussian whose mean
and variance move with y. So a patient's factor is z = μ(y) + σ(y)·u, where u is what is specific to
that patient, and the counterfactual keeps u:

    z' = μ(y') + σ(y') · (z - μ(y)) / σ(y)

μ and log σ² are linear in the regressors given by `method`: "design" (the clinical design matrix) or
"energy" (the natural parameters λ(y)), fitted per factor on the training patients. With `shrinkage`
their least-squares coefficients are shrunk by empirical Bayes (`shrink`), so a clinical column that
does not move the factors does not move the prediction: with a hundred patients the unshrunk
coefficients of such a column are noise, which the decoder spreads over every gene.

The decoder maps the move to genes; a direct path adds what the factors do not carry: the per-gene
least-squares effect of the clinical design on the decoder's training residuals, shrunk the same way
(`fit_direct_path`), and a state path the part of that effect that depends on the patient: on the genes
a column moves, a slope along one direction w of the patient's standardised position u (`fit_state_path`).
All are added to the patient's own profile, so whatever none explains (the patient's residual) is preserved:

    x' = x + h(z') - h(z) + ΔD B + Σ_j ΔD_j (u·w_j) C_j,   ΔD = D(y') - D(y)
"""

from __future__ import annotations

import dataclasses
import reprlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from idae.data import check_table
from idae.errors import IdaeError

if TYPE_CHECKING:
    from idae.data import ClinicalDesign

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


def shrink_posterior(estimate: np.ndarray, se: np.ndarray, components: int = 12, null_weight: float = 10.0,
                     iterations: int = 500) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Posterior means (m,) and posterior probabilities of a zero effect (m,) for effects (m,) measured with
    standard errors se (m,), under one prior for all of them: a point mass at zero plus zero-centred normals of
    `components` widths, its weights fitted by EM on the effects themselves (empirical Bayes, as adaptive
    shrinkage does: Stephens, Biostatistics 2017). `null_weight` is a Dirichlet pseudo-count on the point
    mass, which keeps the prior from overfitting a few effects. Large effects are kept, effects within their
    noise go to zero."""
    est = np.asarray(estimate, dtype=float)
    se = np.maximum(np.asarray(se, dtype=float), 1e-12)
    widest = np.sqrt(max(float(np.max(est**2 - se**2)), float(np.min(se)) ** 2))
    sds = np.concatenate([[0.0], np.geomspace(np.min(se) / 10, 2 * widest, components)])
    var = se[:, None] ** 2 + sds**2
    loglik = -0.5 * (est[:, None] ** 2 / var + np.log(var))
    lik = np.exp(loglik - loglik.max(axis=1, keepdims=True))
    weights = np.full(len(sds), 1.0 / len(sds))
    for _ in range(iterations):  # EM on the mixture weights, in matrix-vector products
        counts = weights * (lik.T @ (1.0 / (lik @ weights)))
        counts[0] += null_weight - 1
        new = counts / counts.sum()
        done = np.max(np.abs(new - weights)) < 1e-8
        weights = new
        if done:
            break
    resp = weights * lik
    resp /= resp.sum(axis=1, keepdims=True)
    return (resp * sds**2 / (sds**2 + se[:, None] ** 2)).sum(axis=1) * est, resp[:, 0]


def shrink(estimate: np.ndarray, se: np.ndarray, null_weight: float = 10.0) -> np.ndarray:
    """The posterior means of `shrink_posterior`: (m,)."""
    return shrink_posterior(estimate, se, null_weight=null_weight)[0]


def least_squares(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-column least squares of y (n, m) on [1, x] (n, q): intercept (m,), coefficients (q, m) and their
    standard errors (q, m). Collinear columns get the minimum-norm solution."""
    x1 = np.column_stack([np.ones(len(x)), x])
    gram = np.linalg.pinv(x1.T @ x1)
    coef = gram @ x1.T @ y
    dof = max(1, len(x) - np.linalg.matrix_rank(x1))
    noise_var = ((y - x1 @ coef) ** 2).sum(axis=0) / dof
    se = np.sqrt(np.outer(np.maximum(np.diag(gram), 0.0), noise_var))
    return coef[0], coef[1:], se[1:]


def contrast_columns(design: ClinicalDesign) -> np.ndarray:
    """Indices of the design columns a regression keeps: every level but the first of each categorical column
    (one-hot rows sum to one, so the first level is the intercept's), every numeric column and missing flag."""
    keep, start = [], 0
    for col in design.columns:
        width = len(design.levels[col]) if col in design.levels else 1
        keep += list(range(start + (col in design.levels), start + width))
        start += width
    return np.asarray(keep + list(range(start, start + len(design.columns))), dtype=int)


# E[log ε²] = log σ² - 1.27 and var(log ε²) = π²/2 for Gaussian ε: a log-residual fit is a fit of log σ².
LOG_CHI2_OFFSET, LOG_CHI2_VAR = 1.27, np.pi**2 / 2


def fit_latent_model(z: np.ndarray, regressors: np.ndarray, method: str, keep: np.ndarray | None = None,
                     shrinkage: bool = True, alpha: float = 1e-2) -> LatentModel:  # fmt: skip
    """Fit μ(y) and log σ²(y) of the factors on training codes z (n, d) and regressors (n, q).

    `shrinkage`: least squares on the regressors `keep` (default all), every coefficient shrunk by empirical
    Bayes across the factors and regressors (`shrink`); the others get zero. Without it: ridge with `alpha`."""
    q = regressors.shape[1]
    if not shrinkage:
        mean_coef = _ridge(regressors, z, alpha)
        resid = z - np.column_stack([np.ones(len(z)), regressors]) @ mean_coef
        logvar_coef = _ridge(regressors, np.log(resid**2 + 1e-8) + LOG_CHI2_OFFSET, alpha * 10)
        return LatentModel(method, mean_coef.tolist(), logvar_coef.tolist())
    keep = np.arange(q) if keep is None else keep
    x = regressors[:, keep]

    def shrunk(target: np.ndarray, se: np.ndarray | None = None) -> np.ndarray:
        _, coef, se_ls = least_squares(x, target)
        # a few dozen coefficients, not thousands: the mixture weights by plain maximum likelihood
        coef = shrink(coef.ravel(), (se_ls if se is None else se).ravel(), null_weight=1.0).reshape(coef.shape)
        full = np.zeros((1 + q, target.shape[1]))
        full[0], full[1 + keep] = target.mean(axis=0) - x.mean(axis=0) @ coef, coef
        return full

    mean_coef = shrunk(z)
    resid = z - np.column_stack([np.ones(len(z)), regressors]) @ mean_coef
    # the log-residual's noise variance is known (π²/2), so its standard errors need no estimate
    x1 = np.column_stack([np.ones(len(x)), x])
    inverse_gram = np.maximum(np.diag(np.linalg.pinv(x1.T @ x1))[1:], 0.0)  # a constant column: tiny negative
    logvar_se = np.sqrt(np.outer(inverse_gram, np.full(z.shape[1], LOG_CHI2_VAR)))
    logvar_coef = shrunk(np.log(resid**2 + 1e-8) + LOG_CHI2_OFFSET, logvar_se)
    return LatentModel(method, mean_coef.tolist(), logvar_coef.tolist())


def _shrunk_effects(design_rows: np.ndarray, residuals: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least squares of residuals (n, p) on the design columns `keep`, each column's per-gene effects shrunk
    across genes (`shrink_posterior`): the shrunk effects (q, p) and their posterior probabilities of no effect
    (q, p); zero effect and probability one on the other columns."""
    _, coef, se = least_squares(design_rows[:, keep], residuals)
    effects = np.zeros((design_rows.shape[1], residuals.shape[1]))
    null = np.ones_like(effects)
    for j, column in enumerate(keep):
        effects[column], null[column] = shrink_posterior(coef[j], se[j])
    return effects, null


def fit_direct_path(design_rows: np.ndarray, residuals: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Per-gene effects (q, p) of the design (n, q) on the decoder's training residuals (n, p), least squares
    on the columns `keep`, each column's effects shrunk across genes by empirical Bayes; zero on the other columns."""
    return _shrunk_effects(design_rows, residuals, keep)[0]


def fit_state_path(design_rows: np.ndarray, state: np.ndarray, residuals: np.ndarray, keep: np.ndarray,
                   null_probability: float = 0.5) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Effects of each design column that depend on the patient's state: for column j, a direction w_j (k,) in
    the state space and per-gene effects c_j (p,), so that a patient with state s (k,) whose column j moves by
    Δd_j moves by Δd_j (s·w_j) c_j. Returns directions (q, k) and effects (q, p), zero on the columns not in
    `keep` and on columns that move no gene.

    Fitted on design rows (n, q), states (n, k) and residuals (n, p), with the hierarchy principle of
    interaction models: a column's effect varies with the state only on the genes it moves at all (posterior
    probability of no effect below `null_probability` in its own least-squares fit, shrunk as
    `fit_direct_path` does). On those genes, w_j is the leading left singular vector of the t-statistics of
    the full design × state interaction (k × genes): one direction, since a hundred patients cannot support
    k free slopes per gene; c_j is then one slope per gene on d_j (s·w_j), shrunk across genes."""
    d, k = design_rows[:, keep], state.shape[1]
    directions = np.zeros((design_rows.shape[1], k))
    effects = np.zeros((design_rows.shape[1], residuals.shape[1]))
    null = _shrunk_effects(design_rows, residuals, keep)[1]
    for j, column in enumerate(keep):
        if np.ptp(d[:, j]) == 0:
            continue
        genes = np.flatnonzero(null[column] < null_probability)
        if len(genes) < 2:
            continue
        moved = residuals[:, genes]
        _, inter, inter_se = least_squares(np.column_stack([d, state, d[:, j : j + 1] * state]), moved)
        t = inter[-k:] / np.maximum(inter_se[-k:], 1e-12)
        w = np.linalg.svd(t, full_matrices=False)[0][:, 0]
        _, slope, slope_se = least_squares(np.column_stack([d, state, d[:, j] * (state @ w)]), moved)
        directions[column] = w
        effects[column, genes] = shrink(slope[-1], slope_se[-1])
    return directions, effects


def apply_changes(clinical: pd.DataFrame, changes: dict[str, Any] | pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """A copy of `clinical` with the changes applied, each checked against the model's columns.

    `changes`: {column: one value for every patient}, or a DataFrame of new values per patient (unique
    patient IDs of the clinical table, unique column names; NaN keeps a patient's own value).
    """
    new = clinical.copy()
    if isinstance(changes, dict):
        if not changes:
            raise IdaeError("changes is empty: name at least one clinical column to change")
        for col, value in changes.items():
            if col not in columns:
                raise IdaeError(f"cannot change {col!r}: not a clinical column of the model ({columns})")
            _in_table(col, clinical)
            if not pd.api.types.is_scalar(value):
                shown = reprlib.repr(value.tolist() if hasattr(value, "tolist") else value)
                raise IdaeError(
                    f"cannot change {col!r} to a {type(value).__name__} ({shown}): a change given in a dict is one "
                    "value (a number, a level or None) for every patient; give a DataFrame of changes for values "
                    "per patient"
                )
            if isinstance(new[col].dtype, pd.CategoricalDtype):
                new[col] = new[col].astype(object)
            new[col] = value
    elif isinstance(changes, pd.DataFrame):
        check_table(changes, "changes", "patients × clinical columns to change")
        unknown = [c for c in changes.columns if c not in columns]
        if unknown:
            raise IdaeError(f"changes has columns that are not clinical columns of the model: {unknown}")
        absent = changes.index.difference(clinical.index)
        if len(absent):
            raise IdaeError(f"changes has patients not in the clinical table, e.g. {absent[:5].tolist()}")
        for col in changes.columns:
            _in_table(col, clinical)
            column = new[col].astype(object) if isinstance(new[col].dtype, pd.CategoricalDtype) else new[col]
            update = changes[col].reindex(new.index)
            new[col] = column.where(update.isna(), update)
    else:
        raise IdaeError(f"changes must be a dict or a DataFrame, got {type(changes).__name__}")
    return new


def _in_table(col: Any, clinical: pd.DataFrame) -> None:
    if col not in clinical.columns:
        raise IdaeError(
            f"cannot change {col!r}: the clinical table has no column {col!r} (its columns: "
            f"{list(clinical.columns)[:8]}); pass the table the model reads, with every column it was fitted on"
        )


def refuse_overflow(decoded: torch.Tensor, index: pd.Index) -> None:
    """Refuse profiles the float32 network overflowed on (finite inputs far outside the training range)."""
    odd = ~torch.isfinite(decoded).all(dim=1).cpu().numpy()
    if odd.any():
        raise IdaeError(
            f"genomic: the profiles of {int(odd.sum())} patient(s), e.g. {index[odd][:5].tolist()}, are "
            "too far outside the range the model was trained on: its float32 network overflows on them; check "
            "the units or scale of the input"
        )


def counterfactual_change(
    codes: np.ndarray,
    reconstruction: np.ndarray,
    decode: Callable[[np.ndarray], np.ndarray],
    latent: LatentModel,
    old_regressors: np.ndarray,
    new_regressors: np.ndarray,
    moved: np.ndarray,
    direct_effect: np.ndarray,
    state_direction: np.ndarray,
    state_effect: np.ndarray,
) -> np.ndarray:
    """The change x' - x of the module docstring, in standardised gene units: (n, p).

    codes (n, d): the patients' factors; reconstruction (n, p): their decoded codes; decode: factors (n, d) ->
    profiles (n, p), the fitted decoder;
    old/new_regressors (n, q'): the latent model's regressors before and after the change; moved (n, q): the
    change of the design rows, D(y') - D(y); direct_effect (q, p), state_direction (q, d), state_effect (q, p):
    the fitted direct and state paths."""
    mean_old, sd_old = latent.moments(old_regressors)
    mean_new, sd_new = latent.moments(new_regressors)
    position = (codes - mean_old) / sd_old  # what is specific to the patient, kept
    delta = (decode(mean_new + sd_new * position) - reconstruction).astype(float)
    along = position @ state_direction.T  # (n, q): u·w_j
    return delta + moved @ direct_effect + (moved * along) @ state_effect
