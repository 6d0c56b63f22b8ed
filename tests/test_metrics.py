"""idae.metrics on known cases: identified copies score 1, unrelated noise scores near 0."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from idae.errors import IdaeError
from idae.metrics import (
    NEAR_RANK_DEFICIENT,
    chance_mcc,
    condition_check,
    correlation_matrix,
    cross_seed_mcc,
    mcc,
    off_diagonal,
    weak_mcc,
)


def sources(n=2000, d=5, seed=0):
    return np.random.default_rng(seed).laplace(size=(n, d))


@settings(max_examples=25, deadline=None)
@given(d=st.integers(1, 8), seed=st.integers(0, 10_000))
def test_permuted_rescaled_copy_scores_one(d, seed):
    rng = np.random.default_rng(seed)
    s = rng.normal(size=(300, d))
    scale = rng.choice([-1, 1], d) * rng.uniform(0.1, 10, d)
    estimated = s[:, rng.permutation(d)] * scale + rng.normal(size=d)
    assert mcc(estimated, s) == pytest.approx(1.0, abs=1e-9)
    assert weak_mcc(estimated, s) == pytest.approx(1.0, abs=1e-6)


def test_independent_noise_scores_near_zero():
    s = sources()
    noise = np.random.default_rng(1).normal(size=s.shape)
    assert mcc(noise, s) < 0.1
    assert weak_mcc(noise, s) < 0.1


def test_linear_mixture_is_weakly_but_not_strongly_identified():
    s = sources()
    mixing = np.random.default_rng(2).normal(size=(5, 5))
    mixed = s @ mixing + 4.0
    assert weak_mcc(mixed, s) == pytest.approx(1.0, abs=1e-9)
    assert mcc(mixed, s) < 0.8


@settings(max_examples=40, deadline=None)
@given(n=st.integers(8, 60), d=st.integers(1, 5), k=st.integers(1, 5), seed=st.integers(0, 10_000))
def test_weak_mcc_never_below_strong_mcc(n, d, k, seed):
    """Any codes, few samples included: the linear fit considers every single matched factor."""
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=(n, d))
    estimated = truth[:, :1] * rng.normal(size=(1, k)) + rng.normal(size=(n, k)) * rng.uniform(0.1, 3)
    if n <= k + 1:
        with pytest.raises(IdaeError, match="more samples"):
            weak_mcc(estimated, truth)
        return
    assert weak_mcc(estimated, truth) >= mcc(estimated, truth) - 1e-12


def test_chance_level_falls_with_the_sample_size():
    few, many = chance_mcc(38, 6, repeats=100), chance_mcc(400, 6, repeats=100)
    assert 0.15 < few[0] < 0.35 and few[1] > few[0]
    assert many[0] < few[0] / 2


def test_partial_recovery_scores_the_share_recovered():
    s = sources(d=4)
    estimated = np.column_stack([s[:, :2], np.random.default_rng(3).normal(size=(len(s), 2))])
    assert mcc(estimated, s) == pytest.approx(0.5, abs=0.05)
    # fewer estimated than true factors: a missing factor counts as 0
    assert mcc(s[:, :2], s) == pytest.approx(0.5, abs=1e-9)


def test_constant_factor_scores_zero_not_nan():
    s = sources(d=2)
    estimated = np.column_stack([s[:, 0], np.ones(len(s))])
    r = correlation_matrix(estimated, s)
    assert np.isfinite(r).all() and r[1].max() == 0
    assert mcc(estimated, s) == pytest.approx(0.5, abs=1e-9)


def test_cross_seed_matrix():
    s = sources()
    rng = np.random.default_rng(4)
    fits = {"seed0": s, "seed1": s[:, ::-1] * 3, "noise": rng.normal(size=s.shape)}
    m = cross_seed_mcc(fits)
    assert list(m.index) == list(m.columns) == list(fits)
    assert np.allclose(m.to_numpy(), m.to_numpy().T) and np.allclose(np.diag(m), 1)
    assert m.loc["seed0", "seed1"] == pytest.approx(1.0)
    assert m.loc["seed0", "noise"] < 0.1
    assert sorted(np.round(off_diagonal(m), 6)) == sorted(np.round([m.iloc[0, 1], m.iloc[0, 2], m.iloc[1, 2]], 6))
    with pytest.raises(IdaeError, match="at least two"):
        cross_seed_mcc([s])


def test_bad_inputs_named():
    s = sources(n=50)
    with pytest.raises(IdaeError, match="estimated has 49 samples but true has 50"):
        mcc(s[:49], s)
    bad = s.copy()
    bad[0, 0] = np.nan
    with pytest.raises(IdaeError, match="estimated has non-finite"):
        mcc(bad, s)
    with pytest.raises(IdaeError, match="shape"):
        mcc(np.zeros((2, 2, 2)), s)


def design_of(profiles, repeats=10):
    return np.repeat(np.asarray(profiles, dtype=float), repeats, axis=0)


def test_condition_check_counts_profiles_and_rank():
    # two binary one-hot columns: 4 profiles, differences of rank 2
    eye = np.eye(2)
    profiles = [np.r_[a, b] for a in eye for b in eye]
    report = condition_check(design_of(profiles), latent_dim=1, n_terms=3)
    assert (report.n_samples, report.n_profiles, report.design_rank) == (40, 4, 2)
    assert report.max_latent_dim == 1 and report.max_latent_dim_linear == 0
    assert report.ok and report.warning is None
    # met, but only if λ is nonlinear in the design (rank 2 < 3 terms): the report says so
    text = str(report)
    assert "condition met only through natural parameters nonlinear" in text and "at most 0 factor" in text
    wide = condition_check(design_of(np.eye(8)), latent_dim=2, n_terms=3)
    assert wide.design_rank == 7 and wide.max_latent_dim_linear == 2 and str(wide).endswith("\ncondition met")
    too_big = condition_check(design_of(profiles), latent_dim=2, n_terms=3)
    assert not too_big.ok and "latent_dim=2 exceeds" in too_big.warning and "WARNING" in str(too_big)
    assert "at most 1 factor" in too_big.warning


def test_condition_check_fails_a_constant_or_untrained_head():
    """A head whose λ(y) does not vary (as an untrained network's, or a clinical column without effect)
    identifies nothing, however many clinical profiles there are."""
    design = design_of(np.eye(20))
    constant = np.ones((200, 4))
    report = condition_check(design, latent_dim=1, n_terms=2, natural_parameters=constant)
    assert report.natural_parameter_rank == 0 and not report.ok and report.max_latent_dim == 0
    # nearly rank-deficient: one direction of λ at a thousandth of the others counts as missing
    rng = np.random.default_rng(1)
    lam = rng.normal(size=(20, 4)) @ np.diag([1.0, 1.0, 1.0, 1e-4])
    report = condition_check(design, latent_dim=2, n_terms=2, natural_parameters=lam.repeat(10, axis=0))
    assert report.natural_parameter_rank == 3 and not report.ok
    assert report.smallest_relative_singular_value < 1e-3
    # met, but on a weak direction (a hundredth of the others): the report says the variability is weak
    weak = rng.normal(size=(20, 4)) @ np.diag([1.0, 1.0, 1.0, 1e-2])
    report = condition_check(design, latent_dim=2, n_terms=2, natural_parameters=weak.repeat(10, axis=0))
    assert report.ok and report.smallest_relative_singular_value < NEAR_RANK_DEFICIENT
    assert "variability it needs is weak" in str(report)
    strong = condition_check(design, latent_dim=2, n_terms=2, natural_parameters=rng.normal(size=(200, 4)))
    assert strong.ok and "weak" not in str(strong)


def test_condition_check_uses_natural_parameters_when_given():
    rng = np.random.default_rng(0)
    design = design_of(np.eye(8))  # 8 profiles
    lam_full = rng.normal(size=(8, 6)).repeat(10, axis=0)
    assert condition_check(design, 2, 3, natural_parameters=lam_full).natural_parameter_rank == 6
    lam_low = (rng.normal(size=(8, 1)) @ rng.normal(size=(1, 6))).repeat(10, axis=0)
    report = condition_check(design, 2, 3, natural_parameters=lam_low)
    assert report.natural_parameter_rank == 1 and not report.ok


def test_condition_check_rejects_bad_parameters():
    with pytest.raises(IdaeError, match="latent_dim"):
        condition_check(np.eye(3), latent_dim=0)
    with pytest.raises(IdaeError, match="natural_parameters has 2 rows"):
        condition_check(np.eye(3), latent_dim=1, natural_parameters=np.ones((2, 3)))


def test_condition_check_accepts_dataframes():
    design = pd.DataFrame(design_of(np.eye(3)), columns=["a", "b", "c"])
    assert condition_check(design, latent_dim=1, n_terms=2).n_profiles == 3
