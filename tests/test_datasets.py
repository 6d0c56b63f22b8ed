"""idae.load_cohort: the two survset breast-cancer cohorts, read offline."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import idae
from idae.checks import MISSING_CODES
from idae.datasets import COHORTS, export_cohort


@pytest.fixture(scope="module")
def gse1992():
    return idae.load_cohort("gse1992")


@pytest.fixture(scope="module")
def gse4335():
    return idae.load_cohort("gse4335")


def check_common(clinical: pd.DataFrame, genomic: pd.DataFrame, name: str) -> None:
    """Properties both cohorts share: same patient index, gene-symbol columns, typed clinical, no codes."""
    assert isinstance(clinical, pd.DataFrame) and isinstance(genomic, pd.DataFrame)
    assert clinical.index.equals(genomic.index)
    assert clinical.index.name == genomic.index.name == "patient"
    assert clinical.index.is_unique
    assert all(isinstance(i, str) and i.startswith(f"{name}_") for i in clinical.index)
    assert list(clinical.columns) == list(COHORTS[name].values())
    # genes: symbols without the survset prefix, unique, finite floats
    assert genomic.columns.is_unique
    assert not any(c.startswith(("num_", "HS_", "fac_")) for c in genomic.columns)
    assert all(isinstance(c, str) and c and c == c.strip() for c in genomic.columns)
    assert (genomic.dtypes == np.float64).all()
    assert np.isfinite(genomic.to_numpy()).all()
    # clinical: category or float, no missing-value codes left
    codes = {c.lower() for c in MISSING_CODES} | {"na", "nan", "missing", "x"}
    for col in clinical.columns:
        values = clinical[col]
        if isinstance(values.dtype, pd.CategoricalDtype):
            levels = [str(v) for v in values.cat.categories]
            assert not {lv.strip().lower() for lv in levels} & codes, (col, levels)
            assert len(levels) >= 2
        else:
            assert values.dtype == np.float64, col
            assert (values.dropna() >= 0).all(), col  # no negative sentinels such as -1 or -9
    # the same tables align without losing anyone
    report = idae.align(clinical, genomic).report
    assert report.n_matched == len(clinical)
    assert not report.clinical_only and not report.genomic_only


def test_export_writes_the_two_tables_a_user_would_have(gse4335, tmp_path):
    clinical_csv, genomic_csv = export_cohort("gse4335", tmp_path / "tables")
    aligned = idae.align(clinical_csv, genomic_csv, id_col="patient", categorical=["node", "grade", "size_class"])
    clinical, genomic = gse4335
    assert aligned.clinical.index.tolist() == clinical.index.tolist()
    pd.testing.assert_frame_equal(aligned.genomic, genomic, check_names=False, check_freq=False)
    for column in clinical:  # the same values (missing cells included), typed the same way
        assert aligned.clinical[column].astype(str).tolist() == clinical[column].astype(str).tolist(), column
        categorical = isinstance(aligned.clinical[column].dtype, pd.CategoricalDtype)
        assert categorical == isinstance(clinical[column].dtype, pd.CategoricalDtype), column
    assert sorted(p.name for p in (tmp_path / "tables").iterdir()) == ["clinical.csv", "genomic.csv"]


def test_gse1992(gse1992):
    clinical, genomic = gse1992
    check_common(clinical, genomic, "gse1992")
    assert clinical.shape == (124, 6)
    assert genomic.shape == (124, 15528)
    assert {"ESR1", "ERBB2", "GATA3", "FOXA1"} <= set(genomic.columns)
    assert clinical["er"].value_counts(dropna=False).to_dict() == {"pos": 72, "neg": 50, np.nan: 2}
    assert list(clinical["er"].cat.categories) == ["neg", "pos"]
    assert list(clinical["node"].cat.categories) == ["neg", "pos"]
    assert list(clinical["grade"].cat.categories) == ["1", "2", "3"]
    assert list(clinical["size_class"].cat.categories) == ["1", "2", "3", "4"]
    categorical = [c for c in clinical.columns if isinstance(clinical[c].dtype, pd.CategoricalDtype)]
    assert categorical == ["er", "node", "grade", "size_class"]
    assert clinical["age"].dtype == clinical["size"].dtype == np.float64
    assert clinical["age"].between(18, 100).all()  # no age 0 or negative code
    # survset's "missing" cells became NaN, no more and no fewer
    assert clinical.isna().sum().to_dict() == {"er": 2, "node": 1, "grade": 4, "size_class": 1, "size": 1, "age": 0}


def test_gse1992_er_separates_expression(gse1992):
    """ER status and ESR1 expression belong to the same patients: the rows are not shuffled."""
    clinical, genomic = gse1992
    esr1 = genomic["ESR1"]
    assert esr1[clinical["er"] == "pos"].mean() > esr1[clinical["er"] == "neg"].mean() + 1


def test_gse4335(gse4335):
    clinical, genomic = gse4335
    check_common(clinical, genomic, "gse4335")
    assert clinical.shape == (115, 7)
    assert genomic.shape == (115, 12793)
    assert clinical["er"].value_counts(dropna=False).to_dict() == {"pos": 82, "neg": 31, np.nan: 2}
    assert list(clinical["node"].cat.categories) == ["0", "1", "2"]  # no published key: codes kept
    assert clinical["metastasis"].value_counts().to_dict() == {"no": 102, "yes": 13}
    assert clinical["histology"].value_counts().iloc[:2].to_dict() == {"Ductal": 101, "Lobular": 8}
    numeric = [c for c in clinical.columns if not isinstance(clinical[c].dtype, pd.CategoricalDtype)]
    assert numeric == ["age"]
    assert clinical["age"].between(18, 100).all()
    # node had both "na" and "x" codes
    assert clinical.isna().sum().to_dict() == {
        "er": 2,
        "node": 2,
        "grade": 2,
        "size_class": 2,
        "histology": 0,
        "metastasis": 0,
        "age": 0,
    }
    esr1 = genomic["ESR1"]
    assert esr1[clinical["er"] == "pos"].mean() > esr1[clinical["er"] == "neg"].mean() + 1


def test_cohorts_are_distinct(gse1992, gse4335):
    assert not set(gse1992[0].index) & set(gse4335[0].index)


def test_default_cohort_is_gse1992(gse1992):
    clinical, genomic = idae.load_cohort()
    pd.testing.assert_frame_equal(clinical, gse1992[0])
    assert genomic.shape == gse1992[1].shape


@pytest.mark.parametrize("name", ["GSE1992", "tcga_brca", ""])
def test_unknown_cohort_lists_known_names(name):
    with pytest.raises(idae.IdaeError, match=rf"unknown cohort '{name}'; available: \['gse1992', 'gse4335'\]"):
        idae.load_cohort(name)


def test_a_plain_import_reaches_the_submodules_users_name():
    """`import idae` then `idae.datasets` / `idae.synthetic` / `idae.metrics`, in a fresh interpreter (inside pytest
    other tests have imported them already), each loaded on first use only."""
    code = (
        "import sys, idae\n"
        "assert 'idae.datasets' not in sys.modules\n"
        "assert callable(idae.datasets.load_cohort) and callable(idae.synthetic.make_cohort)\n"
        "assert callable(idae.metrics.mcc)\n"
        "try:\n    idae.nonexistent\nexcept AttributeError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "no attribute 'nonexistent'" in out.stdout
