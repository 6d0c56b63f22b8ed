"""Reading, aligning and preprocessing clinical and genomic tables.

Everything here is pandas in, pandas out, indexed by patient ID. Nothing is dropped silently:
every sample or gene left out is listed in the `AlignReport` with the reason.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from idae.checks import MISSING_CODES, check_labels, clean_clinical, duplicated_labels, first_labels
from idae.errors import IdaeError
from idae.files import replaced_folder, restore_previous

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


def align(
    clinical: pd.DataFrame | str | Path,
    genomic: pd.DataFrame | str | Path,
    id_col: str | None = None,
    categorical: list[str] | None = None,
    numeric: list[str] | None = None,
    missing_codes: tuple[str, ...] = MISSING_CODES,
) -> Aligned:
    """Join clinical and genomic tables on patient IDs, type the clinical columns, and report what was left out.

    Parameters
    ----------
    clinical, genomic : DataFrame or path (CSV / parquet)
        patients × clinical variables, and patients × genes
    id_col : str, optional
        a column holding the patient IDs in both tables; default: each table's index
    categorical, numeric : list of str, optional
        columns to type as categories or numbers; the others are inferred (text, booleans, categories and 0/1
        codes are categorical)
    missing_codes : tuple of str
        cell values read as missing, whatever their case

    Returns
    -------
    Aligned
        `(clinical, genomic, report)`: the matched patients in the clinical table's order, clinical columns typed
        (`category` or float, NaN = missing), constant or non-finite genes removed; `report` says what was left out

    Examples
    --------
    >>> clinical, genomic, report = idae.align("clinical.csv", "genomic.csv", id_col="patient")
    >>> print(report)
    """
    clinical = _set_ids(read_table(clinical, "clinical"), id_col, "clinical")
    genomic = _set_ids(read_table(genomic, "genomic"), id_col, "genomic")
    if clinical.shape[1] == 0:
        raise IdaeError("clinical: the table has no columns besides the ID")
    if genomic.shape[1] == 0:
        raise IdaeError("genomic: the table has no gene columns")
    gene_names = pd.Index(genomic.columns.astype(str))
    if dup_genes := duplicated_labels(gene_names):
        raise IdaeError(f"genomic: duplicate gene columns {first_labels(dup_genes)}")
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
                f"genomic: genes {first_labels(wild)} cannot be standardised: their spread overflows float64 (values "
                f"up to {float(genomic[wild].abs().max().max()):.3g}); check the units or scale of the input"
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


def hold_out(genomic: pd.DataFrame, clinical: pd.DataFrame, fraction: float, seed: int
             ) -> tuple[pd.DataFrame, pd.DataFrame, tuple[pd.DataFrame, pd.DataFrame]]:  # fmt: skip
    """A random `fraction` of the patients (at least 2; seeded) held out for early stopping: the training genomic
    and clinical tables and the (genomic, clinical) pair held out, each in the input's row order."""
    order = np.random.default_rng(seed).permutation(len(genomic))
    n_val = max(2, round(fraction * len(genomic)))
    val_ids, train_ids = genomic.index[order[:n_val]], genomic.index[order[n_val:]]
    return genomic.loc[train_ids], clinical.loc[train_ids], (genomic.loc[val_ids], clinical.loc[val_ids])


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
