"""idae.data: reading, aligning, typing, reporting, preprocessing, splitting and the processed-data round trip."""

import hashlib
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import idae
from idae.checks import MISSING_CODES, clean_clinical
from idae.data import (
    Prepared,
    Standardizer,
    log_transform,
    looks_like_counts,
    most_variable_genes,
    prepare,
    read_processed,
    read_table,
    stratified_split,
    write_processed,
)
from idae.design import ClinicalDesign
from idae.params import NOTEBOOKS, check_notebook_params, check_params, declared_parameters

PROPERTY = settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


def make_tables(n: int = 40, n_genes: int = 30, seed: int = 0, prefix: str = "p") -> tuple[pd.DataFrame, pd.DataFrame]:
    """A clinical table (er / grade / age, a few missing cells) and a genomic table of counts, same IDs."""
    rng = np.random.default_rng(seed)
    ids = [f"{prefix}{i}" for i in range(n)]
    er = np.array(["pos", "neg"])[(np.arange(n) % 5 < 3).astype(int)]
    clinical = pd.DataFrame(
        {"er": er, "grade": [f"G{1 + i % 3}" for i in range(n)], "age": rng.normal(55, 10, n).round(1)},
        index=pd.Index(ids, name="patient"),
    )
    clinical.iloc[1, 2] = np.nan
    clinical.iloc[2, 1] = "missing"
    genomic = pd.DataFrame(
        rng.poisson(rng.uniform(5, 500, n_genes), (n, n_genes)).astype(float),
        index=pd.Index(ids, name="patient"),
        columns=[f"G{j}" for j in range(n_genes)],
    )
    return clinical, genomic


# --------------------------------------------------------------------------------------------------
# align: the happy path and the report


def test_align_on_index_reports_matched_and_one_sided_ids():
    clinical, genomic = make_tables(12, 5)
    clinical = clinical.drop(index=["p3"]).rename(index={"p0": "c_only"})
    genomic = genomic.drop(index=["p5", "p7"]).iloc[::-1]  # reversed: output follows clinical order
    genomic.loc["g_only"] = np.arange(5.0)
    aligned = idae.align(clinical, genomic)
    assert isinstance(aligned, idae.Aligned)
    report = aligned.report
    expected = [i for i in clinical.index if i in genomic.index]
    assert report.matched == expected
    assert list(aligned.clinical.index) == expected == list(aligned.genomic.index)
    assert report.clinical_only == ["c_only", "p5", "p7"]
    assert report.genomic_only == ["p3", "p0", "g_only"]
    assert report.n_clinical == len(clinical) == report.n_matched + len(report.clinical_only)
    assert report.n_genomic == len(genomic) == report.n_matched + len(report.genomic_only)
    # genomic rows are the input rows, not shuffled against clinical
    pd.testing.assert_frame_equal(aligned.genomic, genomic.loc[expected], check_names=False)
    text = str(report)
    assert "clinical only (3): c_only, p5, p7" in text
    assert "genomic only (3): p3, p0, g_only" in text
    assert f"{report.n_matched} matched" in text
    assert report.to_dict()["matched"] == expected


def test_align_on_id_column():
    clinical, genomic = make_tables(10, 4)
    clin = clinical.reset_index().rename(columns={"patient": "sid"})
    gen = genomic.reset_index().rename(columns={"patient": "sid"}).iloc[2:]
    aligned = idae.align(clin, gen, id_col="sid")
    assert aligned.report.matched == [f"p{i}" for i in range(2, 10)]
    assert aligned.report.clinical_only == ["p0", "p1"]
    assert "sid" not in aligned.clinical.columns and "sid" not in aligned.genomic.columns
    assert aligned.clinical.index.name == aligned.genomic.index.name == "patient"


def test_align_ids_of_different_types_match_as_strings():
    clinical, genomic = make_tables(10, 4)
    clinical.index = range(10)
    genomic.index = [str(i) for i in range(10)]
    aligned = idae.align(clinical, genomic)
    assert aligned.report.matched == [str(i) for i in range(10)]


def test_align_types_columns_and_counts_missing_cells():
    clinical, genomic = make_tables(12, 4)
    clinical["flag"] = [0, 1] * 6  # two numeric values: a binary code, categorical
    aligned = idae.align(clinical, genomic)
    report = aligned.report
    assert report.categorical == ["er", "grade", "flag"]
    assert report.numeric == ["age"]
    for col in report.categorical:
        assert isinstance(aligned.clinical[col].dtype, pd.CategoricalDtype)
    assert aligned.clinical["age"].dtype == np.float64
    assert list(aligned.clinical["flag"].cat.categories) == ["0", "1"]
    assert report.missing_per_column == {"er": 0, "grade": 1, "age": 1, "flag": 0}
    assert pd.isna(aligned.clinical.loc["p2", "grade"])  # "missing" became NaN
    assert "grade=1" in str(report) and "age=1" in str(report)
    assert list(aligned.clinical["grade"].cat.categories) == ["G1", "G2", "G3"]


def test_align_declared_types_override_inference():
    clinical, genomic = make_tables(12, 4)
    clinical["flag"] = [0, 1] * 6  # two values: categorical unless declared numeric
    aligned = idae.align(clinical, genomic, categorical=["age"], numeric=["flag"])
    assert aligned.report.categorical == ["er", "grade", "age"]
    assert aligned.report.numeric == ["flag"]
    assert aligned.clinical["flag"].tolist() == [0.0, 1.0] * 6
    assert len(aligned.clinical["age"].cat.categories) == aligned.clinical["age"].nunique()


def test_align_drops_constant_and_non_finite_genes_with_reasons():
    clinical, genomic = make_tables(10, 6)
    genomic["const"] = 7.0
    genomic["has_nan"] = np.arange(10.0)
    genomic.loc[["p1", "p4"], "has_nan"] = np.nan
    genomic["has_inf"] = np.arange(10.0)
    genomic.loc["p3", "has_inf"] = np.inf
    genomic["neg_inf"] = np.arange(10.0)
    genomic.loc["p0", "neg_inf"] = -np.inf
    genomic["const_on_matched"] = 1.0
    genomic.loc["g_only", :] = 3.0  # an unmatched sample makes const_on_matched vary on the input
    genomic.loc["g_only", "const_on_matched"] = 99.0
    aligned = idae.align(clinical, genomic)
    dropped = aligned.report.dropped_genes
    assert dropped == {
        "const": "constant",
        "has_nan": "non-finite in 2 samples",
        "has_inf": "non-finite in 1 samples",
        "neg_inf": "non-finite in 1 samples",
        "const_on_matched": "constant",
    }
    assert list(aligned.genomic.columns) == [f"G{j}" for j in range(6)]
    assert aligned.report.n_genes_in == genomic.shape[1] == len(dropped) + aligned.genomic.shape[1]
    assert np.isfinite(aligned.genomic.to_numpy()).all()
    assert "11 in, 6 kept, 5 dropped" in str(aligned.report)


@pytest.mark.parametrize("value", [0.1, 0.7, 1 / 3, -2.2])
def test_align_drops_a_constant_gene_whatever_its_float_value(value):
    """A gene equal to 0.1 in every sample is constant even though np.std gives ~1e-17 for it."""
    clinical, genomic = make_tables(6, 3)
    genomic["flat"] = value
    aligned = idae.align(clinical, genomic)
    assert aligned.report.dropped_genes == {"flat": "constant"}
    assert "flat" not in aligned.genomic.columns


def test_align_reads_csv_and_parquet(tmp_path):
    clinical, genomic = make_tables(15, 5)
    clinical.to_csv(tmp_path / "clinical.csv")
    genomic.to_csv(tmp_path / "genomic.tsv", sep="\t")
    clinical.to_parquet(tmp_path / "clinical.parquet")
    genomic.to_parquet(tmp_path / "genomic.parquet")
    from_frames = idae.align(clinical, genomic)
    for clin, gen in [
        ("clinical.csv", "genomic.tsv"),
        ("clinical.parquet", "genomic.parquet"),
        ("clinical.csv", "genomic.parquet"),
    ]:
        aligned = idae.align(tmp_path / clin, str(tmp_path / gen))
        assert aligned.report.matched == from_frames.report.matched, (clin, gen)
        pd.testing.assert_frame_equal(aligned.genomic, from_frames.genomic)
        pd.testing.assert_frame_equal(aligned.clinical, from_frames.clinical)


def test_align_csv_with_id_column_first(tmp_path):
    """A CSV written without an index whose first column is the ID named by id_col."""
    clinical, genomic = make_tables(12, 4)
    clinical.reset_index().to_csv(tmp_path / "clinical.csv", index=False)
    genomic.reset_index().to_csv(tmp_path / "genomic.csv", index=False)
    aligned = idae.align(tmp_path / "clinical.csv", tmp_path / "genomic.csv", id_col="patient")
    assert aligned.report.matched == list(clinical.index)
    assert list(aligned.genomic.columns) == list(genomic.columns)


def test_align_keeps_leading_zeros_of_csv_ids(tmp_path):
    """IDs such as "007" must match between a CSV and a parquet file (not be read as the number 7)."""
    clinical, genomic = make_tables(12, 4)
    ids = [f"{i:03d}" for i in range(12)]
    clinical.index = pd.Index(ids, name="patient")
    genomic.index = pd.Index(ids, name="patient")
    clinical.to_csv(tmp_path / "clinical.csv")
    genomic.to_parquet(tmp_path / "genomic.parquet")
    aligned = idae.align(tmp_path / "clinical.csv", tmp_path / "genomic.parquet")
    assert aligned.report.matched == ids


def test_read_table_errors(tmp_path):
    with pytest.raises(idae.IdaeError, match=r"clinical: file not found: .*nope\.csv"):
        read_table(tmp_path / "nope.csv", "clinical")
    with pytest.raises(idae.IdaeError, match=r"genomic: expected a DataFrame or a CSV/parquet path, got list"):
        read_table([1, 2], "genomic")
    (tmp_path / "broken.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(idae.IdaeError, match=r"genomic: could not read .*broken\.parquet"):
        read_table(tmp_path / "broken.parquet", "genomic")


# --------------------------------------------------------------------------------------------------
# align: bad input


def test_align_no_shared_ids():
    clinical, genomic = make_tables(10, 4)
    genomic.index = [f"x{i}" for i in range(10)]
    message = (
        r"no shared IDs between clinical \(\['p0', 'p1', 'p2'\] .*\) and genomic \(\['x0', 'x1', 'x2'\] .*check id_col"
    )
    with pytest.raises(idae.IdaeError, match=message):
        idae.align(clinical, genomic)


@pytest.mark.parametrize("side", ["clinical", "genomic"])
def test_align_duplicate_ids(side):
    tables = dict(zip(["clinical", "genomic"], make_tables(10, 4), strict=True))
    tables[side] = tables[side].rename(index={"p3": "p1", "p7": "p6"})
    with pytest.raises(idae.IdaeError, match=rf"{side}: duplicate IDs \['p1', 'p6'\] \(2 in all\)"):
        idae.align(tables["clinical"], tables["genomic"])


def test_align_missing_ids_in_id_column():
    clinical, genomic = make_tables(10, 4)
    clin = clinical.reset_index()
    clin.loc[[2, 5], "patient"] = None
    with pytest.raises(idae.IdaeError, match=r"clinical: 2 rows have no ID"):
        idae.align(clin, genomic.reset_index(), id_col="patient")


def test_align_unknown_id_column():
    clinical, genomic = make_tables(10, 4)
    with pytest.raises(idae.IdaeError, match=r"clinical: id column 'sample' not found"):
        idae.align(clinical, genomic, id_col="sample")


def test_align_non_numeric_gene_column_is_named():
    clinical, genomic = make_tables(10, 4)
    genomic["BRCA1"] = ["high", "low"] * 5
    with pytest.raises(idae.IdaeError, match=r"non-numeric gene columns \['BRCA1'\] \(1 in all\)"):
        idae.align(clinical, genomic)


def test_align_boolean_gene_column_is_named():
    clinical, genomic = make_tables(10, 4)
    genomic["mutated"] = [True, False] * 5
    with pytest.raises(idae.IdaeError, match=r"non-numeric gene columns \['mutated'\]"):
        idae.align(clinical, genomic)


def test_align_duplicate_gene_columns_are_reported_as_duplicates():
    clinical, genomic = make_tables(10, 4)
    genomic.columns = ["G0", "G1", "G1", "G3"]
    with pytest.raises(idae.IdaeError, match=r"duplicate gene columns \['G1'\]"):
        idae.align(clinical, genomic)


def test_align_gene_names_clashing_as_strings():
    clinical, genomic = make_tables(10, 2)
    genomic.columns = [0, "0"]
    with pytest.raises(idae.IdaeError, match=r"duplicate gene columns \['0'\]"):
        idae.align(clinical, genomic)


def test_align_duplicate_clinical_columns():
    clinical, genomic = make_tables(10, 4)
    clinical.columns = ["er", "age", "age"]
    with pytest.raises(idae.IdaeError, match=r"duplicate.*'age'"):
        idae.align(clinical, genomic)


def test_align_all_missing_clinical_column_is_named():
    clinical, genomic = make_tables(10, 4)
    clinical["stage"] = ["NA", "missing", None, np.nan, "x", " ", "?", "Unknown", "n/a", "not available"]
    with pytest.raises(idae.IdaeError, match=r"clinical column 'stage' is entirely missing"):
        idae.align(clinical, genomic)


def test_align_column_missing_on_the_matched_patients_only():
    clinical, genomic = make_tables(10, 4)
    clinical["stage"] = [np.nan] * 9 + ["II"]
    with pytest.raises(idae.IdaeError, match=r"clinical column 'stage' is entirely missing"):
        idae.align(clinical, genomic.drop(index=["p9"]))


def test_align_single_level_categorical_is_named():
    clinical, genomic = make_tables(10, 4)
    clinical["sex"] = ["F"] * 9 + ["na"]
    with pytest.raises(idae.IdaeError, match=r"clinical column 'sex' has a single level \['F'\]"):
        idae.align(clinical, genomic)


def test_align_table_without_columns():
    clinical, genomic = make_tables(10, 4)
    with pytest.raises(idae.IdaeError, match=r"clinical: the table has no columns besides the ID"):
        idae.align(clinical[[]], genomic)
    with pytest.raises(idae.IdaeError, match=r"genomic: the table has no gene columns"):
        idae.align(clinical, genomic[[]])


def test_align_every_gene_dropped():
    clinical, genomic = make_tables(10, 3)
    genomic[:] = 1.0
    genomic.iloc[0, 0] = np.nan
    with pytest.raises(idae.IdaeError, match=r"every gene is constant or non-finite"):
        idae.align(clinical, genomic)


# --------------------------------------------------------------------------------------------------
# align: property-based


ID_POOL = [f"s{i}" for i in range(12)]
CELL = st.one_of(
    st.sampled_from(["a", "b", "c", "NA", "missing", "x", ""]),
    st.floats(-5, 5),
    st.just(np.nan),
    st.none(),
)


def column(draw, n: int, kind: str) -> list:
    """n cells of a clinical column or a gene, of one kind. The simplest draw of each kind (what hypothesis
    tries first) is a usable column, so that most examples get through `align` and test its result:
    "number" / "level" / "finite" vary along the rows, with random offsets and random missing cells;
    "mixed" is any mixture of text, numbers and missing codes; "with_bad" holds NaN / inf among finite
    values; "constant" is one exact value."""
    if kind == "constant":
        return [draw(st.sampled_from([0.0, 0.5, -2.0, 1e3]))] * n
    if kind == "mixed":
        return draw(st.lists(CELL, min_size=n, max_size=n))
    offsets = draw(st.lists(st.floats(0, 5), min_size=n, max_size=n))
    if kind == "level":
        cells = [("lo", "hi", "mid")[(i + int(o)) % 3] for i, o in enumerate(offsets)]
    else:
        cells = [10.0 * i + o for i, o in enumerate(offsets)]
    holes = st.sampled_from([np.nan, np.inf, -np.inf]) if kind == "with_bad" else st.sampled_from([np.nan, "NA"])
    if kind in ("finite", "number"):
        holes = st.just(np.nan)
    missing = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    if kind == "finite":
        missing = [False] * n
    if kind == "with_bad" and n:
        missing[draw(st.integers(0, n - 1))] = True
    return [draw(holes) if m else c for c, m in zip(cells, missing, strict=True)]


@st.composite
def table_pair(draw):
    """Clinical and genomic tables over IDs that overlap in part (or not at all), sometimes with a duplicate ID."""
    pool = draw(st.permutations(ID_POOL))
    n_shared = 8 - draw(st.integers(0, 8))
    n_clin, n_gen = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    shared, rest = pool[:n_shared], pool[n_shared:]
    clin_ids = draw(st.permutations(shared + rest[:n_clin]))
    gen_ids = draw(st.permutations(shared + rest[n_clin : n_clin + n_gen]))
    for ids in (clin_ids, gen_ids):
        if ids and draw(st.integers(0, 7)) == 7:
            ids.insert(draw(st.integers(0, len(ids))), draw(st.sampled_from(ids)))
    kinds = draw(st.lists(st.sampled_from(["number", "level", "mixed"]), min_size=1, max_size=3))
    clinical = pd.DataFrame(
        {
            f"c{j}": pd.Series(column(draw, len(clin_ids), k), dtype=float if k == "number" else object)
            for j, k in enumerate(kinds)
        }
    )
    clinical.index = clin_ids
    kinds = draw(st.lists(st.sampled_from(["finite", "with_bad", "constant"]), min_size=1, max_size=5))
    genomic = pd.DataFrame(
        {f"G{j}": pd.Series(column(draw, len(gen_ids), k), dtype=float) for j, k in enumerate(kinds)}
    )
    genomic.index = gen_ids
    return clinical, genomic


@PROPERTY
@given(table_pair())
def test_align_is_consistent_or_raises_idae_error(tables):
    clinical, genomic = tables
    has_dup = clinical.index.duplicated().any() or genomic.index.duplicated().any()
    shared = set(clinical.index) & set(genomic.index)
    try:
        aligned = idae.align(clinical, genomic)
    except idae.IdaeError as err:
        assert str(err)
        if has_dup:
            assert "duplicate IDs" in str(err)
        elif not shared:
            assert "no shared IDs" in str(err)
        return
    assert not has_dup
    clin, gen, report = aligned
    expected = [i for i in clinical.index if i in shared]
    assert report.matched == expected == list(clin.index) == list(gen.index)
    assert report.clinical_only == [i for i in clinical.index if i not in shared]
    assert report.genomic_only == [i for i in genomic.index if i not in shared]
    assert report.n_matched + len(report.clinical_only) == len(clinical) == report.n_clinical
    assert report.n_matched + len(report.genomic_only) == len(genomic) == report.n_genomic
    # genes: kept + dropped = input, order kept, every kept gene finite and non-constant on the matched rows
    assert report.n_genes_in == genomic.shape[1]
    assert sorted(report.dropped_genes) + list(gen.columns) == sorted(report.dropped_genes) + [
        c for c in genomic.columns if c not in report.dropped_genes
    ]
    assert set(report.dropped_genes).isdisjoint(gen.columns)
    assert len(report.dropped_genes) + gen.shape[1] == genomic.shape[1]
    source = genomic.loc[expected]
    for gene, reason in report.dropped_genes.items():
        n_bad = int((~np.isfinite(source[gene])).sum())
        if n_bad:
            assert reason == f"non-finite in {n_bad} samples"
        else:
            assert reason == "constant" and source[gene].nunique() == 1
    np.testing.assert_array_equal(gen.to_numpy(), source[list(gen.columns)].to_numpy())
    assert np.isfinite(gen.to_numpy()).all()
    assert (gen.max() > gen.min()).all()
    # clinical: every column typed, missing counts match the input's NaN and missing codes
    assert sorted(report.categorical + report.numeric) == sorted(clin.columns) == sorted(clinical.columns)
    codes = {c.lower() for c in MISSING_CODES}
    for col in clinical.columns:
        raw = clinical.loc[expected, col]
        n_missing = int(sum(pd.isna(v) or (isinstance(v, str) and v.strip().lower() in codes) for v in raw))
        assert report.missing_per_column[col] == n_missing == int(clin[col].isna().sum())
        if col in report.categorical:
            assert isinstance(clin[col].dtype, pd.CategoricalDtype)
            assert len(clin[col].cat.categories) >= 2
        else:
            assert clin[col].dtype == np.float64
            assert clin[col].nunique() > 2


# --------------------------------------------------------------------------------------------------
# clean_clinical


def test_clean_clinical_maps_codes_and_types_columns():
    raw = pd.DataFrame(
        {
            "er": ["pos", "NEG ", "na", "pos", " Missing", "neg"],
            "grade": [1, 2, 3, 2, np.nan, 1],
            "age": [50.5, 61.0, 44.0, 70.0, np.nan, 38.0],
            "node": [0.0, 1.0, 1.0, np.nan, 0.0, 1.0],
            "smoker": [True, False, True, True, False, False],
            "stage": ["I", "II", "?", "unknown", "III", "N/A"],
        }
    )
    out = clean_clinical(raw, categorical=["grade"])
    assert list(out.columns) == list(raw.columns)
    assert out["er"].isna().tolist() == [False, False, True, False, True, False]
    assert list(out["er"].cat.categories) == ["NEG", "neg", "pos"]  # stripped, case kept
    assert list(out["grade"].cat.categories) == ["1", "2", "3"]  # 1.0 -> "1"
    assert out["age"].dtype == np.float64
    np.testing.assert_array_equal(out["age"].to_numpy(), raw["age"].to_numpy())
    assert list(out["node"].cat.categories) == ["0", "1"]
    assert list(out["smoker"].cat.categories) == ["False", "True"]
    assert out["stage"].isna().sum() == 3 and list(out["stage"].cat.categories) == ["I", "II", "III"]
    text_left = [v for c in out.columns if isinstance(out[c].dtype, pd.CategoricalDtype) for v in out[c].cat.categories]
    assert not {v.lower() for v in text_left} & set(MISSING_CODES)


def test_clean_clinical_custom_missing_codes():
    raw = pd.DataFrame({"er": ["pos", "-9", "neg", "neg"]})
    assert clean_clinical(raw)["er"].notna().all()
    assert clean_clinical(raw, missing_codes=("-9",))["er"].isna().tolist() == [False, True, False, False]


def test_clean_clinical_declared_numeric():
    raw = pd.DataFrame({"age": ["50", "61.5", "missing", "44"], "size": ["1", "2", "two", "3"]})
    out = clean_clinical(raw, numeric=["age"], categorical=["size"])
    assert out["age"].tolist()[:2] == [50.0, 61.5] and np.isnan(out["age"].iloc[2])
    with pytest.raises(idae.IdaeError, match=r"clinical column 'size' is declared numeric but holds \['two'\]"):
        clean_clinical(raw, numeric=["size"])


def test_clean_clinical_numeric_column_with_missing_code_from_csv(tmp_path):
    """An age column with a "missing" cell is text once read from CSV; after the code goes it is numeric."""
    raw = pd.DataFrame({"age": ["63", "48", "missing", "51", "70"], "er": ["pos", "neg", "pos", "neg", "pos"]})
    raw.to_csv(tmp_path / "clinical.csv")
    out = clean_clinical(read_table(tmp_path / "clinical.csv"))
    assert out["age"].dtype == np.float64
    assert out["age"].isna().sum() == 1


def test_clean_clinical_errors():
    raw = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": ["x1", "y", "z"], "c": [1.0, np.inf, 3.0]})
    with pytest.raises(idae.IdaeError, match=r"clinical column 'zzz' named as categorical/numeric is not in the table"):
        clean_clinical(raw, categorical=["zzz"])
    with pytest.raises(idae.IdaeError, match=r"clinical columns \['a'\] are named both categorical and numeric"):
        clean_clinical(raw, categorical=["a"], numeric=["a"])
    with pytest.raises(idae.IdaeError, match=r"clinical column 'c' holds non-finite values"):
        clean_clinical(raw)
    with pytest.raises(idae.IdaeError, match=r"clinical column 'k' has a single level \['5'\]"):
        clean_clinical(pd.DataFrame({"k": [5, 5, 5]}))


# --------------------------------------------------------------------------------------------------
# preprocessing


def test_most_variable_genes():
    rng = np.random.default_rng(1)
    sd = {"a": 1.0, "b": 5.0, "c": 0.1, "d": 3.0, "e": 10.0, "f": 0.5}
    genomic = pd.DataFrame({g: rng.normal(0, s, 200) for g, s in sd.items()})
    assert most_variable_genes(genomic, 3) == ["b", "d", "e"]  # the three largest, in column order
    assert most_variable_genes(genomic, 1) == ["e"]
    assert most_variable_genes(genomic, None) == list(sd)
    assert most_variable_genes(genomic, 100) == list(sd)
    for bad in (0, -3):
        with pytest.raises(idae.IdaeError, match=r"n_genes must be a positive integer or None"):
            most_variable_genes(genomic, bad)


def test_log_transform_applies_to_counts_only():
    counts = pd.DataFrame({"g1": [0.0, 10.0, 500.0], "g2": [3.0, 1000.0, 7.0]})
    logged, applied = log_transform(counts)
    assert applied and looks_like_counts(counts)
    pd.testing.assert_frame_equal(logged, np.log2(counts + 1.0))
    log_ratios = pd.DataFrame({"g1": [-1.2, 0.3, 2.5], "g2": [0.1, -0.4, 1.9]})
    for table in (log_ratios, counts / 3.7, counts.clip(upper=100)):  # negative, fractional, small range
        out, applied = log_transform(table)
        assert not applied and not looks_like_counts(table)
        pd.testing.assert_frame_equal(out, table)
    out, applied = log_transform(counts, "no")
    assert not applied and out is counts
    out, applied = log_transform(counts.clip(upper=50), "yes")
    assert applied and out.iloc[0, 0] == 0.0 and out.iloc[1, 0] == pytest.approx(np.log2(11.0))
    with pytest.raises(idae.IdaeError, match=r"log_transform='yes' but the genomic table holds negative values"):
        log_transform(log_ratios, "yes")
    with pytest.raises(idae.IdaeError, match=r"log_transform must be 'auto', 'yes' or 'no', got 'maybe'"):
        log_transform(counts, "maybe")


def test_standardizer_round_trip_and_constant_gene():
    genomic = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "b": [5.0, 5.0, 5.0, 5.0]})
    scaler = Standardizer.fit(genomic)
    z = scaler.transform(genomic)
    np.testing.assert_allclose(z["a"].mean(), 0, atol=1e-12)
    np.testing.assert_allclose(z["a"].std(ddof=0), 1)
    assert scaler.scale["b"] == 1.0 and (z["b"] == 0).all()
    pd.testing.assert_frame_equal(scaler.inverse(z), genomic)
    again = Standardizer.from_dict(json.loads(json.dumps(scaler.to_dict())))
    pd.testing.assert_frame_equal(again.transform(genomic), z)


def test_standardizer_gene_constant_on_train_is_not_blown_up():
    """A gene equal to 0.1 on every training patient (np.std ~1e-17) gets scale 1, not 1e-17: it maps to 0
    on the training split (up to rounding) and a held-out value of 0.2 maps to 0.1, not to 7e15."""
    train = pd.DataFrame({"flat": [0.1] * 7, "b": np.arange(7.0)})
    scaler = Standardizer.fit(train)
    assert scaler.scale["flat"] == 1.0
    np.testing.assert_allclose(scaler.transform(train)["flat"], 0, atol=1e-12)
    held_out = scaler.transform(pd.DataFrame({"flat": [0.2], "b": [1.0]}))
    assert held_out.loc[0, "flat"] == pytest.approx(0.1)


# --------------------------------------------------------------------------------------------------
# stratified_split


def strata_table(n: int, shares: dict[str, int], seed: int = 0) -> pd.DataFrame:
    levels = np.repeat(list(shares), list(shares.values()))[:n]
    order = np.random.default_rng(seed).permutation(n)
    return pd.DataFrame({"er": pd.Categorical(levels[order])}, index=[f"p{i}" for i in range(n)])


def test_stratified_split_is_seeded_exact_and_covering():
    clinical = strata_table(100, {"pos": 62, "neg": 38})
    a = stratified_split(clinical, "er", 0.15, 0.15, seed=4)
    b = stratified_split(clinical, "er", 0.15, 0.15, seed=4)
    c = stratified_split(clinical, "er", 0.15, 0.15, seed=5)
    pd.testing.assert_series_equal(a, b)
    assert not a.equals(c)
    assert a.index.equals(clinical.index) and a.name == "split"
    assert a.value_counts().to_dict() == {"train": 70, "validation": 15, "test": 15}


def test_stratified_split_keeps_missing_stratum_and_no_stratify():
    clinical = strata_table(60, {"pos": 36, "neg": 20, "": 4})
    clinical["er"] = clinical["er"].cat.remove_categories([""])
    split = stratified_split(clinical, "er", 0.2, 0.2, seed=0)
    assert len(split) == 60 and split.notna().all()
    missing = split[clinical["er"].isna()]
    assert len(missing) == 4
    assert missing.value_counts().to_dict() == {"train": 2, "validation": 1, "test": 1}
    plain = stratified_split(clinical, None, 0.2, 0.0, seed=0)
    assert plain.value_counts().to_dict() == {"train": 48, "validation": 12}


@PROPERTY
@given(
    n=st.integers(20, 200),
    pos_share=st.floats(0.1, 0.9),
    val=st.sampled_from([0.0, 0.1, 0.15, 0.2]),
    test=st.sampled_from([0.1, 0.15, 0.25]),
    seed=st.integers(0, 2**16),
)
def test_stratified_split_property(n, pos_share, val, test, seed):
    n_pos = round(n * pos_share)
    clinical = strata_table(n, {"pos": n_pos, "neg": n - n_pos}, seed)
    try:
        split = stratified_split(clinical, "er", val, test, seed)
    except idae.IdaeError as err:
        assert "too few for this split" in str(err)
        assert round(n * val) == 1 or round(n * test) < 2 or n - round(n * val) - round(n * test) < 8
        return
    pd.testing.assert_series_equal(split, stratified_split(clinical, "er", val, test, seed))
    assert split.index.equals(clinical.index)
    assert set(split) <= {"train", "validation", "test"}
    counts = split.value_counts()
    assert counts.get("validation", 0) == round(n * val)
    assert counts.get("test", 0) == round(n * test)
    assert counts.sum() == n
    for part, frac in (("validation", val), ("test", test)):
        in_part = clinical["er"][split == part]
        for level in ("pos", "neg"):
            share = (clinical["er"] == level).mean()
            assert abs((in_part == level).sum() - share * round(n * frac)) <= 2, (part, level)


def test_stratified_split_errors():
    clinical = strata_table(40, {"pos": 20, "neg": 20})
    with pytest.raises(idae.IdaeError, match=r"11 samples are too few for this split"):
        stratified_split(clinical.iloc[:11], "er")
    with pytest.raises(idae.IdaeError, match=r"stratify column 'ER' is not a clinical column"):
        stratified_split(clinical, "ER")
    with pytest.raises(idae.IdaeError, match=r"test_fraction must be in \[0, 1\), got 1.5"):
        stratified_split(clinical, "er", test_fraction=1.5)
    with pytest.raises(idae.IdaeError, match=r"must leave at least 10% of patients for training"):
        stratified_split(clinical, "er", 0.5, 0.45)


# --------------------------------------------------------------------------------------------------
# check_params / check_notebook_params


DECLARED = {"notebook.ipynb": {"seed": 0, "val_fraction": 0.15, "stratify": "er", "genes": ["ESR1"]}}


def test_check_params_accepts_known_names():
    check_params({"seed": 3, "val_fraction": 1, "stratify": "", "genes": []}, DECLARED)  # int is fine for float
    check_params({}, DECLARED)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"sed": 3}, r"unknown parameter 'sed'.*declare: \['genes', 'seed', 'stratify', 'val_fraction'\]"),
        ({"seed": "3"}, r"parameter 'seed' must look like its default 0: got '3'"),
        ({"seed": True}, r"parameter 'seed' must look like its default 0: got True"),
        ({"stratify": 1}, r"parameter 'stratify' must look like its default 'er'"),
        ({"genes": ["ESR1", 2]}, r"parameter 'genes' must look like its default \['ESR1'\]"),
        ({"val_fraction": "0.1"}, r"write floats with a dot"),
        ({"x": 1, "y": 2}, r"unknown parameter 'x'; unknown parameter 'y'"),
    ],
)
def test_check_params_rejects(params, message):
    with pytest.raises(idae.IdaeError, match=message):
        check_params(params, DECLARED)


def test_check_notebook_params_reads_the_declaration_from_the_notebook():
    """A notebook checks its globals against its own committed parameters cell: plain values count, modules,
    functions and IPython's names do not, and an undeclared name is refused."""
    import math

    namespace = {"latent_dim": 4, "out_dir": "..", "math": math, "helper": len, "In": [], "Out": {}, "_": None,
                 "_private": 5}  # fmt: skip
    assert check_notebook_params(namespace, "02_model.ipynb") == {"latent_dim": 4, "out_dir": ".."}
    with pytest.raises(idae.IdaeError, match=r"unknown parameter 'n_epochs'"):
        check_notebook_params({**namespace, "n_epochs": 10}, "02_model.ipynb")
    with pytest.raises(idae.IdaeError, match=r"parameter 'latent_dim' must look like its default 6: got 4.5"):
        check_notebook_params({**namespace, "latent_dim": 4.5}, "02_model.ipynb")


def test_check_notebook_params_refuses_a_flip_without_two_levels():
    namespace = {k: v for k, v in declared_parameters(NOTEBOOKS / "05_inversion.ipynb").items()}
    with pytest.raises(idae.IdaeError, match=r"flips: 'er' needs \[from, to\]"):
        check_notebook_params({**namespace, "flips": {"er": ["neg"]}}, "05_inversion.ipynb")
    with pytest.raises(idae.IdaeError, match=r"flips is empty"):
        check_notebook_params({**namespace, "flips": {}}, "05_inversion.ipynb")


# --------------------------------------------------------------------------------------------------
# ClinicalDesign


@pytest.fixture
def design_data():
    clinical = pd.DataFrame(
        {
            "er": pd.Categorical(["pos", "neg", "pos", "pos", None, "neg", "pos", "pos"]),
            "age": [40.0, 50.0, 60.0, np.nan, 70.0, 45.0, 55.0, 65.0],
        },
        index=[f"p{i}" for i in range(8)],
    )
    return clinical, ClinicalDesign.fit(clinical)


def test_clinical_design_layout_and_encoding(design_data):
    clinical, design = design_data
    assert design.feature_names() == ["er=neg", "er=pos", "age", "er:missing", "age:missing"]
    assert design.width == 5
    assert design.frequencies["er"] == pytest.approx([2 / 7, 5 / 7])
    x = design.transform(clinical)
    assert x.shape == (8, 5) and x.dtype == np.float32
    np.testing.assert_array_equal(x[0, :2], [0, 1])
    np.testing.assert_array_equal(x[1, :2], [1, 0])
    observed = clinical["age"].notna().to_numpy()
    ages = clinical["age"].dropna()
    np.testing.assert_allclose(x[observed, 2], (ages - ages.mean()) / ages.std(ddof=0), rtol=1e-6)
    np.testing.assert_array_equal(x[:, 3], clinical["er"].isna())
    np.testing.assert_array_equal(x[:, 4], clinical["age"].isna())


def test_clinical_design_missing_cells_expectation_vs_sample(design_data):
    clinical, design = design_data
    x = design.transform(clinical)
    np.testing.assert_allclose(x[4, :2], [2 / 7, 5 / 7], rtol=1e-6)  # level frequencies
    assert x[3, 2] == 0.0  # the mean, standardised
    rows = clinical.iloc[[3, 4]]
    draws = [design.transform(rows, rng=np.random.default_rng(s)) for s in range(40)]
    prior = np.asarray(design.observed["age"], dtype=np.float32)
    seen_levels = set()
    for d in draws:
        assert d[1, :2].sum() == 1 and set(d[1, :2]) == {0.0, 1.0}  # a one-hot draw, not the frequencies
        seen_levels.add(int(d[1, 1]))
        assert np.isclose(prior, d[0, 2]).any()  # an observed value, not the mean
        np.testing.assert_array_equal(d[:, 3:], x[[3, 4], 3:])  # the missing masks do not change
    assert seen_levels == {0, 1}
    np.testing.assert_array_equal(
        design.transform(rows, rng=np.random.default_rng(7)), design.transform(rows, rng=np.random.default_rng(7))
    )
    # observed cells are never resampled
    np.testing.assert_array_equal(design.transform(clinical.iloc[:3], rng=np.random.default_rng(0)), x[:3])


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.sampled_from(["neg", "pos", "low", None]), min_size=6, max_size=30),
    st.sampled_from(["object", "str", "category"]),
)
def test_text_columns_are_categorical_without_align(cells, dtype):
    """A text column fits as the categorical it names, whatever its dtype: the same levels (sorted, so the
    first is the reference), frequencies and design rows."""
    assume(len({c for c in cells if c is not None}) >= 2)
    age = np.linspace(40, 70, len(cells))
    text = pd.Series(cells, dtype="object")
    column = text.astype("category") if dtype == "category" else text.astype(dtype) if dtype == "str" else text
    design = ClinicalDesign.fit(pd.DataFrame({"er": column, "age": age}))
    reference = ClinicalDesign.fit(
        pd.DataFrame({"er": pd.Categorical(text, categories=sorted({c for c in cells if c is not None})), "age": age})
    )
    assert design.levels == reference.levels
    assert design.frequencies["er"] == pytest.approx(reference.frequencies["er"])
    table = pd.DataFrame({"er": text, "age": age})
    np.testing.assert_array_equal(design.transform(table), reference.transform(table))


def test_boolean_columns_are_categorical(design_data):
    clinical, _ = design_data
    flags = clinical.assign(treated=[True, False, True, True, False, False, True, True])
    design = ClinicalDesign.fit(flags)
    assert design.levels["treated"] == ["False", "True"]
    rows = design.transform(flags)
    names = design.feature_names()
    np.testing.assert_array_equal(rows[:, names.index("treated=True")], flags["treated"].to_numpy(dtype=float))
    with_missing = flags.assign(treated=pd.array([True, None, False, True, False, True, True, False], dtype="boolean"))
    assert ClinicalDesign.fit(with_missing).frequencies["treated"] == pytest.approx([3 / 7, 4 / 7])


def test_clinical_design_errors_and_round_trip(design_data):
    clinical, design = design_data
    new = pd.DataFrame({"er": ["pos", "unsure"], "age": [50.0, 60.0]})
    with pytest.raises(idae.IdaeError, match=r"clinical column 'er': unseen levels \['unsure'\]; known levels"):
        design.transform(new)
    with pytest.raises(idae.IdaeError, match=r"lacks the columns the model was fitted on: \['age'\]"):
        design.transform(clinical[["er"]])
    with pytest.raises(idae.IdaeError, match=r"clinical column 'age' holds non-finite values"):
        design.transform(clinical.assign(age=np.inf))
    with pytest.raises(idae.IdaeError, match=r"clinical column 'note' has a single observed level \['text'\]"):
        ClinicalDesign.fit(clinical.assign(note="text"))
    with pytest.raises(idae.IdaeError, match=r"clinical column 'er' holds \['missing', 'na'\], which read as missing"):
        ClinicalDesign.fit(clinical.assign(er=["pos", "neg", "na", "pos", "missing", "neg", "pos", "pos"]))
    with pytest.raises(idae.IdaeError, match=r"clinical column 'er' holds list values, e.g. \[1, 2\] for patient 'p0'"):
        ClinicalDesign.fit(clinical.assign(er=[[1, 2]] + ["pos"] * 7))
    with pytest.raises(idae.IdaeError, match=r"clinical column 'er' has a single observed level \['pos'\]"):
        ClinicalDesign.fit(clinical.assign(er=pd.Categorical(["pos"] * 8, categories=["neg", "pos"])))
    with pytest.raises(idae.IdaeError, match=r"clinical column 'age' is entirely missing"):
        ClinicalDesign.fit(clinical.assign(age=np.nan))
    again = ClinicalDesign.from_dict(json.loads(json.dumps(design.to_dict())))
    np.testing.assert_array_equal(again.transform(clinical), design.transform(clinical))


# --------------------------------------------------------------------------------------------------
# prepare and the processed-data round trip


def test_prepare_fits_selection_and_scaling_on_train_only():
    clinical, genomic = make_tables(60, 20, seed=3)
    aligned = idae.align(clinical, genomic)
    split = stratified_split(aligned.clinical, "er", 0.15, 0.15, seed=2)
    held_out = split != "train"
    # a gene that varies only on held-out patients must not be selected; shift held-out rows of G0
    genomic["held_out_only"] = 200.0
    genomic.loc[held_out[held_out].index, "held_out_only"] = np.arange(held_out.sum()) * 1000.0
    genomic.loc[held_out[held_out].index, "G0"] += 5000.0
    aligned = idae.align(clinical, genomic)
    prepared = prepare(aligned, n_genes=10, stratify="er", seed=2)
    assert isinstance(prepared, Prepared)
    pd.testing.assert_series_equal(prepared.split, split)
    assert prepared.info["log_transformed"] is True
    logged = np.log2(aligned.genomic + 1.0)
    train = logged.loc[split == "train"]
    expected_genes = list(train.columns[np.sort(np.argsort(-train.var().to_numpy(), kind="stable")[:10])])
    assert list(prepared.genomic.columns) == expected_genes
    assert "held_out_only" not in prepared.genomic.columns
    assert prepared.info["n_genes_aligned"] == 21 and prepared.info["n_genes_selected"] == 10
    scaler = prepared.info["standardizer"]
    assert scaler["genes"] == expected_genes
    np.testing.assert_allclose(scaler["mean"], train[expected_genes].mean())
    np.testing.assert_allclose(scaler["scale"], train[expected_genes].std(ddof=0))
    z_train = prepared.genomic.loc[split == "train"]
    np.testing.assert_allclose(z_train.mean(), 0, atol=1e-9)
    np.testing.assert_allclose(z_train.std(ddof=0), 1)
    all_mean = logged[expected_genes].mean()
    assert not np.allclose(scaler["mean"], all_mean)  # fitted on train, not on all patients
    if "G0" in expected_genes:
        assert prepared.genomic.loc[held_out, "G0"].mean() > 3
    pd.testing.assert_frame_equal(prepared.clinical, aligned.clinical)


def test_prepare_too_few_samples():
    clinical, genomic = make_tables(10, 5)
    aligned = idae.align(clinical, genomic)
    with pytest.raises(idae.IdaeError, match=r"10 samples are too few for this split"):
        prepare(aligned)


def test_write_and_read_processed_round_trip(tmp_path):
    clinical, genomic = make_tables(40, 12)
    aligned = idae.align(clinical, genomic)
    prepared = prepare(aligned, n_genes=8, seed=1)
    counts = {"patients": 40, "genes": 8, "split": prepared.split.value_counts().to_dict()}
    folder = write_processed(prepared, tmp_path / "processed", {"counts": counts, "report": aligned.report.to_dict()})
    assert folder == tmp_path / "processed"
    assert sorted(p.name for p in folder.iterdir()) == [
        "clinical.parquet",
        "genomic.parquet",
        "manifest.json",
        "split.csv",
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["processed"]  # no temporary folder left behind
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["counts"] == {"patients": 40, "genes": 8, "split": counts["split"]}
    assert sum(manifest["counts"]["split"].values()) == 40
    assert manifest["report"]["matched"] == aligned.report.matched
    assert set(manifest["files_sha256"]) == {"clinical.parquet", "genomic.parquet", "split.csv"}
    for name, digest in manifest["files_sha256"].items():
        assert digest == hashlib.sha256((folder / name).read_bytes()).hexdigest()
    back = read_processed(folder)
    pd.testing.assert_frame_equal(back.clinical, prepared.clinical)
    pd.testing.assert_frame_equal(back.genomic, prepared.genomic)
    pd.testing.assert_series_equal(back.split, prepared.split)
    assert back.info == manifest
    # writing again replaces the folder
    smaller = Prepared(prepared.clinical.iloc[:30], prepared.genomic.iloc[:30], prepared.split.iloc[:30], {})
    write_processed(smaller, folder, {"counts": {"patients": 30}})
    assert len(read_processed(folder).clinical) == 30
    assert [p.name for p in tmp_path.iterdir()] == ["processed"]


def test_a_write_killed_while_swapping_keeps_the_processed_data(tmp_path):
    """The writing process dies (no clean-up runs) right after the old folder is renamed aside and before the new
    one is renamed in: the old data are still read, and the next write replaces them."""
    clinical, genomic = make_tables(40, 12)
    prepared = prepare(idae.align(clinical, genomic), n_genes=8, seed=1)
    folder = write_processed(prepared, tmp_path / "processed", {"run": "first"})
    script = (
        "import os, pickle, sys\n"
        "from idae.data import write_processed\n"
        "prepared = pickle.load(open(sys.argv[1], 'rb'))\n"
        "replace = os.replace\n"
        "def dying(src, dst):\n"
        "    if os.path.basename(str(src)).startswith('.processed.'):\n"
        "        os._exit(9)  # the swap-in: die without clean-up, as a kill would\n"
        "    replace(src, dst)\n"
        "os.replace = dying\n"
        "write_processed(prepared, sys.argv[2], {'run': 'killed'})\n"
    )  # fmt: skip
    smaller = Prepared(prepared.clinical.iloc[:30], prepared.genomic.iloc[:30], prepared.split.iloc[:30], {})
    pickle.dump(smaller, open(tmp_path / "prepared.pkl", "wb"))
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "prepared.pkl"), str(folder)])
    assert done.returncode == 9
    assert not folder.exists() and (tmp_path / "processed.previous").is_dir()  # killed between the two renames
    back = read_processed(folder)
    assert back.info["run"] == "first" and len(back.clinical) == 40
    write_processed(smaller, folder, {"run": "second"})
    assert read_processed(folder).info["run"] == "second"
    assert not (tmp_path / "processed.previous").exists()


def test_a_failed_swap_puts_the_old_folder_back(tmp_path, monkeypatch):
    clinical, genomic = make_tables(40, 12)
    prepared = prepare(idae.align(clinical, genomic), n_genes=8, seed=1)
    folder = write_processed(prepared, tmp_path / "processed", {"run": "first"})
    replace = os.replace

    def failing(src, dst):
        if Path(src).name.startswith(".processed."):
            raise OSError("disk full")
        replace(src, dst)

    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(OSError, match="disk full"):
        write_processed(prepared, folder, {"run": "second"})
    monkeypatch.undo()
    assert read_processed(folder).info["run"] == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["processed"]


def test_read_processed_keeps_leading_zero_ids(tmp_path):
    clinical, genomic = make_tables(40, 6, prefix="")
    ids = [f"{i:03d}" for i in range(40)]
    clinical.index = pd.Index(ids, name="patient")
    genomic.index = pd.Index(ids, name="patient")
    prepared = prepare(idae.align(clinical, genomic), n_genes=None)
    back = read_processed(write_processed(prepared, tmp_path / "processed", {}))
    assert list(back.split.index) == ids == list(back.clinical.index)
    pd.testing.assert_series_equal(back.split, prepared.split)


def test_read_processed_names_absent_files(tmp_path):
    (tmp_path / "split.csv").write_text("patient,split\n")
    with pytest.raises(idae.IdaeError, match=r"lacks \['clinical.parquet', 'genomic.parquet', 'manifest.json'\]"):
        read_processed(tmp_path)


def test_clean_clinical_keeps_a_categorical_with_number_levels_categorical():
    """Grade stored as a pandas category with levels "1", "2", "3" is a category, not the numbers 1-3."""
    raw = pd.DataFrame({"grade": pd.Categorical(["1", "3", "2", "3", "1"]), "er": ["pos", "neg", "pos", "neg", "pos"]})
    out = clean_clinical(raw)
    assert isinstance(out["grade"].dtype, pd.CategoricalDtype)
    assert list(out["grade"].cat.categories) == ["1", "2", "3"]
