"""Conditional unmixing: the linear map that makes the learnt factors independent given the clinical state.

The energy T(f(x))ᵀλ(y) is a sum of per-factor terms, so the model says the factors z_j are independent
given y, each with a y-dependent mean and variance. Training identifies f only up to an affine map in
practice (the weak identifiability of ICE-BeeM, Khemakhem et al. 2020, Theorem 1); the remaining linear
mixing shows as correlated factors within each clinical group. If z = A s + b with s independent given y,
every group's covariance is A D_g Aᵀ with D_g diagonal, so A is recovered, up to permutation and scale, by
jointly diagonalising the group covariances (the nonstationary-variance argument of Pham & Cardoso,
IEEE TSP 2001). Whiten by the pooled within-group covariance, then find the rotation that makes every
whitened group covariance as diagonal as possible (Jacobi angles of Cardoso & Souloumiac, SIAM J. Matrix
Anal. Appl. 1996).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MIN_GROUP = 10  # patients a clinical group needs before its covariance is used


def joint_diagonalize(matrices: np.ndarray, sweeps: int = 100, tol: float = 1e-10) -> np.ndarray:
    """Orthogonal V (d, d) such that Vᵀ M_k V is as diagonal as possible for every symmetric M_k (K, d, d)."""
    m = np.array(matrices, dtype=float, copy=True)
    d = m.shape[1]
    v = np.eye(d)
    for _ in range(sweeps):
        rotated = False
        for p in range(d - 1):
            for q in range(p + 1, d):
                # The angle minimising the off-diagonal mass of the (p, q) block over all matrices.
                g = np.stack([m[:, p, p] - m[:, q, q], m[:, p, q] + m[:, q, p]])
                gg = g @ g.T
                on, off = gg[0, 0] - gg[1, 1], gg[0, 1] + gg[1, 0]
                theta = 0.5 * np.arctan2(off, on + np.hypot(on, off))
                c, s = np.cos(theta), np.sin(theta)
                if abs(s) <= tol:
                    continue
                rotated = True
                rot = np.array([[c, -s], [s, c]])
                idx = [p, q]
                m[:, :, idx] = m[:, :, idx] @ rot
                m[:, idx, :] = np.einsum("ji,kjl->kil", rot, m[:, idx, :])
                v[:, idx] = v[:, idx] @ rot
        if not rotated:
            break
    return v


def fit_unmixing(z: np.ndarray, groups: pd.Series | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(centre (d,), W (d, d)) with u = (z - centre) @ W: unit-variance factors, independent given the group.

    z (n, d) factors of the training patients; groups (n,) a label per patient (NaN = unknown, left out).
    Needs at least two groups of MIN_GROUP patients; otherwise W whitens only (no rotation).
    """
    labels = pd.Series(np.asarray(groups, dtype=object))
    keep = labels.notna().to_numpy()
    zk, lk = z[keep], labels[keep].to_numpy()
    centre = z.mean(axis=0)
    covs, weights = [], []
    for g in pd.unique(lk):
        rows = zk[lk == g]
        if len(rows) >= MIN_GROUP:
            covs.append(np.cov(rows, rowvar=False))
            weights.append(len(rows))
    if len(covs) < 2:
        pooled = np.cov(z, rowvar=False)
    else:
        pooled = np.average(np.stack(covs), axis=0, weights=weights)
    evals, evecs = np.linalg.eigh(pooled)
    whiten = evecs / np.sqrt(np.maximum(evals, 1e-12))
    if len(covs) >= 2:
        rotation = joint_diagonalize(np.stack([whiten.T @ c @ whiten for c in covs]))
        whiten = whiten @ rotation
    # fix sign and scale so every unmixed factor has unit overall variance and positive skew-free sign
    u = (z - centre) @ whiten
    whiten = whiten / u.std(axis=0)
    signs = np.sign(np.sum(whiten, axis=0) + 1e-300)
    return centre, whiten * signs


def clinical_groups(clinical: pd.DataFrame) -> pd.Series:
    """A group label per patient from its categorical clinical values; NaN where any of them is missing."""
    columns = [c for c in clinical.columns if isinstance(clinical[c].dtype, pd.CategoricalDtype)]
    if not columns:
        return pd.Series(np.nan, index=clinical.index, dtype=object)
    values = clinical[columns].astype(object)
    complete = values.notna().all(axis=1)
    labels = values.apply(lambda row: "/".join(str(v) for v in row), axis=1)
    return labels.where(complete)

