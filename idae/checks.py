"""Input checks shared by the estimator, the inversion, the baselines and `align`: tables, their labels, their
values, and the typing of clinical cells (numbers, levels, missing codes). Each refusal names the offending table,
column or patient."""

from __future__ import annotations

import reprlib
from collections.abc import Hashable
from typing import Any

import numpy as np
import pandas as pd

from idae.errors import IdaeError

# Codes that public cohorts use for a missing clinical cell (survset uses "na", "missing" and "x").
MISSING_CODES = ("", "na", "n/a", "nan", "none", "missing", "x", "?", "unknown", "not available")
FLOAT32_MAX = float(np.finfo(np.float32).max)


def first_labels(labels: Any, k: int = 5) -> str:
    """At most `k` labels as a list, with ' ...' and the count when there are more."""
    labels = list(labels)
    return f"{labels[:k]}" + (f" ... ({len(labels)} in all)" if len(labels) > k else "")


def duplicated_labels(labels: pd.Index) -> list[Any]:
    return labels[labels.duplicated()].unique().tolist()


def check_labels(table: pd.DataFrame, name: str, index: bool = True) -> None:
    """Refuse a MultiIndex as `table`'s column names (and, when `index`, as its patient IDs)."""
    axes = [("column names", table.columns, "give one name per column, e.g. join the levels with '_'")]
    if index:
        axes.append(("patient IDs (index)", table.index, "give one ID per row, e.g. reset_index and keep the ID level"))
    for axis, labels, advice in axes:
        if isinstance(labels, pd.MultiIndex):
            raise IdaeError(
                f"{name}: the {axis} are a MultiIndex of {labels.nlevels} levels (e.g. {labels[0]!r}) where "
                f"idae needs one level; {advice}"
            )


def check_table(table: Any, name: str, what: str, ids: bool = True, columns: list[Any] | None = None) -> pd.DataFrame:
    """`table` if it is a DataFrame with one level of column names, each of `columns` (all when None)
    named once, and, when `ids`, one level of unique patient IDs; IdaeError naming the offender else."""
    if not isinstance(table, pd.DataFrame):
        raise IdaeError(f"{name} must be a pandas DataFrame ({what}), got {type(table).__name__}")
    check_labels(table, name, index=ids)
    if ids and table.index.has_duplicates:
        raise IdaeError(f"{name} has duplicate patient IDs {first_labels(duplicated_labels(table.index))}")
    labels = table.columns if columns is None else table.columns[table.columns.isin(columns)]
    dup = duplicated_labels(labels)
    if dup:
        raise IdaeError(f"{name} has duplicate column names {first_labels(dup)}: give each column one name")
    return table


def check_genomic(genomic: Any, genes: list[str] | None = None, name: str = "genomic") -> pd.DataFrame:
    """A finite float table (patients × genes), restricted to the fitted `genes`, in their order, when given.

    Refuses (IdaeError) anything else: not a DataFrame, MultiIndex, no rows, duplicate patient IDs,
    no genes, absent or duplicated genes, non-numeric genes, non-finite values.
    """
    genomic = check_table(genomic, name, "patients × genes", columns=[])
    if genomic.shape[0] == 0:
        raise IdaeError(f"{name} has no rows")
    genomic = genomic.rename(columns=str)
    if genes is not None:
        absent = [g for g in genes if g not in genomic.columns]
        if absent:
            raise IdaeError(f"{name} lacks {len(absent)} of the model's {len(genes)} genes, e.g. {absent[:5]}")
        genomic = genomic[genes]
    if genomic.shape[1] == 0:
        raise IdaeError(f"{name} has no gene columns: the model needs at least one gene")
    dup = duplicated_labels(genomic.columns)
    if dup:
        raise IdaeError(f"{name} has duplicate gene columns {first_labels(dup)}: give each gene one column")
    non_numeric = [c for c in genomic.columns if not pd.api.types.is_numeric_dtype(genomic[c])]
    if non_numeric:
        raise IdaeError(f"{name} has non-numeric gene columns {first_labels(non_numeric)}")
    values = genomic.to_numpy(dtype=float, na_value=np.nan)
    bad = ~np.isfinite(values)
    if bad.any():
        rows, cols = np.nonzero(bad)
        raise IdaeError(
            f"{name} holds {bad.sum()} non-finite values, e.g. patient {genomic.index[rows[0]]!r}, "
            f"gene {genomic.columns[cols[0]]!r}; impute or drop them (idae.align lists such genes)"
        )
    return genomic.astype(float)


def check_clinical(
    clinical: Any, index: pd.Index | None = None, columns: list[Any] | None = None, name: str = "clinical"
) -> pd.DataFrame:
    """The clinical table (patients × variables), its rows for the patients in `index` when given.

    Refuses (IdaeError) anything but a DataFrame with one level of column names of which each of
    `columns` (all when None) appears once; with `index`, also duplicate or absent patient IDs.
    """
    clinical = check_table(clinical, name, "patients × clinical variables", ids=index is not None, columns=columns)
    if index is None:
        return clinical
    absent = index.difference(clinical.index)
    if len(absent):
        raise IdaeError(
            f"{len(absent)} genomic patients have no {name} row, e.g. {absent[:5].tolist()}; "
            "use idae.align to match the tables"
        )
    return clinical.loc[index]


def to_float32(values: np.ndarray, rows: pd.Index, columns: list[Any], name: str, kind: str) -> np.ndarray:
    """`values` (n, k) as float32, or IdaeError naming the `kind` columns and the rows that overflow it."""
    with np.errstate(invalid="ignore"):
        over = np.abs(values) > FLOAT32_MAX
    if over.any():
        r, c = np.nonzero(over)
        raise IdaeError(
            f"{name}: {over.sum()} value(s) overflow the float32 the model computes in (standardised "
            f"|value| > {FLOAT32_MAX:.3g}, e.g. {values[r[0], c[0]]:.3g}), in {kind}(s) "
            f"{first_labels(pd.unique(np.asarray(columns, dtype=object)[c]))} of sample(s) "
            f"{first_labels(pd.unique(np.asarray(rows, dtype=object)[r]))}; check the units or scale of the input"
        )
    return values.astype(np.float32)


# the typing of clinical cells, shared by `align` and `ClinicalDesign`


def check_single_values(values: pd.Series, name: str) -> None:
    """IdaeError naming the first patient whose cell holds a list, dict, set, array or other unhashable value."""
    if values.dtype != object:
        return
    odd = values.map(lambda v: not isinstance(v, Hashable)).to_numpy(dtype=bool)
    if odd.any():
        i = int(np.argmax(odd))
        raise IdaeError(
            f"{name} holds {type(values.iloc[i]).__name__} values, e.g. {reprlib.repr(values.iloc[i])} for "
            f"patient {values.index[i]!r} ({int(odd.sum())} cells in all); each cell must be a single number, "
            "text or missing"
        )


def is_numeric_column(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def level_counts(values: pd.Series, col: Any) -> pd.Series:
    """Patients per observed level of a categorical, text or boolean clinical column, by level name: a
    categorical's own order, else sorted (so False before True, and the first level is the reference)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        counts = values.value_counts().reindex(values.cat.categories, fill_value=0)
        counts.index = [level_name(v) for v in counts.index]
        return counts[counts > 0]
    check_single_values(values, f"clinical column {col!r}")
    text = values.astype(object).map(lambda v: v if pd.isna(v) else level_name(v))
    codes = sorted({v for v in text.dropna() if v.strip().lower() in MISSING_CODES})
    if codes:
        raise IdaeError(
            f"clinical column {col!r} holds {codes}, which read as missing values, not as a level: set those "
            "cells to NaN, or pass the table through idae.align, which does"
        )
    return text.value_counts().sort_index()


def level_name(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
