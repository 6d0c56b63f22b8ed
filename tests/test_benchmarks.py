"""idae.benchmarks: the splits, the one scoring path, and the design sampler it trains with."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from idae import benchmarks
from idae.data import Prepared
from idae.design import ClinicalDesign
from idae.errors import IdaeError


@pytest.fixture(scope="module")
def small_split():
    return benchmarks.cohort_split(0, n_train=200, n_test=100, n_genes=40, latent_dim=3)


def test_cohort_split_holds_training_and_held_out_patients(small_split):
    s = small_split
    assert len(s.genomic_train) == 200 and len(s.genomic_test) == 100 and s.sources_test.shape == (100, 3)
    assert s.latent_dim == 3 and not set(s.genomic_train.index) & set(s.genomic_test.index)
    assert s.clinical_train.index.equals(s.genomic_train.index)


def test_segments_split_holds_out_what_segments_held_out_says():
    s = benchmarks.segments_split(0, depth=2, n_per_segment=37)
    n = len(s.genomic_train) + len(s.genomic_test)
    assert len(s.genomic_test) == benchmarks.segments_held_out(n) == len(s.sources_test)
    assert not set(s.genomic_train.index) & set(s.genomic_test.index)


def test_subsample_keeps_a_seeded_share_of_the_training_patients(small_split):
    a, b = small_split.subsample(0.8, seed=1), small_split.subsample(0.8, seed=1)
    assert len(a.genomic_train) == 160 and a.genomic_train.index.equals(b.genomic_train.index)
    assert a.clinical_train.index.equals(a.genomic_train.index) and a.genomic_test is small_split.genomic_test
    assert not a.genomic_train.index.equals(small_split.subsample(0.8, seed=2).genomic_train.index)


def test_score_method_scores_a_baseline_raw_and_with_the_stage(small_split):
    row = benchmarks.score_method("pca", small_split, 0)
    assert set(row) >= {"strong MCC", "weak MCC", "strong MCC + stage", "seconds"}
    assert 0 <= row["strong MCC"] <= row["weak MCC"] <= 1 and 0 <= row["strong MCC + stage"] <= 1
    ica = benchmarks.score_method("ica", small_split, 0, max_iter=10_000)
    assert isinstance(ica["converged"], bool)


def test_score_method_scores_idae_with_its_own_stage(small_split):
    row = benchmarks.score_method("idae", small_split, 0, max_epochs=3, encoder_hidden=(8,), decoder_hidden=(8,))
    assert "strong MCC + stage" not in row and row["epochs"] == 3 and isinstance(row["condition met"], bool)
    raw = benchmarks.score_method("idae", small_split, 0, max_epochs=3, linear_stage=False, encoder_hidden=(8,),
                                  decoder_hidden=(8,))  # fmt: skip
    assert "strong MCC + stage" in raw


def test_unknown_method_and_missing_latent_dim_are_refused(small_split):
    with pytest.raises(IdaeError, match="method must be 'idae' or one of"):
        benchmarks.score_method("umap", small_split, 0)
    with pytest.raises(IdaeError, match="needs its latent_dim"):
        benchmarks.Split("real", small_split.genomic_train, small_split.clinical_train, small_split.genomic_test)


def test_every_variant_names_a_method_and_what_it_changes():
    for name, (method, options, changes) in benchmarks.VARIANTS.items():
        assert method in ("idae", "pca", "ica", "dae", "cebra") and isinstance(options, dict) and changes, name
    assert set(benchmarks.SEGMENT_VARIANTS) <= set(benchmarks.VARIANTS)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(5, 40), share=st.floats(0.0, 0.9), seed=st.integers(0, 1000))
def test_design_sampler_draws_what_transform_draws(n, share, seed):
    """The fast per-epoch draw equals `transform(clinical, rng)` from the same generator state."""
    rng = np.random.default_rng(seed)
    clinical = pd.DataFrame({
        "er": pd.Categorical(rng.choice(["neg", "pos"], n)), "grade": pd.Categorical(rng.choice(["1", "2", "3"], n)),
        "age": rng.normal(55, 10, n)}, index=[f"p{i}" for i in range(n)])  # fmt: skip
    for col in clinical:
        clinical[col] = clinical[col].mask(rng.random(n) < share)
    keep = clinical.notna().any(axis=0)
    clinical = clinical.loc[:, keep]
    if clinical.empty or any(clinical[c].nunique() < 2 for c in clinical.columns if clinical[c].dtype == "category"):
        return
    design = ClinicalDesign.fit(clinical)
    draw = design.sampler(clinical, np.random.default_rng(seed + 1))
    reference = np.random.default_rng(seed + 1)
    for _ in range(2):
        np.testing.assert_array_equal(draw(), design.transform(clinical, reference))


def test_processed_split_fits_on_training_and_scores_every_other_patient(small_split):
    genomic = pd.concat([small_split.genomic_train, small_split.genomic_test])
    clinical = pd.concat([small_split.clinical_train, small_split.clinical_train.iloc[:100].set_axis(
        small_split.genomic_test.index)])  # fmt: skip
    split = pd.Series(["train"] * 200 + ["validation"] * 40 + ["test"] * 60, index=genomic.index)
    real = benchmarks.processed_split(Prepared(clinical, genomic, split, {}), latent_dim=3)
    assert real.genomic_train.index.equals(genomic.index[:200]) and real.genomic_test.index.equals(genomic.index[200:])
    assert real.validation[0].index.equals(genomic.index[200:240]) and real.sources_test is None


def test_stability_scores_fits_against_each_other(small_split):
    no_truth = dataclasses.replace(small_split, sources_test=None)
    out = benchmarks.stability("pca", no_truth, seeds=2, resamples=3)
    assert set(out) == {"across seeds", "across resampled training sets", "seconds per fit"}
    assert 0 < out["across resampled training sets"] <= 1 and 0 < out["across seeds"] <= 1 + 1e-9
    assert set(benchmarks.REAL_VARIANTS) <= set(benchmarks.VARIANTS)


def test_stability_with_true_sources_scores_each_protocol_against_them(small_split):
    out = benchmarks.stability("pca", small_split, seeds=2, resamples=3)
    for protocol in ("across seeds", "across resampled training sets"):
        low, mid, high = (out[f"truth, {protocol}: {k}"] for k in ("lowest", "median", "highest"))
        assert 0 < low <= mid <= high <= 1
    # PCA is deterministic: every seed fits the same codes, and the stage's seed alone can move them
    one = benchmarks.score_method("pca", small_split, 0)["strong MCC + stage"]
    assert out["truth, across seeds: lowest"] <= one <= out["truth, across seeds: highest"]
    resampled = [benchmarks.score_method("pca", small_split.subsample(0.8, 100 + r), 0)["strong MCC + stage"]
                 for r in range(3)]
    assert out["truth, across resampled training sets: median"] == pytest.approx(np.median(resampled))


def test_stability_of_idae_reports_its_held_out_objective_and_the_condition(small_split):
    held = small_split.genomic_test.iloc[:40]
    with_validation = dataclasses.replace(
        small_split, validation=(held, small_split.clinical_train.iloc[:40].set_axis(held.index)))
    out = benchmarks.stability("idae", with_validation, seeds=2, resamples=2, max_epochs=3, encoder_hidden=(8,),
                               decoder_hidden=(8,))  # fmt: skip
    assert np.isfinite(out["validation objective"]) and isinstance(out["condition met"], bool)
    assert "validation objective" not in benchmarks.stability("pca", small_split, seeds=2, resamples=2)
