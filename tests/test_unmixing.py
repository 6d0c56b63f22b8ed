import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from idae.metrics import mcc
from idae.unmixing import fit_unmixing, joint_diagonalize


@settings(max_examples=25, deadline=None)
@given(d=st.integers(2, 6), k=st.integers(2, 6), seed=st.integers(0, 10_000))
def test_joint_diagonalize_recovers_a_common_rotation(d, k, seed):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    diagonals = rng.uniform(0.2, 5.0, size=(k, d))
    matrices = np.stack([q @ np.diag(v) @ q.T for v in diagonals])
    v = joint_diagonalize(matrices)
    np.testing.assert_allclose(v.T @ v, np.eye(d), atol=1e-10)
    for m in matrices:
        rotated = v.T @ m @ v
        off = rotated - np.diag(np.diag(rotated))
        # exact joint diagonaliser exists; only ties between matrices' eigenvalue patterns could stop it
        assert np.abs(off).max() < 1e-6 * np.abs(m).max() or _has_tied_pattern(diagonals)


def _has_tied_pattern(diagonals: np.ndarray) -> bool:
    d = diagonals.shape[1]
    return any(np.allclose(diagonals[:, i], diagonals[:, j], rtol=1e-3) for i in range(d) for j in range(i + 1, d))


def test_fit_unmixing_undoes_a_linear_mix_of_group_modulated_sources():
    rng = np.random.default_rng(0)
    n, d, n_groups = 6000, 5, 8
    groups = rng.integers(0, n_groups, size=n)
    scales = rng.uniform(0.3, 3.0, size=(n_groups, d))
    sources = rng.normal(size=(n, d)) * scales[groups] + rng.normal(size=(n_groups, d))[groups]
    mixed = sources @ rng.normal(size=(d, d)) + 3.0
    assert mcc(mixed, sources) < 0.8
    centre, w = fit_unmixing(mixed, pd.Series(groups))
    unmixed = (mixed - centre) @ w
    assert mcc(unmixed, sources) > 0.98
    np.testing.assert_allclose(unmixed.std(axis=0), 1.0, rtol=1e-6)


def test_fit_unmixing_leaves_out_unknown_groups_and_falls_back_to_whitening():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(50, 3)) @ np.array([[2.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.0, 0.0, 0.5]])
    centre, w = fit_unmixing(z, pd.Series([np.nan] * 50))  # no usable group: whitening only
    u = (z - centre) @ w
    np.testing.assert_allclose(np.cov(u, rowvar=False, ddof=0), np.eye(3), atol=1e-8)
