"""`make_semisynthetic`: real expression with an added binary clinical column whose effect on a sparse set of genes
has a shared part and a part that depends on each patient's own expression state; the true change of every
patient is known, so an inversion can be scored per patient on real profiles."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd

from idae.errors import IdaeError
from idae.synthetic import check_float, check_int

# The settings notebook 05 and scripts/inversion_sweep.py compare, as keyword arguments of `make_semisynthetic`.
SETTINGS = {
    "1 sd, state-dependent": {"sparsity": 0.05, "effect_size": 1.0, "interaction": 1.0},
    "0.5 sd, state-dependent": {"sparsity": 0.05, "effect_size": 0.5, "interaction": 1.0},
    "1 sd, shared only": {"sparsity": 0.05, "effect_size": 1.0, "interaction": 0.0},
}


@dataclasses.dataclass
class SemiSynthetic:
    """Real profiles with an added binary clinical column whose effect on each patient is known.

    clinical (n, k + 1): the real table plus `column` ("neg" / "pos", categorical); genomic (n, p): the real
    profiles with each "pos" patient's effect added; effect (n, p): every patient's true change from "neg" to
    "pos" (zero outside `genes`), in the units of the input profiles; state (n,): the patient's own expression
    state (standardised score on a random direction of the leading principal components) the effect depends on;
    sparsity, effect_size, interaction: the generator's settings, its prior over a gene's effect.
    """

    clinical: pd.DataFrame
    genomic: pd.DataFrame
    effect: pd.DataFrame
    state: pd.Series
    genes: pd.Index
    column: str
    sparsity: float
    effect_size: float
    interaction: float

    def true_change(self, to: str) -> pd.DataFrame:
        """(n, p) true change of setting `column` to `to` for every patient: the effect for a "neg" patient sent
        to "pos", minus it for a "pos" patient sent to "neg", zero for a patient already at `to`."""
        if to not in ("neg", "pos"):
            raise IdaeError(f"to must be 'neg' or 'pos', got {to!r}")
        now = self.clinical[self.column].astype(str).to_numpy()
        sign = np.where(now == to, 0.0, 1.0 if to == "pos" else -1.0)
        return self.effect * sign[:, None]

    def flip_to_other(self, index: pd.Index) -> tuple[pd.DataFrame, pd.DataFrame]:
        """For the patients `index`: the changes sending each to the other level of `column` (a one-column table,
        the `changes` of `IDAE.invert`) and their true changes (len(index), p)."""
        now = self.clinical.loc[index, self.column].astype(str)
        changes = pd.DataFrame({self.column: np.where(now == "pos", "neg", "pos")}, index=now.index)
        return changes, (self.true_change("pos") + self.true_change("neg")).loc[index]

    def bayes_change(self, train: pd.Index, grid: int = 200) -> pd.DataFrame:
        """(n, p) every patient's change to the other level as the Bayes posterior mean given the `train` patients,
        each patient's true state and the generator's own prior: a reference ceiling, not a predictor.

        Per gene, the least-squares estimates (â, b̂) of x on [1, s, pos, pos·s] over the training patients are
        Gaussian around the gene's (shared part, state slope) with covariance σ²(XᵀX)⁻¹, σ² from the residuals. The
        prior puts 1 − sparsity on no effect and spreads the rest over a = ±effect_size·u, b = ±interaction·|a|,
        u on a `grid` of midpoints of [0.5, 1.5]. The posterior mean minimises the expected squared error given
        these data: a method that must learn the effect from the same patients, without the true state, the
        affected genes or the prior, does not beat it on average.
        """
        train = pd.Index(train)
        unknown = train.difference(self.genomic.index)
        if len(unknown):
            raise IdaeError(f"train holds patients not in the data: {list(unknown[:5])} ({len(unknown)} in all)")
        rows = self.genomic.index.get_indexer(train)
        x = self.genomic.to_numpy(dtype=float)[rows]
        state = self.state.to_numpy()
        positive = (self.clinical[self.column].astype(str) == "pos").to_numpy().astype(float)
        s, pos = state[rows], positive[rows]
        design = np.column_stack([np.ones(len(train)), s, pos, pos * s])
        if np.linalg.matrix_rank(design) < 4 or len(train) <= 4:
            raise IdaeError("train needs more than 4 patients of both levels, whose states vary within each level")
        beta, *_ = np.linalg.lstsq(design, x, rcond=None)
        noise = ((x - design @ beta) ** 2).sum(axis=0) / (len(train) - 4)  # (p,)
        precision = np.linalg.inv(np.linalg.inv(design.T @ design)[2:, 2:])  # of (â, b̂), in units of σ²
        u = 0.5 + (np.arange(grid) + 0.5) / grid
        shared = self.effect_size * np.concatenate([u, -u, u, -u])
        slab = np.column_stack([shared, self.interaction * np.abs(shared) * np.repeat([1.0, 1.0, -1.0, -1.0], grid)])
        estimate = beta[2:].T  # (p, 2)
        posterior = np.zeros_like(estimate)
        for start in range(0, len(estimate), 2000):  # genes in chunks: (chunk, 4 grid, 2) at a time
            chunk = slice(start, start + 2000)
            est, var = estimate[chunk], noise[chunk, None]
            diff = est[:, None, :] - slab[None]
            log_slab = -0.5 * np.einsum("gki,ij,gkj->gk", diff, precision, diff) / var
            log_null = -0.5 * np.einsum("gi,ij,gj->g", est, precision, est)[:, None] / var
            top = np.maximum(log_slab.max(axis=1, keepdims=True), log_null)
            w_slab = self.sparsity / len(slab) * np.exp(log_slab - top)
            w_null = (1 - self.sparsity) * np.exp(log_null - top)
            posterior[chunk] = (w_slab @ slab) / (w_slab.sum(axis=1, keepdims=True) + w_null)
        sign = np.where(positive == 1, -1.0, 1.0)  # each patient to the other level
        change = sign[:, None] * (posterior[:, 0][None] + state[:, None] * posterior[:, 1][None])
        return pd.DataFrame(change, index=self.genomic.index, columns=self.genomic.columns)


def make_semisynthetic(
    genomic: pd.DataFrame,
    clinical: pd.DataFrame,
    sparsity: float = 0.05,
    effect_size: float = 1.0,
    interaction: float = 1.0,
    prevalence: float = 0.5,
    state_components: int = 3,
    column: str = "hidden",
    seed: int = 0,
) -> SemiSynthetic:
    """Add a binary column to real data: "pos" with probability `prevalence`, independently of everything else,
    and a known effect on a random `sparsity` share of the genes.

    For patient i and affected gene g the change from "neg" to "pos" is a_g + b_g s_i: a shared part a_g of size
    `effect_size` × U(0.5, 1.5) with a random sign, and a part b_g s_i that depends on the patient's own state
    s_i (a standardised score on a random direction of the leading `state_components` principal components of the
    input profiles), |b_g| = `interaction` × |a_g| with a random sign. Profiles are used as given (standardised
    genes make `effect_size` a number of gene sds); they must be complete.

    Parameters
    ----------
    genomic, clinical : DataFrame
        the real profiles (patients × genes, complete) and clinical table, the same patients
    sparsity : float
        share of genes the column moves, in (0, 1]
    effect_size : float
        scale of the shared part, in the profiles' units
    interaction : float
        size of the state-dependent part relative to the shared part (0: shared only)
    prevalence : float
        share of "pos" patients
    state_components : int
        leading principal components the patient's state is drawn from
    column : str
        the added column's name (not already in `clinical`)
    seed : int
        draws the column, the affected genes, their effects and the state direction

    Returns
    -------
    SemiSynthetic
        the tables with the column added, every patient's true change (`effect`, `true_change(level)`) and the
        Bayes ceiling of an estimate from training patients (`bayes_change`)

    Examples
    --------
    >>> data = make_semisynthetic(genomic, clinical, sparsity=0.05, effect_size=1.0, interaction=1.0, seed=0)
    >>> truth = data.true_change("pos")
    """
    sparsity = check_float("sparsity", sparsity, 0.0, 1.0)
    effect_size = check_float("effect_size", effect_size, 0.0, math.inf)
    interaction = check_float("interaction", interaction, 0.0, math.inf)
    prevalence = check_float("prevalence", prevalence, 0.0, 1.0)
    seed = check_int("seed", seed, 0)
    if not isinstance(genomic, pd.DataFrame) or not isinstance(clinical, pd.DataFrame):
        raise IdaeError("genomic and clinical must be pandas DataFrames (patients as rows)")
    state_components = check_int("state_components", state_components, 1)
    if state_components > min(genomic.shape) - 1:
        raise IdaeError(f"state_components must be below min(patients, genes) = {min(genomic.shape)}, "
                        f"got {state_components}")  # fmt: skip
    if column in clinical.columns:
        raise IdaeError(f"column {column!r} is already a clinical column; choose another name")
    missing = genomic.index.difference(clinical.index)
    if len(missing):
        raise IdaeError(f"genomic patients without a clinical row: {list(missing[:5])} ({len(missing)} in all)")
    x = genomic.to_numpy(dtype=float)
    bad = ~np.isfinite(x)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise IdaeError(f"genomic must be complete: {int(bad.sum())} missing or non-finite cells, the first at "
                        f"patient {genomic.index[row]!r}, gene {genomic.columns[col]!r}")  # fmt: skip
    n_affected = round(sparsity * x.shape[1])
    if n_affected < 1:
        raise IdaeError(f"sparsity {sparsity} affects no gene of {x.shape[1]}; raise it")
    rng_state, rng_genes, rng_column = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))

    centred = x - x.mean(axis=0)
    left, _, _ = np.linalg.svd(centred, full_matrices=False)
    direction = rng_state.normal(size=state_components)
    state = left[:, :state_components] @ (direction / np.linalg.norm(direction))
    state = (state - state.mean()) / state.std()

    genes = np.sort(rng_genes.choice(x.shape[1], size=n_affected, replace=False))
    shared = effect_size * rng_genes.uniform(0.5, 1.5, n_affected) * rng_genes.choice([-1.0, 1.0], n_affected)
    slope = interaction * np.abs(shared) * rng_genes.choice([-1.0, 1.0], n_affected)
    effect = np.zeros_like(x)
    effect[:, genes] = shared + state[:, None] * slope

    positive = rng_column.random(len(x)) < prevalence
    out_clinical = clinical.loc[genomic.index].copy()
    out_clinical[column] = pd.Categorical(np.where(positive, "pos", "neg"), categories=["neg", "pos"])
    observed = x + positive[:, None] * effect
    frame = {"index": genomic.index, "columns": genomic.columns}
    state_series = pd.Series(state, index=genomic.index, name="state")
    return SemiSynthetic(out_clinical, pd.DataFrame(observed, **frame), pd.DataFrame(effect, **frame), state_series,
                         genomic.columns[genes], column, sparsity, effect_size, interaction)  # fmt: skip
