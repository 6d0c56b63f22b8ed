"""Identifiability metrics, the ICE-BeeM condition check, and the scores of an inversion.

Strong MCC: mean absolute Pearson correlation between estimated and true factors after the best
one-to-one matching (Hungarian algorithm) -- 1 means identified up to permutation and scaling.
Weak MCC: for each true factor, the correlation of its best linear prediction from all the estimated
factors (the multiple correlation R of a least-squares fit on the same samples), averaged over the true
factors. It asks only for identifiability up to an invertible linear map, and it can never fall below the
strong MCC of the same factors: a single matched factor is one of the linear predictions it considers.
Chance: `chance_mcc` gives both for independent noise of the same size, which is far from zero on few samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from idae.errors import IdaeError


def _as_2d(name: str, a) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise IdaeError(f"{name} must be a (samples, factors) array, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise IdaeError(f"{name} has non-finite values")
    return a


def correlation_matrix(estimated, true) -> np.ndarray:
    """|Pearson r| between every estimated factor (rows) and every true factor (columns).

    A constant column has no correlation with anything (0), not NaN.
    """
    a, b = _as_2d("estimated", estimated), _as_2d("true", true)
    if len(a) != len(b):
        raise IdaeError(f"estimated has {len(a)} samples but true has {len(b)}")
    if len(a) < 3:
        raise IdaeError(f"need at least 3 samples to correlate factors, got {len(a)}")
    a = a - a.mean(0)
    b = b - b.mean(0)
    na, nb = np.linalg.norm(a, axis=0), np.linalg.norm(b, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a.T @ b) / np.outer(na, nb)
    return np.abs(np.nan_to_num(r, nan=0.0, posinf=0.0, neginf=0.0))


def match_factors(estimated, true) -> tuple[np.ndarray, np.ndarray]:
    """Best one-to-one matching: (indices into estimated, indices into true) and their |r|."""
    r = correlation_matrix(estimated, true)
    rows, cols = linear_sum_assignment(-r)
    return np.stack([rows, cols]), r[rows, cols]


def mcc(estimated, true) -> float:
    """Strong MCC in [0, 1]: mean |r| over the Hungarian matching of factors.

    With unequal factor counts the smaller set is matched and the mean is over the true factors, so
    missing a true factor costs as much as estimating it with zero correlation.
    """
    _, r = match_factors(estimated, true)
    n_true = _as_2d("true", true).shape[1]
    return float(r.sum() / n_true)


def weak_mcc(estimated, true) -> float:
    """Weak MCC in [0, 1]: mean over true factors of the multiple correlation R with the estimated factors.

    R_j is the correlation between true factor j and its least-squares fit on every estimated factor
    (with an intercept) on the same samples; R_j >= |r| with any single estimated factor, hence weak MCC
    >= strong MCC. An invertible linear mix of the true factors scores 1.
    """
    a, b = _as_2d("estimated", estimated), _as_2d("true", true)
    if len(a) != len(b):
        raise IdaeError(f"estimated has {len(a)} samples but true has {len(b)}")
    if len(a) <= a.shape[1] + 1:
        raise IdaeError(f"weak MCC needs more samples than estimated factors + 1, got {len(a)} for {a.shape[1]}")
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    coef, *_ = np.linalg.lstsq(a, b, rcond=None)
    fitted = a @ coef
    r = np.diag(correlation_matrix(fitted, b)) if b.shape[1] > 1 else correlation_matrix(fitted, b)[0]
    # the strong MCC's matched pairs are among the fits considered: never report less (float rounding)
    return float(max(np.mean(r), mcc(estimated, true)))


def chance_mcc(n_samples: int, n_factors: int, n_true: int | None = None, repeats: int = 200,
               seed: int = 0) -> tuple[float, float]:  # fmt: skip
    """(strong, weak) MCC of independent Gaussian noise against independent Gaussian 'truth' of this size:
    the level a score must clear to mean anything (mean over `repeats` draws)."""
    rng = np.random.default_rng(seed)
    n_true = n_factors if n_true is None else n_true
    scores = [(mcc(e, t), weak_mcc(e, t)) for e, t in (
        (rng.normal(size=(n_samples, n_factors)), rng.normal(size=(n_samples, n_true))) for _ in range(repeats))]
    strong, weak = np.mean(scores, axis=0)
    return float(strong), float(weak)


def per_gene_r2(truth: pd.DataFrame, predicted: pd.DataFrame, mean: pd.Series) -> pd.Series:
    """Per gene, 1 - Σ(truth - predicted)² / Σ(truth - mean)², `mean` a reference level (the training mean):
    1 is perfect, 0 no better than predicting that mean, negative worse."""
    _same_labels("truth", truth, "predicted", predicted)
    return 1 - ((truth - predicted) ** 2).sum() / ((truth - mean) ** 2).sum()


def cross_seed_mcc(factors: dict[str, np.ndarray] | list[np.ndarray]) -> pd.DataFrame:
    """Strong MCC between every pair of fitted models' factors on the same samples (no ground truth).

    `factors` maps a label (say the seed) to a (samples, d) array. Returns a symmetric DataFrame with 1 on
    the diagonal; off-diagonal entries near 1 mean the fits found the same factors.
    """
    if not isinstance(factors, dict):
        factors = {str(i): f for i, f in enumerate(factors)}
    if len(factors) < 2:
        raise IdaeError("cross-seed MCC needs at least two fitted models")
    labels = list(factors)
    out = np.eye(len(labels))
    for i in range(len(labels)):
        for j in range(i + 1, len(labels)):
            a, b = factors[labels[i]], factors[labels[j]]
            # symmetrise: the mean over true factors depends on which side is called "true"
            out[i, j] = out[j, i] = 0.5 * (mcc(a, b) + mcc(b, a))
    return pd.DataFrame(out, index=labels, columns=labels)


def off_diagonal(matrix: pd.DataFrame | np.ndarray) -> np.ndarray:
    """The upper-triangle entries of a square matrix, e.g. every distinct pair of a cross-seed MCC matrix."""
    m = np.asarray(matrix)
    return m[np.triu_indices_from(m, k=1)]


RANK_TOLERANCE = 1e-3  # singular values below this share of the largest count as zero (rank of λ differences)
NEAR_RANK_DEFICIENT = 0.05  # a smallest relative singular value below this is reported as weak variability


@dataclass(frozen=True)
class ConditionReport:
    """What the clinical design can identify under ICE-BeeM's variability condition.

    The condition needs kd + 1 distinct conditions whose natural-parameter differences have rank kd
    (k sufficient statistics per factor: 2 for a Gaussian [z, z²]; d factors). The distinct clinical
    profiles bound what any model can reach ((profiles - 1) // k factors); the rank of the design is what a
    map linear in the clinical variables could reach; the rank of the fitted model's natural-parameter
    differences (singular values above `RANK_TOLERANCE` of the largest) is what this fit reached, and its
    smallest relative singular value says how close the fit is to losing one more direction.
    """

    n_samples: int
    n_profiles: int
    design_rank: int
    natural_parameter_rank: int | None
    smallest_relative_singular_value: float | None
    latent_dim: int
    n_terms: int

    @property
    def max_latent_dim(self) -> int:
        """The largest number of factors these data identify: the fitted rank when known, else the profiles."""
        bound = (self.n_profiles - 1) // self.n_terms
        if self.natural_parameter_rank is not None:
            bound = min(bound, self.natural_parameter_rank // self.n_terms)
        return bound

    @property
    def max_latent_dim_linear(self) -> int:
        return self.design_rank // self.n_terms

    @property
    def ok(self) -> bool:
        return self.latent_dim <= self.max_latent_dim

    @property
    def warning(self) -> str | None:
        if self.ok:
            return None
        need = self.n_terms * self.latent_dim
        have = (f"{self.n_profiles} distinct clinical profiles" if self.natural_parameter_rank is None else
                f"{self.n_profiles} distinct clinical profiles and natural-parameter differences of rank "
                f"{self.natural_parameter_rank}")  # fmt: skip
        return (f"latent_dim={self.latent_dim} exceeds what the clinical data identify: {self.latent_dim} factors "
                f"with {self.n_terms} statistics each need {need + 1} distinct profiles and rank {need}, these "
                f"patients give {have}; at most {self.max_latent_dim} factor(s) are identifiable")

    def __str__(self) -> str:
        lines = [
            f"samples:                         {self.n_samples}",
            f"distinct clinical profiles:      {self.n_profiles}",
            f"rank of design differences:      {self.design_rank}",
        ]
        if self.natural_parameter_rank is not None:
            lines.append(f"rank of natural-param. diffs:    {self.natural_parameter_rank} "
                         f"(smallest relative singular value {self.smallest_relative_singular_value:.2g})")
        lines += [
            f"needed for d={self.latent_dim}, k={self.n_terms}:        "
            f"{self.n_terms * self.latent_dim + 1} profiles, rank {self.n_terms * self.latent_dim}",
            # without fitted natural parameters only the profile count bounds d; with them, their rank does too
            (f"largest d the fitted rank allows: {self.max_latent_dim} " if self.natural_parameter_rank is not None
             else f"largest d the profiles allow:    {self.max_latent_dim} ")
            + f"(parameters linear in the design: {self.max_latent_dim_linear})",
        ]
        # a rank reached by a tiny singular value is met on paper: the variability it rests on is weak
        near = (self.natural_parameter_rank is not None and not self.warning
                and self.smallest_relative_singular_value < NEAR_RANK_DEFICIENT)  # fmt: skip
        if self.warning:
            lines.append(f"WARNING: {self.warning}")
        elif self.latent_dim > self.max_latent_dim_linear:
            # λ = [m/v, -1/(2v)] is nonlinear in the design, so it can reach a rank the design itself does not have
            lines.append(f"condition met only through natural parameters nonlinear in the design: parameters linear in "
                         f"it would identify at most {self.max_latent_dim_linear} factor(s)")
        else:
            lines.append("condition met")
        if near:
            lines.append(f"the rank holds with a smallest relative singular value of "
                         f"{self.smallest_relative_singular_value:.2g} (below {NEAR_RANK_DEFICIENT:g}): the condition "
                         "is met, but the clinical variability it needs is weak along one direction")
        return "\n".join(lines)


def _difference_spectrum(rows: np.ndarray) -> np.ndarray:
    """Singular values of the differences of every row from the first (empty for fewer than 2 rows)."""
    if len(rows) < 2:
        return np.zeros(0)
    return np.linalg.svd(rows[1:] - rows[0], compute_uv=False)


def _difference_rank(rows: np.ndarray) -> int:
    s = _difference_spectrum(rows)
    if not s.size:
        return 0
    tol = max(rows.shape) * np.finfo(np.float64).eps * 1e3 * max(float(s[0]), 1.0)
    return int((s > tol).sum())


def condition_check(design, latent_dim: int, n_terms: int = 2, natural_parameters=None,
                    decimals: int = 6) -> ConditionReport:
    """Count distinct clinical profiles and the rank of their differences.

    design: (samples, design width) clinical design matrix (after `ClinicalDesign.transform`).
    natural_parameters: optional (samples, k*d) natural parameters λ(y) of a fitted model for the same rows;
    their rank counts singular values above `RANK_TOLERANCE` of the largest (an untrained, constant λ has rank 0).
    """
    if not isinstance(latent_dim, int | np.integer) or latent_dim < 1:
        raise IdaeError(f"latent_dim must be a positive integer, got {latent_dim!r}")
    if not isinstance(n_terms, int | np.integer) or n_terms < 1:
        raise IdaeError(f"n_terms must be a positive integer, got {n_terms!r}")
    y = _as_2d("design", design)
    profiles, first = np.unique(np.round(y, decimals), axis=0, return_index=True)
    lam_rank = smallest = None
    if natural_parameters is not None:
        lam = _as_2d("natural_parameters", natural_parameters)
        if len(lam) != len(y):
            raise IdaeError(f"natural_parameters has {len(lam)} rows but design has {len(y)}")
        s = _difference_spectrum(lam[np.sort(first)])
        if not s.size or s[0] <= 0:
            lam_rank, smallest = 0, 0.0
        else:
            relative = s / s[0]
            lam_rank = int((relative > RANK_TOLERANCE).sum())
            needed = min(n_terms * int(latent_dim), len(relative))
            smallest = float(relative[needed - 1]) if needed else 0.0
    return ConditionReport(
        n_samples=len(y), n_profiles=len(profiles), design_rank=_difference_rank(profiles),
        natural_parameter_rank=lam_rank, smallest_relative_singular_value=smallest, latent_dim=int(latent_dim),
        n_terms=int(n_terms),
    )


# --------------------------------------------------------------------------------------------------
# inversion
#
# Scores for predicted counterfactual profiles (`IDAE.invert`, the inversion baselines) against the true
# ones (`SyntheticCohort.counterfactual`) or, on real data, against the patients really in the target state.


def _same_labels(name_a: str, a, name_b: str, b, rows: bool = True) -> None:
    """When both are DataFrames, b's genes (and, with rows, patients) must be a's, in the same order."""
    if not (isinstance(a, pd.DataFrame) and isinstance(b, pd.DataFrame)):
        return
    if not a.columns.equals(b.columns):
        raise IdaeError(f"{name_b}'s columns (genes) differ from {name_a}'s or are in another order")
    if rows and not a.index.equals(b.index):
        raise IdaeError(f"{name_b}'s index (patients) differs from {name_a}'s or is in another order")


def _same_shape(name_a: str, a: np.ndarray, name_b: str, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise IdaeError(f"{name_b} has shape {b.shape} but {name_a} has shape {a.shape}")


def _row_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r between matching rows of a and b (n,); NaN where either row is constant."""
    ac = a - a.mean(axis=1, keepdims=True)
    bc = b - b.mean(axis=1, keepdims=True)
    constant = (np.ptp(a, axis=1) == 0) | (np.ptp(b, axis=1) == 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (ac * bc).sum(axis=1) / np.sqrt((ac**2).sum(axis=1) * (bc**2).sum(axis=1))
    return np.where(constant, np.nan, np.clip(r, -1.0, 1.0))


def _r2(predicted: np.ndarray, truth: np.ndarray) -> float:
    """1 - SS_res / SS_tot of a 1-D prediction around the truth's mean; NaN when the truth is constant."""
    if np.ptp(truth) == 0:
        return float("nan")
    return float(1.0 - ((predicted - truth) ** 2).sum() / ((truth - truth.mean()) ** 2).sum())


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(_row_pearson(a[None, :], b[None, :])[0])


def _median(values: np.ndarray) -> float:
    """Median over the defined (non-NaN) values; NaN when none is defined."""
    values = values[~np.isnan(values)]
    return float(np.median(values)) if values.size else float("nan")


def per_patient_delta(predicted_delta, true_delta) -> pd.DataFrame:
    """Per patient, how well the predicted change matches the true change over the genes.

    predicted_delta, true_delta: (n patients, p genes), e.g. `IDAE.invert(...) - genomic` and
    `cohort.counterfactual(...) - cohort.genomic`. Returns an (n, 2) DataFrame with columns `pearson` and
    `r2` (1 - sum((pred - true)^2) / sum((true - mean(true))^2), over that patient's genes), indexed like
    the DataFrame inputs (0..n-1 for arrays). A patient whose true change is constant across genes (say
    unchanged, Δ = 0) gets NaN in both columns; a constant predicted change gets NaN Pearson only.
    """
    _same_labels("predicted_delta", predicted_delta, "true_delta", true_delta)
    pred, true = _as_2d("predicted_delta", predicted_delta), _as_2d("true_delta", true_delta)
    _same_shape("predicted_delta", pred, "true_delta", true)
    if pred.shape[1] < 2:
        raise IdaeError(f"true_delta needs at least 2 genes (columns) to compare changes, got {pred.shape[1]}")
    constant = np.ptp(true, axis=1) == 0
    with np.errstate(invalid="ignore", divide="ignore"):
        ss_tot = ((true - true.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
        r2 = 1.0 - ((pred - true) ** 2).sum(axis=1) / ss_tot
    r2 = np.where(constant, np.nan, r2)
    index = next((x.index for x in (predicted_delta, true_delta) if isinstance(x, pd.DataFrame)), None)
    return pd.DataFrame({"pearson": _row_pearson(pred, true), "r2": r2}, index=index)


def interval_coverage(lower, upper, truth) -> float:
    """Share of cells with lower <= truth <= upper (bounds included); all three (n, p)."""
    _same_labels("lower", lower, "upper", upper)
    _same_labels("lower", lower, "truth", truth)
    lo, hi, t = _as_2d("lower", lower), _as_2d("upper", upper), _as_2d("truth", truth)
    _same_shape("lower", lo, "upper", hi)
    _same_shape("lower", lo, "truth", t)
    if t.size == 0:
        raise IdaeError("truth is empty: coverage is undefined")
    if (lo > hi).any():
        raise IdaeError(f"upper is below lower in {int((lo > hi).sum())} cell(s)")
    return float(((lo <= t) & (t <= hi)).mean())


def energy_distance(x, y, max_points: int = 2000, seed: int = 0) -> float:
    """Energy distance between two point clouds x (n, p) and y (m, p): 2E|X-Y| - E|X-X'| - E|Y-Y'|.

    This is the energy distance of Székely & Rizzo with Euclidean norms (not squared distances, and no
    square root taken), computed between the two empirical distributions (means over all pairs, each
    point with itself included), so it is >= 0 and exactly 0 for identical clouds. It is zero only when
    the distributions agree. With squared norms the expression reduces to 2|mean(x) - mean(y)|^2: it
    compares means only and rewards collapsing every patient onto the target mean.
    A cloud with more than `max_points` rows is subsampled (without replacement) by a generator seeded
    with `seed`, so the three (<= max_points)^2 distance matrices bound the memory.
    """
    _same_labels("x", x, "y", y, rows=False)
    a, b = _as_2d("x", x), _as_2d("y", y)
    if a.shape[1] != b.shape[1]:
        raise IdaeError(f"y has {b.shape[1]} columns (genes) but x has {a.shape[1]}")
    if len(a) == 0 or len(b) == 0:
        raise IdaeError(f"{'x' if len(a) == 0 else 'y'} has no rows")
    if not isinstance(max_points, int | np.integer) or max_points < 1:
        raise IdaeError(f"max_points must be a positive integer, got {max_points!r}")

    def subsample(c: np.ndarray) -> np.ndarray:
        if len(c) <= max_points:
            return c
        return c[np.sort(np.random.default_rng(seed).choice(len(c), size=max_points, replace=False))]

    a, b = subsample(a), subsample(b)
    xy = cdist(a, b).mean()
    xx = cdist(a, a).mean()
    yy = cdist(b, b).mean()
    return max(float(2.0 * xy - xx - yy), 0.0)


def population_metrics(predicted, observed_target, source, top: tuple[int, ...] = (20, 50),
                       max_points: int = 2000, seed: int = 0) -> dict[str, float]:
    """Population-level scores of a counterfactual for a group of source patients.

    predicted: (n, p) predicted profiles of the source patients after the change; observed_target: (m, p)
    real profiles of the patients who are in the target state; source: (n, p) the source patients'
    profiles before the change. Δ is a per-gene mean minus the source's per-gene mean. Returns:

    - `r2_mean_all`: R² of the per-gene means of predicted against those of observed_target, all genes;
    - `r2_mean_top{k}` for k in `top`: the same over the k genes with the largest observed |Δ|;
    - `pearson_delta`: Pearson r of predicted Δ against observed Δ over all genes;
    - `wrong_direction_top{k}`: share of those k genes whose predicted Δ has the opposite sign to the
      observed Δ (a predicted Δ of exactly 0 is not counted as wrong);
    - `energy_distance`: between the predicted and observed_target clouds (see `energy_distance`): the
      energy distance of Székely & Rizzo with Euclidean norms, not squared ones, because the squared
      version only compares means and so rewards collapsing every patient onto the target mean.

    R² and Pearson are NaN where undefined (constant observed means, constant Δ).
    """
    _same_labels("source", source, "predicted", predicted)
    _same_labels("source", source, "observed_target", observed_target, rows=False)
    pred, obs = _as_2d("predicted", predicted), _as_2d("observed_target", observed_target)
    src = _as_2d("source", source)
    _same_shape("source", src, "predicted", pred)
    if obs.shape[1] != src.shape[1]:
        raise IdaeError(f"observed_target has {obs.shape[1]} columns (genes) but source has {src.shape[1]}")
    if len(src) == 0 or len(obs) == 0:
        raise IdaeError(f"{'source' if len(src) == 0 else 'observed_target'} has no rows")
    p = src.shape[1]
    top = tuple(top)
    for k in top:
        if not isinstance(k, int | np.integer) or not 1 <= k <= p:
            raise IdaeError(f"top must hold integers between 1 and the number of genes ({p}), got {k!r}")

    mean_pred, mean_obs, mean_src = pred.mean(axis=0), obs.mean(axis=0), src.mean(axis=0)
    delta_pred, delta_obs = mean_pred - mean_src, mean_obs - mean_src
    order = np.argsort(-np.abs(delta_obs), kind="stable")

    out = {"r2_mean_all": _r2(mean_pred, mean_obs)}
    for k in top:
        out[f"r2_mean_top{k}"] = _r2(mean_pred[order[:k]], mean_obs[order[:k]])
    out["pearson_delta"] = _pearson(delta_pred, delta_obs)
    for k in top:
        idx = order[:k]
        out[f"wrong_direction_top{k}"] = float((delta_pred[idx] * delta_obs[idx] < 0).mean())
    out["energy_distance"] = energy_distance(pred, obs, max_points=max_points, seed=seed)
    return out


def _group_mean(name: str, mean, shape: tuple[int, int]) -> np.ndarray:
    """A group mean as a (p,) gene vector, (1, p) or (n, p) rows, broadcastable to `shape` (n, p)."""
    m = np.asarray(mean, dtype=np.float64)
    m = _as_2d(name, m[None, :] if m.ndim == 1 else m)
    if m.shape[1] != shape[1] or len(m) not in (1, shape[0]):
        raise IdaeError(f"{name} has shape {m.shape}: expected ({shape[1]},) genes or {shape} per-patient rows")
    return m


def residual_preservation(before, after, before_group_mean, after_group_mean) -> float:
    """Whether each patient's own variation survives the change.

    before, after: (n, p) profiles before and after the change (e.g. observed and predicted); the group
    means are each a (p,) gene vector or (n, p) per-patient rows (each patient's group, e.g. source and
    target). Returns the median over patients of the Pearson r, over genes, between the patient's
    deviation from its group mean before (before - before_group_mean) and after (after -
    after_group_mean). 1: the change moved the patient with its group and kept its individuality; near
    0: the residual was replaced (a collapse to the target mean leaves none). Patients whose deviation
    is constant are left out of the median; NaN when none is left.
    """
    _same_labels("before", before, "after", after)
    b, a = _as_2d("before", before), _as_2d("after", after)
    _same_shape("before", b, "after", a)
    if b.shape[1] < 2:
        raise IdaeError(f"after needs at least 2 genes (columns) to correlate residuals, got {b.shape[1]}")
    mb = _group_mean("before_group_mean", before_group_mean, b.shape)
    ma = _group_mean("after_group_mean", after_group_mean, a.shape)
    return _median(_row_pearson(b - mb, a - ma))


def cycle_consistency(original, round_trip) -> float:
    """How well changing a patient's clinical state and changing it back recovers the profile.

    original, round_trip: (n, p). Returns the median over patients of R² = 1 - sum((round_trip -
    original)^2) / sum((original - gene_mean)^2), where gene_mean is the per-gene mean of original over
    the patients: the denominator is the patient's deviation from the cohort mean, so 1 is a perfect
    round trip and 0 is no better than returning the cohort mean. Patients exactly at the cohort mean
    are left out of the median; NaN when none is left.
    """
    _same_labels("original", original, "round_trip", round_trip)
    x, rt = _as_2d("original", original), _as_2d("round_trip", round_trip)
    _same_shape("original", x, "round_trip", rt)
    if len(x) < 2:
        raise IdaeError(f"original needs at least 2 patients (rows) for a cohort mean, got {len(x)}")
    ss_tot = ((x - x.mean(axis=0)) ** 2).sum(axis=1)
    ss_res = ((rt - x) ** 2).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        r2 = np.where(ss_tot > 0, 1.0 - ss_res / ss_tot, np.nan)
    return _median(r2)


def ranks(effect: pd.Series) -> pd.Series:
    """Rank of each gene by |effect| (1 = largest), ties broken by gene order."""
    order = np.argsort(-np.abs(effect.to_numpy()), kind="stable")
    out = np.empty(len(effect), dtype=int)
    out[order] = np.arange(1, len(effect) + 1)
    return pd.Series(out, index=effect.index, name="rank")
