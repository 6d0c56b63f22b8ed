"""Inversion case studies (notebook 05): ensembles, scoring against a known truth, gene ranks (figures: `plots`).

Everything here works on counterfactual *profiles* (patients × genes) and the change they imply,
Δ = profile after − profile before. A "predictor" is any `invert(genomic, clinical, changes)` with the
contract of `IDAE.invert`: an `Ensemble` of fitted models and the baselines of `idae.inversion_baselines`
(`InversionBaseline.invert`) both qualify, so every score is computed the same way for all of them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import t as student_t
from tqdm import tqdm

from idae import metrics
from idae.data import subsample
from idae.errors import IdaeError
from idae.estimator import IDAE
from idae.invert import apply_changes
from idae.metrics import ranks  # notebook 05 reads it as cs.ranks beside signature_table

Invert = Callable[[pd.DataFrame, pd.DataFrame, Any], pd.DataFrame]


# --------------------------------------------------------------------------------------------------
# ensembles


class Ensemble:
    """Several fitted `IDAE` models; `invert` averages their counterfactual profiles.

    fraction: None when every member was fitted on all the training patients (members differ by seed only), or
    the share of them each member saw (`subagged`); patients: then, per member, the IDs of the patients it saw."""

    def __init__(self, models: Sequence[IDAE], fraction: float | None = None,
                 patients: Sequence[pd.Index] | None = None):  # fmt: skip
        if not models:
            raise IdaeError("an ensemble needs at least one model")
        if fraction is not None and not 0 < fraction < 1:
            raise IdaeError(f"fraction must be in (0, 1) or None, got {fraction}")
        if (fraction is None) != (patients is None) or (patients is not None and len(patients) != len(models)):
            raise IdaeError("give an ensemble of subsampled members both its fraction and each member's patients")
        self.models, self.fraction = list(models), fraction
        self.patients = None if patients is None else [pd.Index(p) for p in patients]

    def __len__(self) -> int:
        return len(self.models)

    @property
    def interval_scale(self) -> float:
        """The factor from the members' spread to the sampling sd of a fit on all n training patients: for
        members fitted on m = f·n of them drawn without replacement, the spread of a mean-like estimate across
        subsamples is σ²(1/m − 1/n), its sampling variance on all n is σ²/n, hence sqrt(f / (1 − f))
        (subsampling: Politis, Romano & Wolf, Subsampling, Springer 1999). 1 for members fitted on all of them."""
        return 1.0 if self.fraction is None else float(np.sqrt(self.fraction / (1 - self.fraction)))

    def profiles(self, genomic: pd.DataFrame, clinical: pd.DataFrame, changes: Any) -> np.ndarray:
        """Each member's counterfactual profiles, stacked: (members, patients, genes)."""
        return np.stack([m.invert(genomic, clinical, changes).to_numpy() for m in self.models])

    def invert(self, genomic: pd.DataFrame, clinical: pd.DataFrame, changes: Any) -> pd.DataFrame:
        """The members' mean counterfactual profile, as a DataFrame like `IDAE.invert`'s."""
        genes = self.models[0].genes_
        return pd.DataFrame(self.profiles(genomic, clinical, changes).mean(axis=0), index=genomic.index, columns=genes)


    def refit_inversion(self, genomic: pd.DataFrame, clinical: pd.DataFrame, **settings: Any) -> Ensemble:
        """Every member's `IDAE.refit_inversion(...)` on the patients it was fitted on: all of `genomic` and
        `clinical` (the ensemble's training tables), or the rows of member m's `patients`."""
        if self.patients is None:
            tables = [(genomic, clinical)] * len(self)
        else:
            absent = [p for member in self.patients for p in member.difference(genomic.index)]
            if absent:
                raise IdaeError(f"genomic lacks patients the members were fitted on, e.g. {absent[:5]}: pass the "
                                "ensemble's training tables")  # fmt: skip
            tables = [(genomic.loc[p], clinical.loc[p]) for p in self.patients]
        refitted = [m.refit_inversion(g, c, **settings) for m, (g, c) in zip(self.models, tables, strict=True)]
        return Ensemble(refitted, self.fraction, self.patients)


def subagged(fit: Callable[[pd.DataFrame, pd.DataFrame, int], IDAE], genomic: pd.DataFrame, clinical: pd.DataFrame,
             members: int = 5, fraction: float = 0.8, progress: bool = True) -> Ensemble:  # fmt: skip
    """Subagging (Bühlmann & Yu, Annals of Statistics 2002): member m is `fit(g, c, m)` on the subsample
    `subsample(genomic, clinical, seed=m, fraction=fraction)` (pass m as the model's seed). The members' mean
    is the prediction; their spread, scaled by `Ensemble.interval_scale`, carries the sampling variability of
    the training patients as well as that of the optimisation, which seeds alone do not."""
    if isinstance(members, bool) or not isinstance(members, int) or members < 2:
        raise IdaeError(f"a subagged ensemble needs at least 2 members, got {members!r}")
    tables = [subsample(genomic, clinical, m, fraction) for m in range(members)]
    fitted = [fit(g, c, m) for m, (g, c) in enumerate(tqdm(tables, desc="subagged members", disable=not progress))]
    return Ensemble(fitted, fraction, [g.index for g, _ in tables])


def counterfactuals(
    predictors: dict[str, Any], genomic: pd.DataFrame, clinical: pd.DataFrame, changes: Any
) -> tuple[dict[str, pd.DataFrame], dict[str, np.ndarray]]:
    """Every predictor's counterfactual profiles of the same patients under the same changes.

    predictors: name -> an `Ensemble` or anything with `invert(genomic, clinical, changes)`.
    Returns (name -> profiles DataFrame, ensemble name -> (members, n, p) member profiles).
    """
    predicted, members = {}, {}
    for name, predictor in predictors.items():
        if isinstance(predictor, Ensemble):
            members[name] = predictor.profiles(genomic, clinical, changes)
            genes = predictor.models[0].genes_
            predicted[name] = pd.DataFrame(members[name].mean(axis=0), index=genomic.index, columns=genes)
        else:
            predicted[name] = predictor.invert(genomic, clinical, changes)
    return predicted, members


def intervals(profiles: np.ndarray, level: float = 0.90, scale: float = 1.0
              ) -> dict[str, tuple[np.ndarray, np.ndarray]]:  # fmt: skip
    """Per-cell intervals from an ensemble's (members, n, p) profiles, its spread widened by `scale`
    (`Ensemble.interval_scale`).

    "t": mean ± t·scale·sd across members (sd with ddof=1), t the (1+level)/2 quantile of Student's t with
    members − 1 degrees of freedom (2.13 for 5 members at 90%): the sd is itself estimated from the members, so a
    normal quantile (1.645) would cover only 82% at 90% nominal with 5 of them (Student, Biometrika 1908);
    "quantile": mean + scale·(q − mean) for the empirical (1−level)/2 and (1+level)/2 quantiles q across members
    (linear interpolation).
    """
    if profiles.ndim != 3 or len(profiles) < 2:
        raise IdaeError(f"intervals need (members >= 2, n, p) profiles, got shape {profiles.shape}")
    if not 0 < level < 1:
        raise IdaeError(f"level must be in (0, 1), got {level}")
    t = float(student_t.ppf(0.5 + level / 2, df=len(profiles) - 1))
    mean, sd = profiles.mean(axis=0), profiles.std(axis=0, ddof=1)
    tail = (1 - level) / 2
    lo, hi = np.quantile(profiles, [tail, 1 - tail], axis=0)
    return {"t": (mean - t * scale * sd, mean + t * scale * sd),
            "quantile": (mean + scale * (lo - mean), mean + scale * (hi - mean))}  # fmt: skip


def conformal_intervals(genomic: pd.DataFrame, clinical: pd.DataFrame, column: str, targets: pd.Series,
                        level: float = 0.90, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Split-conformal intervals for the profiles (len(targets), p) that the patients `targets` would have at the
    levels it gives (one level of `column` per patient), from the training profiles `genomic` (n, p) and their
    `clinical` table. Within each level, half the training patients (drawn with `seed`) give the level's mean
    profile and the other half the per-gene (1 + 1/m)·level quantile of |profile − mean|, m their number; the
    interval is that mean ± that quantile. Training patients with no value in `column` are not used.

    Valid (coverage of at least `level` for each gene) when `column` is assigned independently of everything else
    about a patient, as in a randomised trial or the semi-synthetic benchmark (Lei & Candès, JRSS-B 2021): a
    baseline whose calibration needs no model. The intervals do not use the patient's own profile, so they are
    as wide as the spread between patients."""
    if not 0 < level < 1:
        raise IdaeError(f"level must be in (0, 1), got {level}")
    if column not in clinical.columns:
        raise IdaeError(f"column {column!r} is not in the clinical table ({list(clinical.columns)})")
    if not genomic.index.equals(clinical.index):
        raise IdaeError("genomic and clinical must hold the same patients in the same order")
    observed = clinical[column].astype(object)
    known = set(observed.dropna())
    absent = sorted({str(v) for v in targets.dropna()} - {str(v) for v in known})
    if absent or targets.isna().any():
        raise IdaeError(f"targets holds levels that no training patient has in {column!r}: "
                        f"{absent or ['a missing value']} (levels: {sorted(map(str, known))})")  # fmt: skip
    rng = np.random.default_rng(seed)
    x = genomic.to_numpy(dtype=float)
    lower = np.empty((len(targets), x.shape[1]))
    upper = np.empty_like(lower)
    for value in sorted(set(targets), key=str):
        rows = rng.permutation(np.flatnonzero((observed == value).to_numpy()))
        fit, calibrate = rows[: len(rows) // 2], rows[len(rows) // 2 :]
        rank = int(np.ceil(level * (len(calibrate) + 1)))
        if rank > len(calibrate):
            raise IdaeError(f"{column!r} = {value!r}: {len(calibrate)} calibration patients (half of {len(rows)}) are "
                            f"too few for a {level:.0%} conformal interval; it needs {rank}")  # fmt: skip
        mean = x[fit].mean(axis=0)
        half = np.sort(np.abs(x[calibrate] - mean), axis=0)[rank - 1]
        query = (targets == value).to_numpy()
        lower[query], upper[query] = mean - half, mean + half
    return lower, upper


COVERAGE_LEVELS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


def coverage_curve(
    profiles: np.ndarray, truth: np.ndarray, scale: float = 1.0, levels: Sequence[float] = COVERAGE_LEVELS,
    cells: np.ndarray | None = None,
) -> pd.DataFrame:
    """Coverage of each kind of `intervals` at each nominal level: (levels, kinds), the share of true values
    inside. profiles (members, n, p): an ensemble's profiles; truth (n, p): the true profiles; scale: the
    ensemble's `interval_scale`; cells (n, p) booleans: the cells to count (default all). A calibrated interval
    lies on the diagonal."""
    if truth.shape != profiles.shape[1:]:
        raise IdaeError(f"truth: expected shape {profiles.shape[1:]}, got {truth.shape}")
    cells = np.ones(truth.shape, dtype=bool) if cells is None else cells
    rows = {}
    for level in levels:
        rows[level] = {kind: metrics.interval_coverage(lower[cells], upper[cells], truth[cells])
                       for kind, (lower, upper) in intervals(profiles, level, scale).items()}  # fmt: skip
    return pd.DataFrame(rows).T.rename_axis("nominal level")


# --------------------------------------------------------------------------------------------------
# the negative control against a permutation null

Flip = tuple[str, str, str]  # (column, from level, to level)


def change_ratio(predictor: Any, genomic: pd.DataFrame, clinical: pd.DataFrame, flip: Flip, reference: Flip) -> float:
    """Mean |Δ̂| (over genes and patients) of `flip` for the patients at its `from` level, divided by the same for
    `reference`: how much a column moves expression beside a column known to move it. `predictor`: anything with
    `invert(genomic, clinical, changes)` (an `Ensemble`, a baseline)."""

    def mean_change(column: str, old: str, new: str) -> float:
        source = clinical.index[clinical[column].astype(object) == old]
        if not len(source):
            raise IdaeError(f"no patient has {column} = {old!r}: nothing to flip")
        moved = predictor.invert(genomic.loc[source], clinical.loc[source], {column: new}) - genomic.loc[source]
        return float(moved.abs().to_numpy().mean())

    return mean_change(*flip) / mean_change(*reference)


def permutation_null(fit: Callable[[pd.DataFrame, pd.DataFrame], Any], genomic: pd.DataFrame, clinical: pd.DataFrame,
                     flip: Flip, reference: Flip, permutations: int = 10, seed: int = 0) -> dict[str, Any]:  # fmt: skip
    """The `change_ratio` of `flip` for a predictor fitted by `fit(genomic, clinical)` on the real table, beside the
    same ratio when the flipped column's values are shuffled across patients before fitting (`permutations`
    shuffles, seeded): a column that moves expression no more than a shuffled copy of itself is inside the null.

    Returns {"observed": ratio, "null": (permutations,) ratios, "p": (1 + #null ≥ observed) / (1 + permutations)}.
    """
    if permutations < 1:
        raise IdaeError(f"permutations must be at least 1, got {permutations}")
    column = flip[0]
    observed = change_ratio(fit(genomic, clinical), genomic, clinical, flip, reference)
    rng = np.random.default_rng(seed)
    null = []
    for _ in range(permutations):
        shuffled = clinical.copy()
        values = rng.permutation(clinical[column].to_numpy())
        shuffled[column] = pd.Series(values, index=clinical.index).astype(clinical[column].dtype)
        null.append(change_ratio(fit(genomic, shuffled), genomic, shuffled, flip, reference))
    null_ratios = np.asarray(null)
    p_value = (1 + int((null_ratios >= observed).sum())) / (1 + permutations)
    return {"observed": observed, "null": null_ratios, "p": p_value}


# --------------------------------------------------------------------------------------------------
# scores


def round_trip(invert: Invert, genomic: pd.DataFrame, clinical: pd.DataFrame, changes: dict[str, Any]) -> float:
    """`metrics.cycle_consistency` of y -> y' -> y: change the clinical values, then change them back.

    Only patients whose changed columns were observed take part (a missing cell cannot be set back).
    """
    columns = list(changes)
    keep = clinical[columns].notna().all(axis=1)
    if not keep.any():
        return float("nan")
    genomic, clinical = genomic[keep], clinical[keep]
    changed = apply_changes(clinical, changes, list(clinical.columns))
    there = invert(genomic, clinical, changes)
    back = invert(there, changed, clinical[columns])
    return metrics.cycle_consistency(genomic, back)


def score(
    invert: Invert,
    genomic: pd.DataFrame,
    clinical: pd.DataFrame,
    changes: dict[str, Any],
    truth: pd.DataFrame,
    predicted: pd.DataFrame | None = None,
) -> dict[str, float]:
    """Every inversion metric of one predictor for source patients whose true counterfactual is known.

    genomic, clinical: the source patients; truth: their true counterfactual profiles. Per patient
    (`metrics.per_patient_delta`, medians), per population (`metrics.population_metrics` against the
    true counterfactual cloud), `metrics.residual_preservation` (deviations from the source mean before
    and from the true counterfactual mean after) and the y -> y' -> y round trip.
    `predicted`: the predictor's profiles when already computed.
    """
    if predicted is None:
        predicted = invert(genomic, clinical, changes)
    per_patient = metrics.per_patient_delta(predicted - genomic, truth - genomic)
    pop = metrics.population_metrics(predicted, truth, genomic, top=(20,))
    return {
        "pearson": float(per_patient["pearson"].median()),
        "r2": float(per_patient["r2"].median()),
        "r2_mean_all": pop["r2_mean_all"],
        "r2_mean_top20": pop["r2_mean_top20"],
        "pearson_delta": pop["pearson_delta"],
        "wrong_direction_top20": pop["wrong_direction_top20"],
        "energy_distance": pop["energy_distance"],
        "residual_preservation": metrics.residual_preservation(
            genomic, predicted, genomic.mean(axis=0), truth.mean(axis=0)
        ),
        "cycle_consistency": round_trip(invert, genomic, clinical, changes),
    }


def per_patient(predicted: pd.DataFrame, genomic: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """`metrics.per_patient_delta` of a predictor's profiles against the true ones."""
    return metrics.per_patient_delta(predicted - genomic, truth - genomic)


# --------------------------------------------------------------------------------------------------
# real cohorts: gene effects and ranks


def check_flips(clinical: pd.DataFrame, flips: dict[str, Sequence[str]]) -> None:
    """Refuse case studies the clinical table cannot support, naming the column and the levels it has.

    `flips` maps a column to [from, to]: the column must be categorical and both levels must label
    at least one patient (the `from` patients are inverted; the `to` patients give the contrast).
    """
    problems = []
    for column, levels in flips.items():
        if column not in clinical.columns:
            problems.append(f"flips: no clinical column {column!r} (columns: {list(clinical.columns)})")
            continue
        if not isinstance(clinical[column].dtype, pd.CategoricalDtype):
            problems.append(
                f"flips: column {column!r} is numeric; flip a categorical one (or list it in categorical_columns)"
            )
            continue
        counts = clinical[column].astype(object).value_counts()
        absent = [str(v) for v in levels if counts.get(str(v), 0) == 0]
        if absent:
            problems.append(f"flips: {column!r} has no patient at {absent} (levels: {counts.to_dict()})")
    if problems:
        raise IdaeError("; ".join(problems))


def slug(text: str) -> str:
    """A file-name-safe form of a column name, for figure names."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_") or "column"


def group_effect(genomic: pd.DataFrame, labels: pd.Series, low: str, high: str) -> pd.Series:
    """Observed per-gene contrast: mean over patients labelled `high` − mean over those labelled `low`."""
    labels = labels.reindex(genomic.index).astype(object)
    a, b = genomic[labels == low], genomic[labels == high]
    if len(a) == 0 or len(b) == 0:
        raise IdaeError(f"no patient labelled {low if len(a) == 0 else high!r}")
    return b.mean(axis=0) - a.mean(axis=0)


def stratified_effect(genomic: pd.DataFrame, labels: pd.Series, low: str, high: str, strata: pd.Series) -> pd.Series:
    """The contrast `high` − `low` within each stratum that holds both, averaged with weights n_low·n_high/n."""
    labels = labels.reindex(genomic.index).astype(object)
    strata = strata.reindex(genomic.index).astype(object)
    total, weight = 0.0, 0.0
    for level in sorted(strata.dropna().unique()):
        inside = strata == level
        n_low, n_high = int((inside & (labels == low)).sum()), int((inside & (labels == high)).sum())
        if n_low and n_high:
            w = n_low * n_high / (n_low + n_high)
            total = total + w * group_effect(genomic[inside], labels[inside], low, high)
            weight += w
    if weight == 0:
        raise IdaeError("no stratum holds both groups")
    return total / weight


def set_rank_test(effect: pd.Series, genes: Sequence[str], permutations: int = 10_000, seed: int = 0
                  ) -> tuple[float, float]:  # fmt: skip
    """Mean rank of `genes` by signed effect (rank 1: the largest increase) and its permutation p-value: the share
    of random gene sets of the same size, among `permutations` drawn with `seed`, whose mean rank is as small or
    smaller, the observed set counted among them (so p >= 1 / (permutations + 1)).

    A competitive test: it asks whether the set ranks higher than genes picked at random, not whether the change
    is significant across patients, and it treats genes as exchangeable, so correlated genes in the set make it
    optimistic (Wu & Smyth, Nucleic Acids Research 2012)."""
    if not genes:
        raise IdaeError("set_rank_test needs at least one gene")
    signed = effect.rank(ascending=False, method="average")
    observed = float(signed[list(genes)].mean())
    rng = np.random.default_rng(seed)
    values = signed.to_numpy()
    null = np.array([values[rng.choice(len(values), size=len(genes), replace=False)].mean()
                     for _ in range(permutations)])  # fmt: skip
    return observed, float((1 + (null <= observed).sum()) / (1 + permutations))


def signature_table(effects: dict[str, pd.Series], genes: Sequence[str], top_share: float = 0.05) -> pd.DataFrame:
    """For each method's per-gene effect: rank of each signature gene by |effect|, and its sign.

    Rows: the signature genes present in every effect ("rank (sign)"), then "in top {share}" (how many
    rank within the top share of genes, either sign), "up and in top {share}" (those of them with a
    positive effect: the expected direction for a signature the change should raise), and a rank-based
    enrichment of the whole set in that direction (`set_rank_test`): "mean rank, by increase" and
    "permutation p".
    """
    present = [g for g in genes if all(g in e.index for e in effects.values())]
    table = {}
    for name, effect in effects.items():
        r = ranks(effect)
        cut = int(np.ceil(top_share * len(effect)))
        column = {g: f"{r[g]} ({'+' if effect[g] > 0 else '−'})" for g in present}
        column[f"in top {top_share:.0%}"] = int((r[present] <= cut).sum())
        column[f"up and in top {top_share:.0%}"] = int(((r[present] <= cut) & (effect[present] > 0)).sum())
        if present:
            mean_rank, p = set_rank_test(effect, present)
            column["mean rank, by increase"], column["permutation p"] = round(mean_rank, 1), p
        table[name] = column
    return pd.DataFrame(table)
