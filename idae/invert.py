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
coefficients of such a column are noise, which the decoder spreads over every gene. A clinical effect
on a factor can depend on another clinical column (the ER effect on a grade-3 tumour is not the ER
effect on a grade-1 one), so μ also takes products of two design columns, each only for the factors
where a test says it moves them (`select_interactions`): a product the data do not support stays out,
and one they support keeps its least-squares coefficient (the test has already weighed its evidence).

The decoder maps the move to genes; a direct path adds what the factors do not carry: the per-gene
least-squares effect of the clinical design on the decoder's training residuals, shrunk the same way
(`fit_direct_path`), or, per gene where its evidence is clearer, the gene's shrunk total effect less the factor
path's average effect (`anchor_direct_path`: the residuals miss the part of an effect that the factors carry and
the factor path does not deliver), and a state path the part of that effect that depends on the patient: on the genes
a column moves, a slope along one direction w of the patient's factors z (`fit_state_path`). The state is
z itself, where the patient sits among all patients, not the position u given the clinical state: an effect
modifier is a biological state (how proliferative, how luminal a tumour is), and u has the clinical columns'
part of that state taken out. All are added to the patient's own profile, so whatever none explains (the
patient's residual) is preserved:

    x' = x + h(z') - h(z) + ΔD B + Σ_j ΔD_j (z·w_j) C_j,   ΔD = D(y') - D(y)
"""

from __future__ import annotations

import dataclasses
import reprlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from scipy import stats

from idae.checks import check_table
from idae.errors import IdaeError

if TYPE_CHECKING:
    from idae.config import Config
    from idae.design import ClinicalDesign

METHODS = ("design", "energy")
STATE_BASES = ("factors", "position")
DIRECT_BASES = ("surer", "residuals", "totals")


@dataclasses.dataclass
class LatentModel:
    """Per-factor heteroscedastic linear model: z_j ~ N(a_j + b_jᵀr, exp(c_j + e_jᵀr)) for the features r:
    the regressors, then the products of the regressor pairs `interactions`, each regressor centred at its
    training mean `centre` before the product. Centred, a main effect is the column's average effect over the
    training patients rather than its effect in the reference cell of the other column (ER in grade-1 tumours,
    a dozen patients), so it is well determined, and shrinking a product toward zero shrinks toward the
    main-effects model (Aiken & West, Multiple Regression: Testing and Interpreting Interactions, 1991)."""

    method: str
    mean_coef: list[list[float]]  # (1 + features, d)
    logvar_coef: list[list[float]]  # (1 + features, d)
    interactions: list[list[int]] = dataclasses.field(default_factory=list)  # regressor column pairs
    centre: list[float] = dataclasses.field(default_factory=list)  # (q,) training means; empty without products

    def features(self, regressors: np.ndarray) -> np.ndarray:
        """(n, q) regressors -> (n, q + interactions) features."""
        if not self.interactions:
            return regressors
        return np.column_stack([regressors, centred_products(regressors, self.centre, self.interactions)])

    def moments(self, regressors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mean, sd), each (n, d), for regressors (n, q)."""
        r = np.column_stack([np.ones(len(regressors)), self.features(regressors)])
        mean = r @ np.asarray(self.mean_coef)
        # clip: extrapolating a log-variance to unseen combinations must not blow up a factor
        logvar = np.clip(r @ np.asarray(self.logvar_coef), -8.0, 8.0)
        return mean, np.exp(0.5 * logvar)


def centred_products(rows: np.ndarray, centre: np.ndarray | list[float],
                     pairs: np.ndarray | list[list[int]]) -> np.ndarray:  # fmt: skip
    """(n, pairs) products of the column pairs `pairs` (pairs, 2) of `rows` (n, q), each column centred at `centre`
    (q,) first."""
    pairs, centred = np.asarray(pairs, dtype=int).reshape(-1, 2), rows - np.asarray(centre)
    return centred[:, pairs[:, 0]] * centred[:, pairs[:, 1]]


def ridge(r: np.ndarray, target: np.ndarray, alpha: float) -> np.ndarray:
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


def interaction_candidates(design: ClinicalDesign) -> list[list[int]]:
    """Pairs of design columns whose product may enter the latent model: contrasts of two different clinical
    columns (missing flags excluded)."""
    blocks = design.contrast_blocks()
    return [[a, b] for i, first in enumerate(blocks) for second in blocks[i + 1 :] for a in first for b in second]


def select_interactions(z: np.ndarray, regressors: np.ndarray, keep: np.ndarray, candidates: list[list[int]],
                        fdr: float = 0.05) -> np.ndarray:  # fmt: skip
    """Which products move which factors: (candidates, d) booleans. For each candidate product of two regressor
    columns and each factor of z (n, d), the t-test of the product added to the least squares of the factor on
    the regressors `keep`; Benjamini–Hochberg across all (product, factor) cells at false discovery rate `fdr`.
    Products constant over the patients are never selected."""
    base = regressors[:, keep]
    p_values = np.ones((len(candidates), z.shape[1]))
    for i, (a, b) in enumerate(candidates):
        product = regressors[:, a] * regressors[:, b]
        if np.ptp(product) == 0:
            continue
        x = np.column_stack([base, product])
        _, coef, se = least_squares(x, z)
        dof = max(1, len(z) - np.linalg.matrix_rank(np.column_stack([np.ones(len(x)), x])))
        p_values[i] = 2 * stats.t.sf(np.abs(coef[-1]) / np.maximum(se[-1], 1e-12), dof)
    flat = p_values.ravel()
    order = np.argsort(flat)
    passed = flat[order] <= fdr * np.arange(1, len(flat) + 1) / max(len(flat), 1)
    selected = np.zeros(len(flat), dtype=bool)
    selected[order[: (np.flatnonzero(passed)[-1] + 1 if passed.any() else 0)]] = True
    return selected.reshape(p_values.shape)


# E[log ε²] = log σ² - 1.27 and var(log ε²) = π²/2 for Gaussian ε: a log-residual fit is a fit of log σ².
LOG_CHI2_OFFSET, LOG_CHI2_VAR = 1.27, np.pi**2 / 2


def fit_latent_model(z: np.ndarray, regressors: np.ndarray, method: str, keep: np.ndarray | None = None,
                     shrinkage: bool = True, alpha: float = 1e-2,
                     candidates: list[list[int]] | None = None) -> LatentModel:  # fmt: skip
    """Fit μ(y) and log σ²(y) of the factors on training codes z (n, d) and regressors (n, q).

    `shrinkage`: least squares on the regressors `keep` (default all), and for μ the products among `candidates`
    that `select_interactions` keeps for each factor; the regressors' coefficients shrunk by empirical Bayes
    across the factors (`shrink`), the selected products' kept as fitted; the others get zero. Without it: ridge
    with `alpha` on the regressors."""
    q, d = regressors.shape[1], z.shape[1]
    if not shrinkage:
        mean_coef = ridge(regressors, z, alpha)
        resid = z - np.column_stack([np.ones(len(z)), regressors]) @ mean_coef
        logvar_coef = ridge(regressors, np.log(resid**2 + 1e-8) + LOG_CHI2_OFFSET, alpha * 10)
        return LatentModel(method, mean_coef.tolist(), logvar_coef.tolist())
    keep = np.arange(q) if keep is None else keep
    selected = select_interactions(z, regressors, keep, candidates or [])
    used = np.flatnonzero(selected.any(axis=1))
    model = LatentModel(method, [], [], [list(map(int, candidates[i])) for i in used],
                        regressors.mean(axis=0).tolist() if len(used) else [])  # fmt: skip
    features = model.features(regressors)

    def shrunk(target: np.ndarray, columns: list[np.ndarray], known_var: float | None = None) -> np.ndarray:
        """Least squares of each target column j on the features columns[j], the coefficients of the regressors
        shrunk together: (1 + features, d). With `known_var` the noise variance is known, so the standard errors
        need no estimate."""
        fits = []
        for j, cols in enumerate(columns):
            x = features[:, cols]
            _, coef, se = least_squares(x, target[:, j : j + 1])
            if known_var is not None:
                x1 = np.column_stack([np.ones(len(x)), x])
                # a constant column gives a tiny negative diagonal
                se = np.sqrt(np.maximum(np.diag(np.linalg.pinv(x1.T @ x1))[1:], 0.0) * known_var)[:, None]
            fits.append((coef[:, 0], se[:, 0]))
        coef, se = np.concatenate([c for c, _ in fits]), np.concatenate([s for _, s in fits])
        # A product is in only where its test selected it, so it keeps its least-squares value: shrinking it again
        # would count that evidence twice, and shrinking correlated products one by one (ER by grade 2 and by
        # grade 3 when ER-negative grade-1 tumours are few) distorts the within-grade effect they make together.
        regressor = np.concatenate(columns) < q
        # a few dozen coefficients, not thousands: the mixture weights by plain maximum likelihood
        coef[regressor] = shrink(coef[regressor], se[regressor], null_weight=1.0)
        full, start = np.zeros((1 + features.shape[1], d)), 0
        for j, cols in enumerate(columns):
            full[1 + cols, j] = coef[start : start + len(cols)]
            full[0, j] = target[:, j].mean() - features[:, cols].mean(axis=0) @ full[1 + cols, j]
            start += len(cols)
        return full

    rank = lambda cols: np.linalg.matrix_rank(np.column_stack([np.ones(len(z)), features[:, cols]]))  # noqa: E731
    mean_columns = []
    for j in range(d):
        cols = list(keep)
        for u in np.flatnonzero(selected[used, j]):
            # a product the others already span (a column's products with every level of another, when some pair
            # of levels has no patient) would leave the coefficients arbitrary: skip it
            if rank(cols + [q + u]) > rank(cols):
                cols.append(q + u)
        mean_columns.append(np.asarray(cols, dtype=int))
    model.mean_coef = shrunk(z, mean_columns).tolist()
    resid = z - np.column_stack([np.ones(len(z)), features]) @ np.asarray(model.mean_coef)
    # the log-residual's noise variance is known (π²/2)
    logvar = shrunk(np.log(resid**2 + 1e-8) + LOG_CHI2_OFFSET, [keep] * d, known_var=LOG_CHI2_VAR)
    model.logvar_coef = logvar.tolist()
    return model


def fit_direct_path(design_rows: np.ndarray, residuals: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-gene effects of the design (n, q) on the decoder's training residuals (n, p): least squares on the
    columns `keep`, each column's effects shrunk across genes by empirical Bayes (`shrink_posterior`). Returns the
    shrunk effects (q, p) and their posterior probabilities of no effect (q, p); zero effect and probability one
    on the other columns."""
    _, coef, se = least_squares(design_rows[:, keep], residuals)
    return shrink_columns(coef, se, keep, design_rows.shape[1])


def shrink_columns(coef: np.ndarray, se: np.ndarray, keep: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-gene effects coef (len(keep), p) with standard errors se, each row shrunk across genes by empirical Bayes
    (`shrink_posterior`), placed at the design columns `keep` of a (width, p) table: the shrunk effects and their
    posterior probabilities of no effect; zero effect and probability one on the other columns."""
    effects = np.zeros((width, coef.shape[1]))
    null = np.ones_like(effects)
    for j, column in enumerate(keep):
        effects[column], null[column] = shrink_posterior(coef[j], se[j])
    return effects, null


def factor_path_effect(codes: np.ndarray, design_rows: np.ndarray, latent: LatentModel, design: ClinicalDesign,
                       decode: Callable[[np.ndarray], np.ndarray],
                       regress: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:  # fmt: skip
    """The factor path's average effect of each contrast column, (q, p) in standardised gene units: over the
    patients with codes (n, d) and design rows (n, q), the mean of h(μ(y₁) + σ(y₁)u) − h(μ(y₀) + σ(y₀)u), each
    patient's own position u kept and their other columns as they are, where y₁ and y₀ differ only in the column:
    a level against the column's first level, or a numeric column one unit (one sd) apart. Zero on the other
    design columns. `regress` maps design rows to the latent model's regressors (the rows themselves for the
    "design" method, λ(y) for "energy")."""
    mean, sd = latent.moments(regress(design_rows))
    position = (codes - mean) / sd
    effect = np.zeros((design_rows.shape[1], len(decode(codes[:1])[0])))

    def move(high: np.ndarray, low: np.ndarray) -> np.ndarray:
        (mean_high, sd_high), (mean_low, sd_low) = latent.moments(regress(high)), latent.moments(regress(low))
        return (decode(mean_high + sd_high * position) - decode(mean_low + sd_low * position)).mean(axis=0)

    for column, block in zip(design.columns, design.contrast_blocks(), strict=True):
        if not block:
            continue
        if column in design.levels:
            first, levels = block[0] - 1, list(range(block[0] - 1, block[-1] + 1))
            for c in block:
                high, low = design_rows.copy(), design_rows.copy()
                high[:, levels], low[:, levels] = 0.0, 0.0
                high[:, c], low[:, first] = 1.0, 1.0
                effect[c] = move(high, low)
        else:
            high, low = design_rows.copy(), design_rows.copy()
            high[:, block[0]] += 0.5
            low[:, block[0]] -= 0.5
            effect[block[0]] = move(high, low)
    return effect


def anchor_direct_path(design_rows: np.ndarray, profiles: np.ndarray, factor_effect: np.ndarray, keep: np.ndarray,
                       design: ClinicalDesign, residual_effect: np.ndarray, residual_null: np.ndarray,
                       basis: str) -> np.ndarray:  # fmt: skip
    """Direct effects (q, p) anchored to the total effects. For each contrast column of `design`: the per-gene
    least-squares effect of the design (n, q; columns `keep`) on the profiles themselves (n, p), shrunk across
    genes by empirical Bayes (`shrink_posterior`), minus the factor path's average effect `factor_effect` (q, p),
    so that the two paths together move the patients, on average, by the shrunk total effect ("totals"); or, per
    gene, that anchored effect where its shrinkage is surer the gene moves than the residuals' (`residual_null`,
    (q, p)) and `residual_effect` (q, p) elsewhere ("surer"). Other columns (the missing flags) keep
    `residual_effect`.

    Why both: the effects on the residuals have the factors' variance taken out, so they are the more precise
    where the factor path carries its share of an effect; they are attenuated where the factors carry part of an
    effect and the factor path delivers less of it than the decoder reconstructs. The totals are noisier but not
    attenuated. Taking, gene by gene, the one with the clearer evidence keeps the precision of the first and the
    reach of the second."""
    _, coef, se = least_squares(design_rows[:, keep], profiles)
    contrasts = {i for block in design.contrast_blocks() for i in block}
    effect = residual_effect.copy()
    for j, column in enumerate(keep):
        if column not in contrasts:
            continue
        total, total_null = shrink_posterior(coef[j], se[j])
        anchored = total - factor_effect[column]
        effect[column] = anchored if basis == "totals" else np.where(total_null < residual_null[column], anchored,
                                                                     residual_effect[column])  # fmt: skip
    return effect


def fit_state_path(design_rows: np.ndarray, state: np.ndarray, residuals: np.ndarray, keep: np.ndarray,
                   null: np.ndarray, null_probability: float = 0.5,
                   direction_null: float = 0.1) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Effects of each design column that depend on the patient's state: for column j, a direction w_j (k,) in
    the state space and per-gene effects c_j (p,), so that a patient with state s (k,) whose column j moves by
    Δd_j moves by Δd_j (s·w_j) c_j. Returns directions (q, k) and effects (q, p), zero on the columns not in
    `keep` and on columns that move no gene.

    Fitted on design rows (n, q), states (n, k) and residuals (n, p), with the hierarchy principle of
    interaction models: a column's effect varies with the state only on the genes it moves at all (`null`, the
    posterior probabilities of no effect (q, p) from `fit_direct_path` on the same residuals, below
    `null_probability`). w_j is the leading left singular vector of the t-statistics of the full design × state
    interaction (k × genes) on the genes the column surely moves (null below `direction_null`, or all of the
    moved genes when fewer than two are that sure): one direction, since a hundred patients cannot support k free
    slopes per gene, and read off the genes where the column's effect is clear, since the doubtful ones add noise
    to it. c_j is then one slope per moved gene on d_j (s·w_j), shrunk across genes."""
    d, k = design_rows[:, keep], state.shape[1]
    directions = np.zeros((design_rows.shape[1], k))
    effects = np.zeros((design_rows.shape[1], residuals.shape[1]))
    for j, column in enumerate(keep):
        if np.ptp(d[:, j]) == 0:
            continue
        genes = np.flatnonzero(null[column] < null_probability)
        if len(genes) < 2:
            continue
        sure = np.flatnonzero(null[column] < direction_null)
        sure = sure if len(sure) >= 2 else genes
        _, inter, inter_se = least_squares(np.column_stack([d, state, d[:, j : j + 1] * state]), residuals[:, sure])
        t = inter[-k:] / np.maximum(inter_se[-k:], 1e-12)
        w = np.linalg.svd(t, full_matrices=False)[0][:, 0]
        moved = residuals[:, genes]
        _, slope, slope_se = least_squares(np.column_stack([d, state, d[:, j] * (state @ w)]), moved)
        directions[column] = w
        effects[column, genes] = shrink(slope[-1], slope_se[-1])
    return directions, effects


def fit_inversion_paths(
    codes: np.ndarray, profiles: np.ndarray, residuals: np.ndarray | None, design_rows: np.ndarray,
    design: ClinicalDesign, config: Config, decode: Callable[[np.ndarray], np.ndarray],
    regress: Callable[[np.ndarray], np.ndarray],
) -> tuple[LatentModel, np.ndarray, np.ndarray, np.ndarray]:
    """What inversion uses besides the network, fitted on the training patients: the factors' clinical model, and
    (with `config.direct_path`, `config.state_path`) the direct effects (q, p), the state directions (q, d) and
    the state effects (q, p), zero when a path is off. From their codes (n, d), profiles (n, p), the decoder's
    residuals (n, p; None when both paths are off), design rows (n, q), the decoder `decode` (codes -> profiles)
    and `regress` (design rows -> the latent model's regressors)."""
    c = config
    regressors = regress(design_rows)
    by_design = c.inversion == "design"
    keep = design.contrast_columns()
    latent = fit_latent_model(
        codes, regressors, c.inversion, keep=keep if by_design else None, shrinkage=c.inversion_shrinkage,
        candidates=interaction_candidates(design) if by_design and c.latent_interactions else None,
    )  # fmt: skip
    effect = np.zeros((design_rows.shape[1], profiles.shape[1]))
    direction, state_effect = np.zeros((design_rows.shape[1], c.latent_dim)), effect.copy()
    if residuals is not None:
        shrunk, null = fit_direct_path(design_rows, residuals, keep)
    if c.direct_path:
        effect = shrunk
        if c.direct_basis != "residuals":
            factor_effect = factor_path_effect(codes, design_rows, latent, design, decode, regress)
            effect = anchor_direct_path(design_rows, profiles, factor_effect, keep, design, shrunk, null,
                                        c.direct_basis)
    if c.state_path:
        state = patient_state(codes, latent, regressors, c.state_basis)
        direction, state_effect = fit_state_path(design_rows, state, residuals, keep, null,
                                                 direction_null=c.state_direction_null)
    return latent, effect, direction, state_effect


def patient_state(codes: np.ndarray, latent: LatentModel, regressors: np.ndarray, basis: str) -> np.ndarray:
    """The state the state path reads, (n, d): the factors z themselves ("factors"), or the position given the
    clinical state, u = (z - μ(y)) / σ(y) ("position"), for codes (n, d) and the latent model's regressors (n, q')."""
    if basis not in STATE_BASES:
        raise IdaeError(f"state_basis must be one of {STATE_BASES}, got {basis!r}")
    if basis == "factors":
        return codes
    mean, sd = latent.moments(regressors)
    return (codes - mean) / sd


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
    state_basis: str = "factors",
) -> np.ndarray:
    """The change x' - x of the module docstring, in standardised gene units: (n, p).

    codes (n, d): the patients' factors; reconstruction (n, p): their decoded codes; decode: factors (n, d) ->
    profiles (n, p), the fitted decoder;
    old/new_regressors (n, q'): the latent model's regressors before and after the change; moved (n, q): the
    change of the design rows, D(y') - D(y); direct_effect (q, p), state_direction (q, d), state_effect (q, p):
    the fitted direct and state paths; state_basis: the state the state path reads, the factors ("factors") or the
    position ("position")."""
    mean_old, sd_old = latent.moments(old_regressors)
    mean_new, sd_new = latent.moments(new_regressors)
    position = (codes - mean_old) / sd_old  # what is specific to the patient, kept
    delta = (decode(mean_new + sd_new * position) - reconstruction).astype(float)
    along = patient_state(codes, latent, old_regressors, state_basis) @ state_direction.T  # (n, q): s·w_j
    return delta + moved @ direct_effect + (moved * along) @ state_effect
