"""Input checks shared by the estimator, the inversion, the baselines and `align`: tables, their labels, their
values, and the typing of clinical cells (numbers, levels, missing codes). Each refusal names the offending table,
column or patient."""

from __future__ import annotations

import numbers
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


def check_fit_options(validation: Any, checkpoint_every: Any) -> int | None:
    """`IDAE.fit`'s `validation` (None or a (genomic, clinical) pair) and `checkpoint_every` (None or a positive
    number of epochs, returned as an int); IdaeError naming the argument else."""
    every = checkpoint_every
    if every is not None and (isinstance(every, bool) or not isinstance(every, numbers.Integral) or every < 1):
        raise IdaeError(f"checkpoint_every must be a positive number of epochs or None, got {every!r}")
    if validation is not None and (not isinstance(validation, (tuple, list)) or len(validation) != 2):
        size = f" of {len(validation)} item(s)" if isinstance(validation, (tuple, list)) else ""
        raise IdaeError(
            f"validation must be a (genomic, clinical) pair of DataFrames, got a {type(validation).__name__}{size}"
        )
    return None if every is None else int(every)


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


def clean_clinical(
    clinical: pd.DataFrame,
    categorical: list[str] | None = None,
    numeric: list[str] | None = None,
    missing_codes: tuple[str, ...] = MISSING_CODES,
) -> pd.DataFrame:
    """Map missing-value codes to NaN and type each column as `category` or float.

    A column is categorical when named in `categorical`, or when it holds text, booleans, a pandas
    category, or numbers with at most two distinct values (0/1 codes); otherwise numeric.
    """
    codes = _missing_codes(missing_codes)
    check_labels(clinical, "clinical", index=False)
    categorical, numeric = list(categorical or []), list(numeric or [])
    for col in categorical + numeric:
        if col not in clinical.columns:
            raise IdaeError(f"clinical column {col!r} named as categorical/numeric is not in the table")
    both = set(categorical) & set(numeric)
    if both:
        raise IdaeError(f"clinical columns {sorted(both)} are named both categorical and numeric")
    columns = pd.Index(clinical.columns.astype(str))
    dup = columns[columns.duplicated()].unique().tolist()
    if dup:
        raise IdaeError(f"clinical: duplicate columns {dup[:5]}")
    out = {}
    for col in clinical.columns:
        values = clinical[col]
        check_single_values(values, f"clinical column {col!r}")
        is_number = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
        if not is_number:
            text = values.astype(object)
            is_code = text.map(lambda v: isinstance(v, str) and v.strip().lower() in codes)
            values = text.where(~is_code, np.nan).map(lambda v: v.strip() if isinstance(v, str) else v)
        if values.isna().all():
            raise IdaeError(f"clinical column {col!r} is entirely missing")
        if col in numeric:
            as_number = pd.to_numeric(values, errors="coerce")
            bad = values[values.notna() & as_number.isna()]
            if len(bad):
                raise IdaeError(f"clinical column {col!r} is declared numeric but holds {bad.iloc[:3].tolist()}")
            values, is_number = as_number, True
        elif not is_number and col not in categorical and (
            pd.api.types.is_object_dtype(clinical[col]) or pd.api.types.is_string_dtype(clinical[col])
        ) and not isinstance(clinical[col].dtype, pd.CategoricalDtype):
            # text read from a CSV ("63", "48", "missing") is numeric once its missing codes are gone
            as_number = pd.to_numeric(values, errors="coerce")
            if as_number.notna().sum() == values.notna().sum():
                values, is_number = as_number, True
        few_values = values.nunique() <= 2 and col not in numeric
        kind = "numeric" if is_number and col not in categorical and not few_values else "categorical"
        if kind == "numeric":
            if not np.isfinite(values.dropna().astype(float)).all():
                raise IdaeError(f"clinical column {col!r} holds non-finite values")
            out[col] = values.astype(float)
        else:
            labels = values.map(lambda v: v if pd.isna(v) else level_name(v))
            cat = pd.Categorical(labels)
            if len(cat.categories) < 2:
                raise IdaeError(
                    f"clinical column {col!r} has a single level {list(cat.categories)}: it carries no "
                    "information; drop it or add patients with another value"
                )
            out[col] = cat
    return pd.DataFrame(out, index=clinical.index)


def _missing_codes(missing_codes: Any) -> set[str]:
    """The lower-cased codes, or IdaeError unless `missing_codes` is a list or tuple of strings."""
    try:
        codes = tuple(missing_codes) if not isinstance(missing_codes, str) else None
    except TypeError:
        codes = None
    if codes is None or not all(isinstance(c, str) for c in codes):
        odd = [c for c in codes if not isinstance(c, str)][:3] if codes is not None else missing_codes
        raise IdaeError(
            f"missing_codes must be a list or tuple of strings (the default is {MISSING_CODES[:4]} ...), got "
            f"{missing_codes!r}" + (f": {odd!r} are not strings" if codes is not None else "")
        )
    return {c.lower() for c in codes}
