"""Tests for the synthetic ground-truth generators (idae.synthetic)."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from idae.errors import IdaeError
from idae.segments import make_segments
from idae.synthetic import FEATURES, NEG_SLOPE, make_cohort


@pytest.fixture(scope="module")
def cohort():
    return make_cohort(n_samples=300, n_genes=40, latent_dim=4, depth=3, noise=0.1, missing=0.2, seed=1)


@pytest.fixture(scope="module")
def clean_cohort():
    return make_cohort(n_samples=200, n_genes=30, latent_dim=4, depth=3, noise=0.0, missing=0.0, seed=2)


def _er_flipped(cohort) -> pd.DataFrame:
    er = cohort.clinical_true["er"].astype(str)
    return pd.DataFrame({"er": np.where(er == "pos", "neg", "pos")}, index=cohort.clinical_true.index)


# --------------------------------------------------------------------------------------------------
# make_cohort: tables


def test_default_cohort_resembles_a_real_one():
    c = make_cohort()
    assert c.clinical.shape == (1000, 4) and c.genomic.shape == (1000, 500) and c.sources.shape == (1000, 6)
    assert c.genomic.columns[0] == "G0000" and c.genomic.index[-1] == "P0999"
    er_pos = (c.clinical_true["er"] == "pos").mean()
    assert 0.6 < er_pos < 0.8
    assert abs(c.clinical_true["age"].mean() - 58) < 2 and abs(c.clinical_true["age"].std() - 12) < 2
    grade3 = pd.crosstab(c.clinical_true["er"], c.clinical_true["grade"], normalize="index")["3"]
    assert grade3["neg"] > grade3["pos"] + 0.2  # ER- tumours tend to be high grade
    assert ((0.25 < c.explained) & (c.explained < 0.65)).all()  # substantial but not total


def test_shapes_index_and_dtypes(cohort):
    n, p, d = 300, 40, 4
    assert cohort.clinical.shape == cohort.clinical_true.shape == (n, 4)
    assert cohort.genomic.shape == (n, p) and cohort.sources.shape == cohort.exogenous.shape == (n, d)
    for table in (cohort.clinical_true, cohort.genomic, cohort.sources, cohort.exogenous):
        assert table.index.equals(cohort.clinical.index)
    assert list(cohort.sources.columns) == ["s0", "s1", "s2", "s3"]
    assert cohort.clinical.index[0] == "P0000" and cohort.genomic.columns[-1] == "G0039"
    for table in (cohort.clinical, cohort.clinical_true):
        for col, levels in (("er", ["neg", "pos"]), ("grade", ["1", "2", "3"]), ("node", ["neg", "pos"])):
            assert isinstance(table[col].dtype, pd.CategoricalDtype)
            assert list(table[col].cat.categories) == levels
        assert table["age"].dtype == float
    assert not cohort.clinical_true.isna().any().any()
    assert np.isfinite(cohort.genomic.to_numpy()).all()
    assert list(cohort.mean_effects.index) == list(FEATURES)


def test_missing_share_and_no_empty_rows(cohort):
    missing = cohort.clinical.isna()
    assert abs(missing.to_numpy().mean() - 0.2) < 0.01
    assert not missing.all(axis=1).any()
    assert (missing.mean() > 0.1).all()  # spread over all columns
    observed = cohort.clinical.astype(object).where(~missing)
    truth = cohort.clinical_true.astype(object).where(~missing)
    pd.testing.assert_frame_equal(observed, truth)


def test_reproducible_and_seed_dependent():
    a, b = (make_cohort(n_samples=50, n_genes=12, latent_dim=3, seed=7) for _ in range(2))
    for name in ("clinical", "clinical_true", "genomic", "sources", "exogenous"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))
    c = make_cohort(n_samples=50, n_genes=12, latent_dim=3, seed=8)
    assert not np.allclose(a.genomic.to_numpy(), c.genomic.to_numpy())
    assert not a.clinical_true.equals(c.clinical_true)


def test_every_source_has_varying_mean_and_variance(cohort):
    mean, sd = cohort.source_moments()
    assert (mean.std() > 0.1).all() and (np.log(sd).std() > 0.05).all()
    er_moves = (cohort.mean_effects.loc[["er_pos", "er_pos:grade3", "er_pos:age_z"]] != 0).any()
    assert er_moves.sum() >= 2  # the ER flip moves several sources
    # the sources really are mean + sd * eps
    np.testing.assert_allclose(cohort.sources, mean + sd * cohort.exogenous.to_numpy(), rtol=1e-12)


# --------------------------------------------------------------------------------------------------
# counterfactuals


def test_noop_counterfactual_is_exact(cohort):
    pd.testing.assert_frame_equal(cohort.counterfactual({}), cohort.genomic, check_exact=True)
    pd.testing.assert_frame_equal(cohort.counterfactual(cohort.clinical_true), cohort.genomic, check_exact=True)
    pd.testing.assert_frame_equal(cohort.counterfactual_sources({}), cohort.sources, check_exact=True)
    nan_only = pd.DataFrame({"age": np.nan}, index=cohort.genomic.index)
    pd.testing.assert_frame_equal(cohort.counterfactual(nan_only), cohort.genomic, check_exact=True)


def test_dict_change_only_moves_patients_whose_value_changes(cohort):
    cf = cohort.counterfactual({"er": "pos"})
    pos = (cohort.clinical_true["er"] == "pos").to_numpy()
    np.testing.assert_array_equal(cf.to_numpy()[pos], cohort.genomic.to_numpy()[pos])
    assert (np.abs(cf.to_numpy()[~pos] - cohort.genomic.to_numpy()[~pos]).max(axis=1) > 1e-6).all()
    pd.testing.assert_frame_equal(cohort.counterfactual({"grade": 3}), cohort.counterfactual({"grade": "3"}))


def test_er_flip_keeps_exogenous_and_gene_noise_and_flips_back(cohort):
    flip = _er_flipped(cohort)
    s_cf = cohort.counterfactual_sources(flip)
    x_cf = cohort.counterfactual(flip)
    new = cohort.clinical_true.assign(er=pd.Categorical(flip["er"], categories=["neg", "pos"]))
    mean_cf, sd_cf = cohort.source_moments(flip)
    # same exogenous noise eps under the new clinical state
    np.testing.assert_allclose((s_cf - mean_cf) / sd_cf, cohort.exogenous, atol=1e-10)
    assert new["grade"].equals(cohort.clinical_true["grade"])  # no propagation er -> grade
    # sources that depend on er move, the others stay put
    er_rows = ["er_pos", "er_pos:grade3", "er_pos:age_z"]
    depends = (cohort.mean_effects.loc[er_rows] != 0).any() | (cohort.logsd_effects.loc[er_rows] != 0).any()
    moved = (s_cf - cohort.sources).abs().max() > 1e-6
    assert depends.sum() >= 2 and moved.equals(depends)
    # same per-gene noise
    noise = cohort.genomic.to_numpy() - cohort.mix(cohort.sources)
    np.testing.assert_allclose(x_cf.to_numpy() - cohort.mix(s_cf), noise, atol=1e-9)
    # flip back from the counterfactual world: recover the factual sources and profiles
    mean, sd = cohort.source_moments()
    s_back = mean + sd * ((s_cf - mean_cf) / sd_cf).to_numpy()
    np.testing.assert_allclose(s_back, cohort.sources, atol=1e-10)
    np.testing.assert_allclose(cohort.mix(s_back) + noise, cohort.genomic, atol=1e-9)


def test_partial_dataframe_change_and_age(cohort):
    idx = cohort.genomic.index
    changes = pd.DataFrame({"age": [80.0, np.nan]}, index=idx[:2])
    cf = cohort.counterfactual(changes)
    assert np.abs(cf.iloc[0] - cohort.genomic.iloc[0]).max() > 1e-6
    np.testing.assert_array_equal(cf.iloc[1:].to_numpy(), cohort.genomic.iloc[1:].to_numpy())


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"tumour_size": 2.0}, "tumour_size"),
        ({"er": "positive"}, "er"),
        ({"grade": 4}, "grade"),
        ({"age": "old"}, "age"),
        ({"er": ["pos", "neg"]}, "er"),
        ("er=pos", "changes"),
    ],
)
def test_bad_counterfactual_changes(cohort, changes, match):
    with pytest.raises(IdaeError, match=match):
        cohort.counterfactual(changes)


def test_counterfactual_unknown_patient(cohort):
    with pytest.raises(IdaeError, match="unknown patients"):
        cohort.counterfactual(pd.DataFrame({"er": ["pos"]}, index=["nobody"]))


# --------------------------------------------------------------------------------------------------
# mixing


def test_depth_one_mixing_is_affine():
    c = make_cohort(n_samples=120, n_genes=25, latent_dim=3, depth=1, noise=0.0, missing=0.0, seed=3)
    design = np.column_stack([c.sources.to_numpy(), np.ones(len(c.sources))])
    coef, *_ = np.linalg.lstsq(design, c.genomic.to_numpy(), rcond=None)
    assert np.abs(design @ coef - c.genomic.to_numpy()).max() < 1e-9
    deep = make_cohort(n_samples=120, n_genes=25, latent_dim=3, depth=3, noise=0.0, missing=0.0, seed=3)
    coef, *_ = np.linalg.lstsq(design, deep.genomic.to_numpy(), rcond=None)
    assert np.abs(design @ coef - deep.genomic.to_numpy()).max() > 1e-2  # depth > 1 is not affine


def test_mixing_is_injective(clean_cohort):
    c, d = clean_cohort, 4
    np.testing.assert_allclose(c.mix(c.sources), c.genomic, atol=1e-10)  # noise=0: x = f(s)
    rng = np.random.default_rng(0)
    # Jacobian of f has full column rank at random points (finite differences; f is piecewise linear)
    for s in rng.normal(size=(5, d)) * 2:
        jac = np.column_stack([(c.mix((s + 1e-6 * e)[None]) - c.mix(s[None]))[0] / 1e-6 for e in np.eye(d)])
        sv = np.linalg.svd(jac, compute_uv=False)
        assert sv.min() > 1e-3 and np.linalg.matrix_rank(jac, tol=1e-6) == d
    # lower Lipschitz bound: |f(s) - f(s')| >= c |s - s'| with c = slope^(depth-1) * min singular values > 0
    bound = np.sqrt(30 / d) * 0.5 * (NEG_SLOPE * 0.5) ** 2
    a, b = rng.normal(size=(500, d)) * 2, rng.normal(size=(500, d)) * 2
    ratio = np.linalg.norm(c.mix(a) - c.mix(b), axis=1) / np.linalg.norm(a - b, axis=1)
    assert ratio.min() >= bound
    # the observed profiles are distinct whenever the sources are
    assert c.genomic.round(8).drop_duplicates().shape[0] == len(c.genomic)


# --------------------------------------------------------------------------------------------------
# bad parameters


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"n_samples": 0}, "n_samples"),
        ({"n_samples": 2.5}, "n_samples"),
        ({"n_genes": 3, "latent_dim": 4}, "n_genes"),
        ({"latent_dim": 0}, "latent_dim"),
        ({"depth": 0}, "depth"),
        ({"noise": -0.1}, "noise"),
        ({"noise": float("nan")}, "noise"),
        ({"missing": 1.0}, "missing"),
        ({"missing": -0.1}, "missing"),
        ({"missing": 0.9}, "missing"),
        ({"seed": -1}, "seed"),
        ({"seed": True}, "seed"),
    ],
)
def test_make_cohort_bad_parameters(kwargs, name):
    with pytest.raises(IdaeError, match=name):
        make_cohort(**{"n_samples": 10, "n_genes": 8, "latent_dim": 2, **kwargs})


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"n_segments": 1}, "n_segments"),
        ({"n_per_segment": 0}, "n_per_segment"),
        ({"n_sources": 0}, "n_sources"),
        ({"depth": 0}, "depth"),
        ({"noise": -1.0}, "noise"),
        ({"imca": "yes"}, "imca"),
        ({"seed": 1.5}, "seed"),
    ],
)
def test_make_segments_bad_parameters(kwargs, name):
    with pytest.raises(IdaeError, match=name):
        make_segments(**{"n_segments": 3, "n_per_segment": 5, **kwargs})


# --------------------------------------------------------------------------------------------------
# make_segments


def _within_segment_abs_corr(seg) -> float:
    d = seg.sources.shape[1]
    corrs = [
        np.abs(np.corrcoef(g.to_numpy().T)[np.triu_indices(d, 1)]).mean()
        for _, g in seg.sources.groupby(seg.clinical["segment"], observed=True)
    ]
    return float(np.mean(corrs))


def test_segments_tables():
    seg = make_segments(n_segments=12, n_per_segment=50, n_sources=3, depth=2, seed=0)
    assert seg.clinical.shape == (600, 1) and seg.genomic.shape == seg.sources.shape == (600, 3)
    assert seg.clinical.index.equals(seg.genomic.index) and seg.genomic.index.equals(seg.sources.index)
    assert isinstance(seg.clinical["segment"].dtype, pd.CategoricalDtype)
    assert list(seg.clinical["segment"].cat.categories)[:2] == ["seg00", "seg01"]
    assert (seg.clinical["segment"].value_counts() == 50).all()
    assert list(seg.genomic.columns) == ["x0", "x1", "x2"] and list(seg.sources.columns) == ["s0", "s1", "s2"]
    np.testing.assert_allclose(seg.mix(seg.sources), seg.genomic, atol=1e-10)
    again = make_segments(n_segments=12, n_per_segment=50, n_sources=3, depth=2, seed=0)
    pd.testing.assert_frame_equal(seg.genomic, again.genomic)
    other = make_segments(n_segments=12, n_per_segment=50, n_sources=3, depth=2, seed=1)
    assert not np.allclose(seg.genomic, other.genomic)
    noisy = make_segments(n_segments=12, n_per_segment=50, n_sources=3, depth=2, noise=0.1, seed=0)
    assert not np.allclose(noisy.genomic, seg.genomic) and noisy.sources.equals(seg.sources)


def test_segments_variance_is_modulated():
    seg = make_segments(n_segments=10, n_per_segment=400, n_sources=4, seed=0)
    var = seg.sources.groupby(seg.clinical["segment"], observed=True).var()
    assert (var.max() / var.min() > 4).all()
    np.testing.assert_allclose(np.sqrt(var), seg.scales, rtol=0.25)
    mean = seg.sources.groupby(seg.clinical["segment"], observed=True).mean()
    assert (mean.abs() < 3 * seg.scales / np.sqrt(400) + 1e-3).all().all()  # only the variance moves by default
    moving = make_segments(n_segments=10, n_per_segment=400, n_sources=4, vary_mean=True, seed=0)
    assert (moving.sources.groupby(moving.clinical["segment"], observed=True).mean().std() > 0.5).all()


def test_imca_sources_are_dependent_within_segments():
    kwargs = {"n_segments": 10, "n_per_segment": 500, "n_sources": 5, "depth": 2, "seed": 0}
    independent, dependent = make_segments(**kwargs), make_segments(imca=True, **kwargs)
    assert independent.base_covariance is None and dependent.base_covariance.shape == (5, 5)
    assert _within_segment_abs_corr(independent) < 0.06  # sampling noise only (~0.036 for n=500)
    assert _within_segment_abs_corr(dependent) > 0.15


def test_segments_depth_one_is_linear():
    seg = make_segments(n_segments=4, n_per_segment=30, n_sources=3, depth=1, seed=4)
    coef, *_ = np.linalg.lstsq(seg.sources.to_numpy(), seg.genomic.to_numpy(), rcond=None)
    assert np.abs(seg.sources.to_numpy() @ coef - seg.genomic.to_numpy()).max() < 1e-9
    assert np.linalg.cond(coef) <= 4 + 1e-9


# --------------------------------------------------------------------------------------------------
# properties over sizes and seeds


@settings(max_examples=20, deadline=None)
@given(
    n=st.integers(1, 30),
    d=st.integers(1, 4),
    extra_genes=st.integers(0, 8),
    depth=st.integers(1, 3),
    missing=st.sampled_from([0.0, 0.3, 0.75]),
    seed=st.integers(0, 2**16),
)
def test_cohort_properties(n, d, extra_genes, depth, missing, seed):
    c = make_cohort(n_samples=n, n_genes=d + extra_genes, latent_dim=d, depth=depth, missing=missing, seed=seed)
    assert c.genomic.shape == (n, d + extra_genes) and c.sources.shape == (n, d)
    assert np.isfinite(c.genomic.to_numpy()).all()
    assert not c.clinical.isna().all(axis=1).any()
    assert c.clinical.isna().to_numpy().sum() == round(missing * n * 4)
    pd.testing.assert_frame_equal(c.counterfactual({}), c.genomic, check_exact=True)
    flip = _er_flipped(c)
    np.testing.assert_allclose(
        c.counterfactual(flip).to_numpy() - c.mix(c.counterfactual_sources(flip)),
        c.genomic.to_numpy() - c.mix(c.sources),
        atol=1e-8,
    )
    # the generator's parameters depend on the seed only, not on the cohort size
    bigger = make_cohort(n_samples=n + 3, n_genes=d + extra_genes, latent_dim=d, depth=depth, seed=seed)
    pd.testing.assert_frame_equal(bigger.mean_effects, c.mean_effects)
