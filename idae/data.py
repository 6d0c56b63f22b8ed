"""Reading, aligning and preprocessing clinical and genomic tables.

Everything here is pandas in, pandas out, indexed by patient ID. Nothing is dropped silently:
every sample or gene left out is listed in the `AlignReport` with the reason.
"""

from __future__ import annotations

import dataclasses
import reprlib
import warnings
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from idae.errors import IdaeError
from idae.files import replaced_folder, restore_previous

# Codes that public cohorts use for a missing clinical cell (survset uses "na", "missing" and "x").
MISSING_CODES = ("", "na", "n/a", "nan", "none", "missing", "x", "?", "unknown", "not available")


# --------------------------------------------------------------------------------------------------
# reading


def read_table(table: pd.DataFrame | str | Path, name: str = "table") -> pd.DataFrame:
    """A DataFrame as it is, or read from a CSV / TSV / parquet path (first column = index for text)."""
    if isinstance(table, pd.DataFrame):
        return table
    if not isinstance(table, (str, Path)):
        raise IdaeError(f"{name}: expected a DataFrame or a CSV/parquet path, got {type(table).__name__}")
    path = Path(table)
    if not path.exists():
        raise IdaeError(f"{name}: file not found: {path}")
    suffix = "".join(path.suffixes[-2:]).lower()
    try:
        if suffix.endswith(".parquet") or suffix.endswith(".pq"):
            return pd.read_parquet(path)
        sep = "\t" if suffix.endswith((".tsv", ".txt", ".tsv.gz", ".txt.gz")) else ","
        # IDs stay text: "007" must not become the number 7 and then fail to match a parquet table.
        header = pd.read_csv(path, sep=sep, nrows=0).columns
        return pd.read_csv(path, sep=sep, index_col=0, dtype={header[0]: str} if len(header) else None)
    except (ValueError, OSError, pd.errors.ParserError) as err:
        raise IdaeError(f"{name}: could not read {path}: {err}") from err


# --------------------------------------------------------------------------------------------------
# input checks shared by the estimator, the inversion and the baselines

FLOAT32_MAX = float(np.finfo(np.float32).max)


def _head(labels: Any, k: int = 5) -> str:
    """At most `k` labels as a list, with ' ...' and the count when there are more."""
    labels = list(labels)
    return f"{labels[:k]}" + (f" ... ({len(labels)} in all)" if len(labels) > k else "")


def _duplicates(labels: pd.Index) -> list[Any]:
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
        raise IdaeError(f"{name} has duplicate patient IDs {_head(_duplicates(table.index))}")
    labels = table.columns if columns is None else table.columns[table.columns.isin(columns)]
    dup = _duplicates(labels)
    if dup:
        raise IdaeError(f"{name} has duplicate column names {_head(dup)}: give each column one name")
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
    dup = _duplicates(genomic.columns)
    if dup:
        raise IdaeError(f"{name} has duplicate gene columns {_head(dup)}: give each gene one column")
    non_numeric = [c for c in genomic.columns if not pd.api.types.is_numeric_dtype(genomic[c])]
    if non_numeric:
        raise IdaeError(f"{name} has non-numeric gene columns {_head(non_numeric)}")
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
            f"{_head(pd.unique(np.asarray(columns, dtype=object)[c]))} of sample(s) "
            f"{_head(pd.unique(np.asarray(rows, dtype=object)[r]))}; check the units or scale of the input"
        )
    return values.astype(np.float32)


# --------------------------------------------------------------------------------------------------
# alignment


@dataclasses.dataclass
class AlignReport:
    """What `align` matched, typed, and left out (with reasons)."""

    n_clinical: int
    n_genomic: int
    matched: list[str]
    clinical_only: list[str]
    genomic_only: list[str]
    categorical: list[str]
    numeric: list[str]
    missing_per_column: dict[str, int]
    dropped_genes: dict[str, str]  # gene -> reason
    n_genes_in: int

    @property
    def n_matched(self) -> int:
        return len(self.matched)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def __str__(self) -> str:
        def head(ids: list[str]) -> str:
            return ", ".join(ids[:5]) + (" ..." if len(ids) > 5 else "")

        reasons = pd.Series(self.dropped_genes, dtype=object).value_counts().to_dict()
        lines = [
            f"samples: {self.n_clinical} clinical, {self.n_genomic} genomic, {self.n_matched} matched",
            f"clinical only ({len(self.clinical_only)}): {head(self.clinical_only)}",
            f"genomic only ({len(self.genomic_only)}): {head(self.genomic_only)}",
            f"categorical columns: {', '.join(self.categorical) or '-'}",
            f"numeric columns: {', '.join(self.numeric) or '-'}",
            "missing cells: "
            + (", ".join(f"{c}={n}" for c, n in self.missing_per_column.items() if n) or "none"),
            f"genes: {self.n_genes_in} in, {self.n_genes_in - len(self.dropped_genes)} kept, "
            f"{len(self.dropped_genes)} dropped" + (f" {reasons}" if reasons else ""),
        ]
        return "\n".join(lines)


class Aligned(NamedTuple):
    clinical: pd.DataFrame
    genomic: pd.DataFrame
    report: AlignReport


def _set_ids(table: pd.DataFrame, id_col: str | None, name: str) -> pd.DataFrame:
    check_labels(table, name, index=False)
    if id_col is not None and id_col not in table.columns and table.index.name == id_col:
        id_col = None  # a CSV's first column became the index already
    if id_col is not None:
        if id_col not in table.columns:
            raise IdaeError(f"{name}: id column {id_col!r} not found (columns: {list(table.columns)[:8]} ...)")
        table = table.set_index(id_col)
    table = table.copy()
    check_labels(table, name)
    if table.index.hasnans:
        raise IdaeError(f"{name}: {int(table.index.isna().sum())} rows have no ID")
    table.index = table.index.astype(str)
    table.index.name = "patient"
    dup = table.index[table.index.duplicated()].unique().tolist()
    if dup:
        raise IdaeError(f"{name}: duplicate IDs {dup[:5]}{' ...' if len(dup) > 5 else ''} ({len(dup)} in all)")
    return table


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
        _single_values(values, f"clinical column {col!r}")
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
            labels = values.map(lambda v: v if pd.isna(v) else _level_name(v))
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


def _single_values(values: pd.Series, name: str) -> None:
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


def _is_number(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def _level_counts(values: pd.Series, col: Any) -> pd.Series:
    """Patients per observed level of a categorical, text or boolean clinical column, by level name: a
    categorical's own order, else sorted (so False before True, and the first level is the reference)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        counts = values.value_counts().reindex(values.cat.categories, fill_value=0)
        counts.index = [_level_name(v) for v in counts.index]
        return counts[counts > 0]
    _single_values(values, f"clinical column {col!r}")
    text = values.astype(object).map(lambda v: v if pd.isna(v) else _level_name(v))
    codes = sorted({v for v in text.dropna() if v.strip().lower() in MISSING_CODES})
    if codes:
        raise IdaeError(
            f"clinical column {col!r} holds {codes}, which read as missing values, not as a level: set those "
            "cells to NaN, or pass the table through idae.align, which does"
        )
    return text.value_counts().sort_index()


def _level_name(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def align(
    clinical: pd.DataFrame | str | Path,
    genomic: pd.DataFrame | str | Path,
    id_col: str | None = None,
    categorical: list[str] | None = None,
    numeric: list[str] | None = None,
    missing_codes: tuple[str, ...] = MISSING_CODES,
) -> Aligned:
    """Join clinical (patients × variables) and genomic (patients × genes) tables on IDs.

    IDs come from `id_col` when given (a column in both tables), else from the index. Returns
    `Aligned(clinical, genomic, report)` with the matched patients in the clinical table's order,
    clinical columns typed (`category` or float, missing codes -> NaN) and genes that are constant
    or non-finite over the matched patients removed, each listed in the report with its reason.
    """
    clinical = _set_ids(read_table(clinical, "clinical"), id_col, "clinical")
    genomic = _set_ids(read_table(genomic, "genomic"), id_col, "genomic")
    if clinical.shape[1] == 0:
        raise IdaeError("clinical: the table has no columns besides the ID")
    if genomic.shape[1] == 0:
        raise IdaeError("genomic: the table has no gene columns")
    gene_names = pd.Index(genomic.columns.astype(str))
    dup_genes = gene_names[gene_names.duplicated()].unique().tolist()
    if dup_genes:
        raise IdaeError(f"genomic: duplicate gene columns {dup_genes[:5]}")
    non_numeric = [c for c in genomic.columns if not pd.api.types.is_numeric_dtype(genomic[c].dtype)]
    if non_numeric or any(pd.api.types.is_bool_dtype(genomic[c]) for c in genomic.columns):
        non_numeric = non_numeric or [c for c in genomic.columns if pd.api.types.is_bool_dtype(genomic[c])]
        raise IdaeError(
            f"genomic: non-numeric gene columns {non_numeric[:5]}{' ...' if len(non_numeric) > 5 else ''}"
            f" ({len(non_numeric)} in all); genes must hold numbers"
        )
    genomic.columns = gene_names
    clinical.columns = clinical.columns.astype(str)

    in_genomic = set(genomic.index)
    in_clinical = set(clinical.index)
    matched = [i for i in clinical.index if i in in_genomic]
    if not matched:
        raise IdaeError(
            f"no shared IDs between clinical ({list(clinical.index[:3])} ...) and genomic "
            f"({list(genomic.index[:3])} ...); check id_col"
        )
    clinical_only = [i for i in clinical.index if i not in in_genomic]
    genomic_only = [i for i in genomic.index if i not in in_clinical]

    clinical = clean_clinical(clinical.loc[matched], categorical, numeric, missing_codes)
    genomic = genomic.loc[matched].astype(float)

    values = genomic.to_numpy()
    n_bad = (~np.isfinite(values)).sum(axis=0)
    dropped: dict[str, str] = {}
    for gene, n in zip(genomic.columns, n_bad, strict=True):
        if n:
            dropped[gene] = f"non-finite in {n} samples"
    finite = np.where(np.isfinite(values), values, np.nan)
    # max - min, not a standard deviation: np.std of a constant 0.1 column is ~1e-17, not 0
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        spread = np.nanmax(finite, axis=0) - np.nanmin(finite, axis=0)
    for gene, s in zip(genomic.columns, spread, strict=True):
        if gene not in dropped and not s > 0:
            dropped[gene] = "constant"
    if len(dropped) == genomic.shape[1]:
        raise IdaeError("genomic: every gene is constant or non-finite over the matched samples")
    genomic = genomic.drop(columns=list(dropped))

    report = AlignReport(
        n_clinical=len(in_clinical),
        n_genomic=len(in_genomic),
        matched=matched,
        clinical_only=clinical_only,
        genomic_only=genomic_only,
        categorical=[c for c in clinical.columns if isinstance(clinical[c].dtype, pd.CategoricalDtype)],
        numeric=[c for c in clinical.columns if not isinstance(clinical[c].dtype, pd.CategoricalDtype)],
        missing_per_column={c: int(clinical[c].isna().sum()) for c in clinical.columns},
        dropped_genes=dropped,
        n_genes_in=len(dropped) + genomic.shape[1],
    )
    return Aligned(clinical, genomic, report)


# --------------------------------------------------------------------------------------------------
# preprocessing


def looks_like_counts(genomic: pd.DataFrame) -> bool:
    """True for non-negative, integer-valued tables with a large range (raw counts, not log values)."""
    values = genomic.to_numpy()
    return bool((values >= 0).all() and np.allclose(values, np.round(values)) and values.max() > 100)


def log_transform(genomic: pd.DataFrame, mode: str = "auto") -> tuple[pd.DataFrame, bool]:
    """log2(x + 1) when `mode` is "yes", or "auto" and the values look like counts."""
    if mode not in ("auto", "yes", "no"):
        raise IdaeError(f"log_transform must be 'auto', 'yes' or 'no', got {mode!r}")
    apply = mode == "yes" or (mode == "auto" and looks_like_counts(genomic))
    if apply and (genomic.to_numpy() < 0).any():
        raise IdaeError("log_transform='yes' but the genomic table holds negative values (already log?)")
    return (np.log2(genomic + 1.0) if apply else genomic), apply


def most_variable_genes(genomic: pd.DataFrame, n_genes: int | None) -> list[str]:
    """The `n_genes` genes of largest variance (all genes, in their order, when None or larger)."""
    if n_genes is not None and n_genes < 1:
        raise IdaeError(f"n_genes must be a positive integer or None, got {n_genes}")
    if n_genes is None or n_genes >= genomic.shape[1]:
        return list(genomic.columns)
    var = genomic.var(axis=0)
    order = np.argsort(-var.to_numpy(), kind="stable")[:n_genes]
    return list(genomic.columns[np.sort(order)])


@dataclasses.dataclass
class Standardizer:
    """Per-gene centring and scaling, fitted on the training split only."""

    mean: pd.Series
    scale: pd.Series

    @classmethod
    def fit(cls, genomic: pd.DataFrame) -> Standardizer:
        with np.errstate(over="ignore", invalid="ignore"):
            mean, scale = genomic.mean(axis=0), genomic.std(axis=0, ddof=0)
        wild = scale.index[np.isinf(scale.to_numpy(dtype=float)) | np.isinf(mean.to_numpy(dtype=float))].tolist()
        if wild:
            raise IdaeError(
                f"genomic: genes {_head(wild)} cannot be standardised: their spread overflows float64 (values up to "
                f"{float(genomic[wild].abs().max().max()):.3g}); check the units or scale of the input"
            )
        varies = genomic.max(axis=0) > genomic.min(axis=0)  # np.std of a constant is ~1e-17, not 0
        return cls(mean, scale.where(varies & (scale > 0), 1.0))

    def transform(self, genomic: pd.DataFrame) -> pd.DataFrame:
        return (genomic - self.mean) / self.scale

    def inverse(self, genomic: pd.DataFrame) -> pd.DataFrame:
        return genomic * self.scale + self.mean

    def to_dict(self) -> dict[str, Any]:
        return {"genes": list(self.mean.index), "mean": self.mean.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Standardizer:
        return cls(pd.Series(d["mean"], index=d["genes"]), pd.Series(d["scale"], index=d["genes"]))


def stratified_split(
    clinical: pd.DataFrame,
    stratify: str | None,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 0,
) -> pd.Series:
    """Label each patient "train", "validation" or "test", stratified on one clinical column.

    Missing values of the stratifying column form their own stratum, so no patient is left out.
    """
    for name, frac in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= frac < 1:
            raise IdaeError(f"{name} must be in [0, 1), got {frac}")
    if val_fraction + test_fraction >= 0.9:
        raise IdaeError("val_fraction + test_fraction must leave at least 10% of patients for training")
    n = len(clinical)
    n_val, n_test = round(n * val_fraction), round(n * test_fraction)
    if (val_fraction and n_val < 2) or (test_fraction and n_test < 2) or n - n_val - n_test < 8:
        raise IdaeError(
            f"{n} samples are too few for this split (val {val_fraction}, test {test_fraction}): need at "
            "least 8 for training and 2 in each held-out split"
        )
    if stratify is not None and stratify not in clinical.columns:
        raise IdaeError(f"stratify column {stratify!r} is not a clinical column")
    rng = np.random.default_rng(seed)
    if stratify is None:
        strata = pd.Series("all", index=clinical.index)
    else:
        strata = clinical[stratify].astype(object).where(clinical[stratify].notna(), "<missing>").astype(str)
    labels = pd.Series("train", index=clinical.index, name="split")
    # Allocate each stratum's share of validation and test with largest remainders, so the split
    # sizes are exact and every stratum is represented in proportion.
    order = rng.permutation(n)
    shuffled = clinical.index[order]
    strata = strata.loc[shuffled]
    for split, frac in (("validation", val_fraction), ("test", test_fraction)):
        target = round(n * frac)
        if target == 0:
            continue
        available = strata[labels.loc[strata.index] == "train"]
        counts = available.value_counts()
        share = counts / counts.sum() * target
        take = np.floor(share).astype(int)
        rest = target - int(take.sum())
        for level in (share - take).sort_values(ascending=False, kind="stable").index[:rest]:
            take[level] += 1
        for level, k in take.items():
            ids = available.index[available.to_numpy() == level][:k]
            labels.loc[ids] = split
    return labels


def subsample(genomic: pd.DataFrame, clinical: pd.DataFrame, seed: int, fraction: float = 0.8
              ) -> tuple[pd.DataFrame, pd.DataFrame]:  # fmt: skip
    """round(fraction · n) of the n patients, drawn without replacement (`numpy.random.default_rng(seed)`): the
    same rows of both tables, in their original order. Without replacement, so that no patient counts twice in
    the least-squares fits of the inversion (a bootstrap's repeated rows make their standard errors too small).
    Resampled fits (`idae.casestudy.subagged`, `idae.benchmarks.Split.subsample`) all draw their patients here."""
    if not genomic.index.equals(clinical.index):
        raise IdaeError("subsample: genomic and clinical must have the same patients in the same order")
    if not 0 < fraction < 1:
        raise IdaeError(f"fraction must be in (0, 1), got {fraction}")
    size = int(round(fraction * len(genomic)))
    if size < 2:
        raise IdaeError(f"a {fraction} subsample of {len(genomic)} patients keeps {size}: too few to fit")
    rows = np.sort(np.random.default_rng(seed).choice(len(genomic), size, replace=False))
    return genomic.iloc[rows], clinical.iloc[rows]


# --------------------------------------------------------------------------------------------------
# parameter validation (papermill only warns about unknown names)


def check_params(params: dict[str, Any], spec: dict[str, type | tuple[type, ...]]) -> None:
    """Reject unknown or ill-typed parameters with one message naming each offender."""
    problems = [f"unknown parameter {k!r}" for k in params if k not in spec]
    for key, expected in spec.items():
        if key not in params:
            continue
        value = params[key]
        types = expected if isinstance(expected, tuple) else (expected,)
        ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
        if not ok and float in types and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if not ok:
            names = " or ".join("None" if t is type(None) else t.__name__ for t in types)
            problems.append(f"parameter {key!r} must be {names}, got {value!r} ({type(value).__name__})")
    if problems:
        raise IdaeError("; ".join(problems) + f". Known parameters: {sorted(spec)}")


# --------------------------------------------------------------------------------------------------
# the clinical design matrix the condition encoder reads


@dataclasses.dataclass
class ClinicalDesign:
    """Fitted encoding of clinical columns: one-hot categorical, standardised numeric, missing masks.

    Row layout: for each categorical column its levels (one-hot), for each numeric column one
    standardised value, then one missing-indicator per column. A missing cell is filled with a draw
    from the column's empirical distribution (`rng` given: training) or with its expectation (level
    frequencies, or the mean; inference).
    """

    columns: list[str]
    levels: dict[str, list[str]]  # categorical column -> levels
    frequencies: dict[str, list[float]]  # categorical column -> level frequencies
    mean: dict[str, float]  # numeric column -> mean
    scale: dict[str, float]  # numeric column -> sd
    observed: dict[str, list[float]]  # numeric column -> observed standardised values (the prior)

    @classmethod
    def fit(cls, clinical: pd.DataFrame) -> ClinicalDesign:
        clinical = check_clinical(clinical)
        if clinical.shape[1] == 0:
            raise IdaeError("clinical has no columns: the model needs at least one clinical variable")
        levels, freqs, mean, scale, observed = {}, {}, {}, {}, {}
        for col in clinical.columns:
            values = clinical[col]
            if values.isna().all():
                raise IdaeError(f"clinical column {col!r} is entirely missing")
            if not _is_number(values):  # categorical, text or boolean
                counts = _level_counts(values, col)
                if len(counts) < 2:
                    raise IdaeError(f"clinical column {col!r} has a single observed level {list(counts.index)}")
                levels[col] = list(counts.index)
                freqs[col] = (counts / counts.sum()).tolist()
            else:
                v = values.dropna().astype(float)
                if not np.isfinite(v).all():
                    raise IdaeError(f"clinical column {col!r} holds non-finite values")
                sd = float(v.std(ddof=0))
                mean[col], scale[col] = float(v.mean()), sd if sd > 0 else 1.0
                observed[col] = ((v - mean[col]) / scale[col]).tolist()
        return cls(list(clinical.columns), levels, freqs, mean, scale, observed)

    @property
    def width(self) -> int:
        return sum(len(v) for v in self.levels.values()) + len(self.mean) + len(self.columns)

    def feature_names(self) -> list[str]:
        names = []
        for col in self.columns:
            if col in self.levels:
                names += [f"{col}={lv}" for lv in self.levels[col]]
            else:
                names.append(col)
        return names + [f"{col}:missing" for col in self.columns]

    def contrast_blocks(self) -> list[list[int]]:
        """Per clinical column, the indices of its design columns a regression keeps: every level but the first of a
        categorical column (one-hot rows sum to one, so the first level is the intercept's), or the numeric
        column."""
        blocks, start = [], 0
        for col in self.columns:
            width = len(self.levels[col]) if col in self.levels else 1
            blocks.append(list(range(start + (col in self.levels), start + width)))
            start += width
        return blocks

    def contrast_columns(self) -> np.ndarray:
        """Indices of the design columns a regression keeps: the contrasts of every clinical column
        (`contrast_blocks`), then every missing flag (the last `len(columns)` columns of a design row)."""
        keep = [i for block in self.contrast_blocks() for i in block]
        return np.asarray(keep + list(range(self.width - len(self.columns), self.width)), dtype=int)

    def transform(self, clinical: pd.DataFrame, rng: np.random.Generator | None = None) -> np.ndarray:
        """(n, width) float32 design; missing cells sampled with `rng`, else set to their expectation."""
        clinical = check_clinical(clinical, columns=self.columns)
        absent = [c for c in self.columns if c not in clinical.columns]
        if absent:
            raise IdaeError(f"clinical table lacks the columns the model was fitted on: {absent}")
        n = len(clinical)
        blocks, masks = [], []
        for col in self.columns:
            values = clinical[col]
            missing = values.isna().to_numpy()
            masks.append(missing)
            if col in self.levels:
                levels = self.levels[col]
                text = values.astype(object).map(lambda v: v if pd.isna(v) else _level_name(v))
                unseen = sorted(set(text.dropna()) - set(levels))
                if unseen:
                    raise IdaeError(f"clinical column {col!r}: unseen levels {unseen}; known levels {levels}")
                codes = text.map({lv: i for i, lv in enumerate(levels)}).to_numpy()
                onehot = np.zeros((n, len(levels)))
                obs = ~missing
                onehot[np.flatnonzero(obs), codes[obs].astype(int)] = 1.0
                if missing.any():
                    p = np.asarray(self.frequencies[col])
                    if rng is None:
                        onehot[missing] = p
                    else:
                        draws = rng.choice(len(levels), size=int(missing.sum()), p=p)
                        onehot[np.flatnonzero(missing), draws] = 1.0
                blocks.append(onehot)
            else:
                try:
                    v = values.astype(float).to_numpy()
                except (TypeError, ValueError) as err:
                    raise IdaeError(f"clinical column {col!r} must be numeric: {err}") from err
                if not np.isfinite(v[~missing]).all():
                    raise IdaeError(f"clinical column {col!r} holds non-finite values")
                z = (v - self.mean[col]) / self.scale[col]
                if missing.any():
                    z[missing] = 0.0 if rng is None else rng.choice(self.observed[col], size=int(missing.sum()))
                to_float32(z[:, None], clinical.index, [col], "clinical", "column")
                blocks.append(z[:, None])
        blocks.append(np.stack(masks, axis=1).astype(float))
        return np.concatenate(blocks, axis=1).astype(np.float32)

    def sampler(self, clinical: pd.DataFrame, rng: np.random.Generator) -> Callable[[], np.ndarray]:
        """A function returning `transform(clinical, rng)` afresh on each call, redrawing only the missing
        cells (the same draws, in the same order, as `transform` makes), so an epoch's draw costs little."""
        base = self.transform(clinical)
        draws = []  # (rows, first design column, levels or observed values, categorical?)
        start = 0
        for col in self.columns:
            missing = np.flatnonzero(clinical[col].isna().to_numpy())
            width = len(self.levels[col]) if col in self.levels else 1
            if missing.size:
                if col in self.levels:
                    base[np.ix_(missing, np.arange(start, start + width))] = 0.0
                draws.append((missing, start, col))
            start += width

        def draw() -> np.ndarray:
            out = base.copy()
            for rows, first, col in draws:
                if col in self.levels:
                    picked = rng.choice(len(self.levels[col]), size=len(rows), p=np.asarray(self.frequencies[col]))
                    out[rows, first + picked] = 1.0
                else:
                    out[rows, first] = rng.choice(self.observed[col], size=len(rows))
            return out

        return draw

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClinicalDesign:
        return cls(**d)


# --------------------------------------------------------------------------------------------------
# the processed dataset notebook 01 writes and the later notebooks read


class Prepared(NamedTuple):
    clinical: pd.DataFrame  # patients × clinical variables (typed, NaN = missing)
    genomic: pd.DataFrame  # patients × selected genes, standardised on the training split
    split: pd.Series  # "train" / "validation" / "test" per patient
    info: dict[str, Any]  # what was done: log transform, gene selection, standardiser


def prepare(
    aligned: Aligned,
    n_genes: int | None = 5000,
    log: str = "auto",
    stratify: str | None = "er",
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 0,
) -> Prepared:
    """Split, then select the most variable genes and standardise them, fitted on training only."""
    clinical, genomic, _ = aligned
    genomic, logged = log_transform(genomic, log)
    split = stratified_split(clinical, stratify, val_fraction, test_fraction, seed)
    train = genomic.loc[split == "train"]
    genes = most_variable_genes(train, n_genes)
    scaler = Standardizer.fit(train[genes])
    info = {
        "log_transformed": logged,
        "n_genes_aligned": genomic.shape[1],
        "n_genes_selected": len(genes),
        "variance_cut": float(train[genes].var().min()),
        "standardizer": scaler.to_dict(),
    }
    return Prepared(clinical, scaler.transform(genomic[genes]), split, info)


def write_processed(prepared: Prepared, folder: str | Path, manifest: dict[str, Any]) -> Path:
    """Write clinical.parquet, genomic.parquet, split.csv and manifest.json into `folder`, atomically
    (`files.replaced_folder`): a kill at any point leaves the old folder or the new one (`read_processed` puts the
    old one back if the kill fell between the two renames)."""
    import hashlib
    import json

    folder = Path(folder)
    with replaced_folder(folder) as tmp:
        prepared.clinical.to_parquet(tmp / "clinical.parquet")
        prepared.genomic.to_parquet(tmp / "genomic.parquet")
        prepared.split.to_csv(tmp / "split.csv")
        files = {
            p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(tmp.iterdir()) if p.is_file()
        }
        manifest = {**manifest, "files_sha256": files}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1, default=str))
    return folder


def read_processed(folder: str | Path) -> Prepared:
    """Read what `write_processed` wrote (run notebook 01 first)."""
    import json

    folder = Path(folder)
    restore_previous(folder)
    needed = ["clinical.parquet", "genomic.parquet", "split.csv", "manifest.json"]
    absent = [n for n in needed if not (folder / n).is_file()]
    if absent:
        raise IdaeError(f"{folder} lacks {absent}: run notebooks/01_data_alignment.ipynb first")
    manifest = json.loads((folder / "manifest.json").read_text())
    split = pd.read_csv(folder / "split.csv", index_col=0, dtype=str).iloc[:, 0]
    split.index = split.index.astype(str)
    return Prepared(
        pd.read_parquet(folder / "clinical.parquet"), pd.read_parquet(folder / "genomic.parquet"), split, manifest
    )


_IPYTHON_NAMES = {"In", "Out", "exit", "quit", "get_ipython", "open"}


def check_notebook_params(namespace: dict[str, Any], spec: dict[str, type | tuple[type, ...]]) -> dict[str, Any]:
    """Validate a notebook's parameters from its globals (call right after the parameters cell).

    Every plain value defined so far counts as a parameter, so a name papermill injected that the
    notebook does not declare is rejected here instead of being silently ignored.
    """
    import types

    params = {
        k: v
        for k, v in namespace.items()
        if not k.startswith("_") and k not in _IPYTHON_NAMES and not callable(v) and not isinstance(v, types.ModuleType)
    }
    check_params(params, spec)
    return params
