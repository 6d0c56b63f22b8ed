"""The conditional linear stage (idae.unmixing): recovery, normalisation, determinism, refusals."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from idae import unmixing
from idae.errors import IdaeError
from idae.metrics import mcc


def modulated_sources(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sources whose mean and log-variance are linear in a design of 4 groups (one-hot) and one number."""
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, 4, size=n)
    age = rng.normal(size=n)
    design = np.column_stack([np.eye(4)[groups], age])
    mean = design @ rng.normal(0, 1.0, size=(5, d))
    log_sd = design @ rng.normal(0, 0.6, size=(5, d))
    return mean + np.exp(log_sd) * rng.normal(size=(n, d)), design


def test_undoes_a_linear_mix_of_clinically_modulated_sources():
    sources, design = modulated_sources(3000, 5, seed=0)
    mix = np.random.default_rng(1).normal(size=(5, 5))
    codes = sources @ mix + 3.0
    assert mcc(codes, sources) < 0.8
    stage = unmixing.fit(codes, design)
    u = stage.transform(codes)
    assert mcc(u, sources) > 0.98
    np.testing.assert_allclose(u.std(axis=0), 1.0, rtol=1e-6)


def test_head_describes_the_unmixed_factors_and_factors_come_by_explained_share():
    sources, design = modulated_sources(3000, 4, seed=2)
    stage = unmixing.fit(sources @ np.random.default_rng(3).normal(size=(4, 4)), design)
    u = stage.transform(sources @ np.random.default_rng(3).normal(size=(4, 4)))
    out = design @ stage.head_weight + stage.head_bias
    mean, log_var = out[:, :4], out[:, 4:]
    # the head's mean is the maximum-likelihood conditional mean given its variance: weighted least squares
    for j in range(4):
        w = np.exp(-0.5 * log_var[:, j])
        coef, *_ = np.linalg.lstsq(design * w[:, None], u[:, j] * w, rcond=None)
        np.testing.assert_allclose(mean[:, j], design @ coef, atol=0.02)
    # and its variance the residual variance (a least-squares fit of log residual² recovers it up to noise)
    assert np.corrcoef(log_var.ravel(), np.log((u - mean) ** 2 + 1e-12).ravel())[0, 1] > 0.3
    explained = mean.var(axis=0) / u.var(axis=0)
    assert np.all(np.diff(explained) <= 1e-9)


def test_deterministic_given_the_seed():
    sources, design = modulated_sources(500, 3, seed=4)
    codes = sources @ np.random.default_rng(5).normal(size=(3, 3))
    a, b = unmixing.fit(codes, design, seed=7), unmixing.fit(codes, design, seed=7)
    np.testing.assert_array_equal(a.weight, b.weight)
    np.testing.assert_array_equal(a.head_weight, b.head_weight)


@settings(max_examples=6, deadline=None)  # two fits of 2,000 patients each: ~7 s an example
@given(seed=st.integers(0, 10_000))
def test_result_does_not_depend_on_how_the_codes_were_mixed(seed):
    """The stage sees the codes only up to an invertible linear map: two mixes of the same sources give the
    same factors (up to the sign and order conventions, which `fit` fixes)."""
    sources, design = modulated_sources(2000, 3, seed=seed % 100)
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(3, 3)), rng.normal(size=(3, 3))
    if min(abs(np.linalg.det(a)), abs(np.linalg.det(b))) < 0.05:
        return
    ua = unmixing.fit(sources @ a, design).transform(sources @ a)
    ub = unmixing.fit(sources @ b, design).transform(sources @ b)
    assert mcc(ua, ub) > 0.99


def test_refuses_too_few_patients_and_dependent_codes():
    sources, design = modulated_sources(50, 3, seed=6)
    with pytest.raises(IdaeError, match="more than 3 patients"):
        unmixing.fit(sources[:3], design[:3])
    with pytest.raises(IdaeError, match="linearly dependent"):
        unmixing.fit(np.column_stack([sources[:, :2], sources[:, 0] + sources[:, 1]]), design)
    with pytest.raises(IdaeError, match="same n"):
        unmixing.fit(sources, design[:10])
