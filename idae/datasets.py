"""Public breast-cancer cohorts that install offline with the `survset` package.

Both are two-colour microarray cohorts distributed as log-ratios per gene symbol (survset prefixes
them `num_HS_`); clinical columns arrive as `fac_*` / `num_*` with missing cells coded as strings.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from idae.checks import clean_clinical
from idae.errors import IdaeError
from idae.files import replaced_file

# survset column -> readable name, per cohort.
COHORTS: dict[str, dict[str, str]] = {
    "gse1992": {
        "fac_er_positive": "er",
        "fac_node_status": "node",
        "fac_grade": "grade",
        "fac_size": "size_class",
        "num_size": "size",
        "num_age": "age",
    },
    "gse4335": {
        "fac_er_status": "er",
        "fac_node_status": "node",
        "fac_grade": "grade",
        "fac_tumor_size": "size_class",
        "fac_histology": "histology",
        "fac_metastasis": "metastasis",
        "num_age": "age",
    },
}
# Readable levels for binary codes. gse4335 codes node status 0/1/2 without a published key, so its
# codes are kept as they are.
LEVELS = {"er": {"0": "neg", "1": "pos"}, "node": {"0": "neg", "1": "pos"}, "metastasis": {"0": "no", "1": "yes"}}
GENE_PREFIX = "num_HS_"
# Units of the cohorts' numeric columns, for axis labels: age in years. GSE1992's numeric tumour size holds the values
# 1-4 of its size class (the same value for all but one patient), in no stated unit, so it is labelled without one.
UNITS = {"age": "years"}


def load_cohort(name: str = "gse1992") -> tuple[pd.DataFrame, pd.DataFrame]:
    """A breast-cancer cohort of the survset package, read from the installed package (no download).

    Parameters
    ----------
    name : str
        "gse1992" or "gse4335"

    Returns
    -------
    clinical : DataFrame, patients × variables
        categorical columns as pandas `category` (ER "neg"/"pos", grade "1"-"3", ...), numeric as float, every
        missing-value code mapped to NaN
    genomic : DataFrame, patients × genes
        log-ratio expression, columns named by gene symbol, the same patient index

    Examples
    --------
    >>> clinical, genomic = idae.load_cohort("gse1992")
    """
    if name not in COHORTS:
        raise IdaeError(f"unknown cohort {name!r}; available: {sorted(COHORTS)}")
    from SurvSet.data import SurvLoader

    raw = SurvLoader().load_dataset(name)["df"]
    raw = raw.set_index(raw["pid"].astype(str).radd(f"{name}_"))
    raw.index.name = "patient"
    genes = [c for c in raw.columns if c.startswith(GENE_PREFIX)]
    genomic = raw[genes].astype(float)
    genomic.columns = [c[len(GENE_PREFIX) :] for c in genes]

    names = COHORTS[name]
    clinical = raw[list(names)].rename(columns=names)
    for col, levels in LEVELS.items():
        if col in clinical and set(clinical[col].astype(str)) <= set(levels) | {"na", "missing", "x"}:
            clinical[col] = clinical[col].astype(str).map(lambda v, lv=levels: lv.get(v, v))
    numeric = [c for c in ("age", "size") if c in clinical]
    categorical = [c for c in clinical.columns if c not in numeric]
    clinical = clean_clinical(clinical, categorical=categorical, numeric=numeric)
    return clinical, genomic


def export_cohort(name: str, folder: str | Path) -> tuple[Path, Path]:
    """Write a cohort as two plain tables, `folder/clinical.csv` and `folder/genomic.csv`.

    Both have a `patient` ID column and patients in rows, the shape a user's own data arrives in;
    missing clinical cells are written empty. The README's worked example starts from these files.
    """
    clinical, genomic = load_cohort(name)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / "clinical.csv", folder / "genomic.csv"
    for table, path in zip((clinical, genomic), paths, strict=True):
        with replaced_file(path) as tmp:
            table.to_csv(tmp, index_label="patient")
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write a survset cohort as clinical.csv and genomic.csv.")
    parser.add_argument("cohort", choices=sorted(COHORTS))
    parser.add_argument("folder", help="output folder (created if missing)")
    args = parser.parse_args(argv)
    for path in export_cohort(args.cohort, args.folder):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
