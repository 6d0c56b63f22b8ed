"""The inversion baselines a user would otherwise pick, set beside every inversion figure of idae:
`fit_inversion(method, genomic, clinical)` for `INVERSION_METHODS`, each returning an `InversionBaseline` with
the same `invert(genomic, clinical, changes)` contract as `IDAE.invert`."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from idae.checks import check_clinical, check_genomic, level_name
from idae.design import ClinicalDesign
from idae.errors import IdaeError
from idae.invert import (
    apply_changes,
    centred_products,
    fit_direct_path,
    fit_state_path,
    interaction_candidates,
    least_squares,
    ridge,
    select_interactions,
    shrink,
    shrink_columns,
)

INVERSION_METHODS = ("no_change", "group_shift", "group_shift_shrunk", "collapse", "linear", "linear_shrunk",
                     "linear_products", "linear_state", "nearest_neighbours")


class InversionBaseline:
    """x' for a change of clinical state, without a latent model. `fit` then `invert`."""

    method = ""

    def fit(self, genomic: pd.DataFrame, clinical: pd.DataFrame) -> InversionBaseline:
        """Fit on genomic (n, p) and clinical (n, variables; NaN = missing), matched on the index."""
        genomic = check_genomic(genomic)
        if len(genomic) < 2:
            raise IdaeError(f"fit needs at least 2 patients, got {len(genomic)}")
        self.genes_ = list(genomic.columns)
        self.x_ = genomic
        self.clinical_ = check_clinical(clinical, genomic.index)
        self.design_ = ClinicalDesign.fit(self.clinical_)
        self.mean_ = genomic.to_numpy().mean(axis=0)
        # per-gene least-squares slope on each numeric column, over the patients where it is observed
        self.slopes_: dict[str, np.ndarray] = {}
        for col in self.design_.mean:
            seen = self.clinical_[col].notna().to_numpy()
            y = self.clinical_[col].to_numpy(dtype=float)[seen]
            xs = genomic.to_numpy()[seen]
            yc = y - y.mean()
            self.slopes_[col] = yc @ (xs - xs.mean(axis=0)) / max(float(yc @ yc), 1e-12)
        return self

    def invert(
        self, genomic: pd.DataFrame, clinical: pd.DataFrame, changes: dict[str, Any] | pd.DataFrame
    ) -> pd.DataFrame:
        """Predicted profiles (n, p) with `genomic`'s index and the fitted genes; `changes` as in `IDAE.invert`."""
        if not hasattr(self, "genes_"):
            raise IdaeError(f"this {self.method} baseline is not fitted yet: call fit(genomic, clinical)")
        genomic = check_genomic(genomic, self.genes_)
        clinical = check_clinical(clinical, genomic.index, self.design_.columns)
        new = apply_changes(clinical, changes, self.design_.columns)
        changed = list(changes) if isinstance(changes, dict) else list(changes.columns)
        for col in changed:
            if col in self.design_.levels:
                unseen = sorted(set(_levels(new[col]).dropna()) - set(self.design_.levels[col]))
                if unseen:
                    raise IdaeError(
                        f"cannot change {col!r} to level(s) {unseen}: never seen in training "
                        f"(known levels {self.design_.levels[col]})"
                    )
            elif pd.to_numeric(new[col], errors="coerce").isna().gt(new[col].isna()).any():
                raise IdaeError(f"cannot change numeric column {col!r} to a non-number: {_changes_of(changes, col)}")
        out = self._invert(genomic.to_numpy(), clinical, new, changed)
        return pd.DataFrame(out, index=genomic.index, columns=self.genes_)

    def _invert(self, x: np.ndarray, old: pd.DataFrame, new: pd.DataFrame, changed: list[str]) -> np.ndarray:
        raise NotImplementedError

    # shared by group_shift and collapse

    def _group_means(self, table: pd.DataFrame, columns: list[str]) -> np.ndarray:
        """Training mean of the genes in each row's group (n, p); overall mean where a cell is missing.

        A group is a combination of levels of the categorical `columns`; none -> overall mean.
        """
        out = np.tile(self.mean_, (len(table), 1))
        if not columns:
            return out
        train = pd.DataFrame({c: _levels(self.clinical_[c]) for c in columns}, index=self.clinical_.index)
        train = train.dropna()
        means = self.x_.loc[train.index].groupby([train[c] for c in columns]).mean()
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
        out = np.zeros((len(old), len(self.genes_)))
        for col in columns:
            before = old[col].astype(float).fillna(self.design_.mean[col])
            after = pd.to_numeric(new[col], errors="coerce").astype(float).fillna(before)
            out += np.outer((after - before).to_numpy(), self.slopes_[col])
        return out

    def _split(self, changed: list[str]) -> tuple[list[str], list[str]]:
        return [c for c in changed if c in self.design_.levels], [c for c in changed if c not in self.design_.levels]


def _changes_of(changes: dict[str, Any] | pd.DataFrame, col: str) -> list[Any]:
    return [changes[col]] if isinstance(changes, dict) else changes[col].dropna().unique()[:3].tolist()


def _levels(values: pd.Series) -> pd.Series:
    """Level names as `ClinicalDesign` spells them (1.0 -> "1"), NaN kept."""
    return values.astype(object).map(lambda v: v if pd.isna(v) else level_name(v))


class NoChange(InversionBaseline):
    """x' = x."""

    method = "no_change"

    def _invert(self, x, old, new, changed):
        return x.copy()


class GroupShift(InversionBaseline):
    """x' = x + mean(genes | target group) − mean(genes | own group), then + slope·Δ for numeric changes.

    Groups are the level combinations of the changed categorical columns; a patient whose own (or
    target) value is missing uses the overall training mean for that group. A changed numeric column
    moves each gene by its least-squares slope on that column times the change.
    """

    method = "group_shift"

    def _invert(self, x, old, new, changed):
        cat, num = self._split(changed)
        return x + self._group_means(new, cat) - self._group_means(old, cat) + self._numeric_shift(old, new, num)


class Collapse(InversionBaseline):
    """x' = mean(genes | target group) (+ slope·(target − training mean) for numeric changes): no patient detail."""

    method = "collapse"

    def _invert(self, x, old, new, changed):
        cat, num = self._split(changed)
        at_mean = pd.DataFrame({c: self.design_.mean[c] for c in num}, index=old.index)
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
        design = self.design_.transform(self.clinical_).astype(float)
        self.coef_ = ridge(design, self.x_.to_numpy(), self.alpha)[1:]  # drop the intercept row
        return self

    def _invert(self, x, old, new, changed):
        delta = self.design_.transform(new).astype(float) - self.design_.transform(old).astype(float)
        return x + delta @ self.coef_


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

    def _invert(self, x, old, new, changed):
        cat, num = self._split(changed)
        out = x + self._numeric_shift(old, new, num)
        if not cat:
            return out
        train = pd.DataFrame({c: _levels(self.clinical_[c]) for c in cat}, index=self.clinical_.index).dropna()
        groups = {k if isinstance(k, tuple) else (k,): block.to_numpy()
                  for k, block in self.x_.loc[train.index].groupby([train[c] for c in cat], observed=True)}  # fmt: skip
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
        design = self.design_.transform(self.clinical_).astype(float)
        self.coef_, self.null_ = fit_direct_path(design, self.x_.to_numpy(), self.design_.contrast_columns())
        return self


class LinearProducts(LinearShrunk):
    """`linear_shrunk` with the products of two clinical columns that idae's factor model may take, given to the
    genes the same way: for each gene, the products a test keeps (`idae.invert.select_interactions`: the t-test of the
    product added to the main effects, Benjamini–Hochberg at 5% over every product and gene), each of columns centred
    at their training means, so a main effect is the column's average effect; a kept product at its least-squares
    value, the main effects of every gene shrunk across genes by empirical Bayes."""

    method = "linear_products"

    def fit(self, genomic: pd.DataFrame, clinical: pd.DataFrame) -> LinearProducts:
        InversionBaseline.fit(self, genomic, clinical)
        design = self.design_.transform(self.clinical_).astype(float)
        x, keep = self.x_.to_numpy(), self.design_.contrast_columns()
        candidates = interaction_candidates(self.design_)
        selected = select_interactions(x, design, keep, candidates)
        used = np.flatnonzero(selected.any(axis=1))
        self.pairs_ = np.asarray([candidates[i] for i in used], dtype=int).reshape(-1, 2)
        self.centre_ = design.mean(axis=0)
        products, chosen = centred_products(design, self.centre_, self.pairs_), selected[used]  # (n, u), (u, p)
        main, main_se = np.zeros((len(keep), x.shape[1])), np.zeros((len(keep), x.shape[1]))
        self.product_coef_ = np.zeros((len(used), x.shape[1]))
        # genes that keep the same products share one least-squares fit
        patterns, group = np.unique(chosen.T, axis=0, return_inverse=True)
        for k, pattern in enumerate(patterns):
            genes = np.flatnonzero(group.ravel() == k)
            _, coef, se = least_squares(np.column_stack([design[:, keep], products[:, pattern]]), x[:, genes])
            main[:, genes], main_se[:, genes] = coef[: len(keep)], se[: len(keep)]
            self.product_coef_[np.ix_(np.flatnonzero(pattern), genes)] = coef[len(keep) :]
        self.coef_, self.null_ = shrink_columns(main, main_se, keep, design.shape[1])
        return self

    def _invert(self, x, old, new, changed):
        before, after = self.design_.transform(old).astype(float), self.design_.transform(new).astype(float)
        moved = centred_products(after, self.centre_, self.pairs_) - centred_products(before, self.centre_, self.pairs_)
        return x + (after - before) @ self.coef_ + moved @ self.product_coef_


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
        x = self.x_.to_numpy()
        design = self.design_.transform(self.clinical_).astype(float)
        self.loadings_ = _whitened_loadings(x, self.mean_, self.components)
        keep = self.design_.contrast_columns()
        self.directions_, self.slopes_ = fit_state_path(design, self.state(x), x, keep, self.null_)
        return self

    def state(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean_) @ self.loadings_

    def _invert(self, x, old, new, changed):
        moved = self.design_.transform(new).astype(float) - self.design_.transform(old).astype(float)
        return x + moved @ self.coef_ + (moved * (self.state(x) @ self.directions_.T)) @ self.slopes_


class NearestNeighbours(InversionBaseline):
    """x' = the mean profile of the `k` training patients of the target group (the level combination of the
    changed categorical columns) nearest to the patient in the space of the first `components` whitened
    principal components. Categorical changes only."""

    method = "nearest_neighbours"

    def __init__(self, k: int = 5, components: int = 6):
        self.k, self.components = k, components

    def fit(self, genomic: pd.DataFrame, clinical: pd.DataFrame) -> NearestNeighbours:
        super().fit(genomic, clinical)
        self.loadings_ = _whitened_loadings(self.x_.to_numpy(), self.mean_, self.components)
        return self

    def _invert(self, x, old, new, changed):
        cat, num = self._split(changed)
        if num:
            raise IdaeError(f"nearest_neighbours matches on categorical columns only; cannot change numeric {num}")
        train = pd.DataFrame({c: _levels(self.clinical_[c]) for c in cat}, index=self.clinical_.index)
        train_codes = (self.x_.to_numpy() - self.mean_) @ self.loadings_
        codes = (x - self.mean_) @ self.loadings_
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
            out[i] = self.x_.to_numpy()[nearest].mean(axis=0)
        return out


_INVERSION = {"no_change": NoChange, "group_shift": GroupShift, "group_shift_shrunk": GroupShiftShrunk,
              "collapse": Collapse, "linear": Linear, "linear_shrunk": LinearShrunk, "linear_products": LinearProducts,
              "linear_state": LinearState, "nearest_neighbours": NearestNeighbours}  # fmt: skip


def fit_inversion(method: str, genomic: pd.DataFrame, clinical: pd.DataFrame) -> InversionBaseline:
    """Fit one of `INVERSION_METHODS` on genomic (n, p) and clinical (n, variables)."""
    if method not in INVERSION_METHODS:
        raise IdaeError(f"method must be one of {INVERSION_METHODS}, got {method!r}")
    return _INVERSION[method]().fit(genomic, clinical)
