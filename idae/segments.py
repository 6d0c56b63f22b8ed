"""`make_segments`: the nonstationary simulation of ICE-BeeM (Khemakhem et al., NeurIPS 2020, Section 5.1), itself
after the TCL setting of Hyvärinen & Morioka (NeurIPS 2016), with an IMCA variant whose sources are dependent
within a segment; the segment label is the only clinical column."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd

from idae.errors import IdaeError
from idae.synthetic import apply_mixing, check_float, check_int, patient_ids, random_mixing


@dataclasses.dataclass
class SyntheticSegments:
    """Nonstationary segment data: clinical (n, 1) categorical `segment`; genomic (n, d) "x0"...; sources
    (n, d) "s0"...; means / scales (segments × d) the per-segment modulation; base_covariance (d, d) of the
    IMCA base measure (None when the sources are conditionally independent); layers the mixing MLP."""

    clinical: pd.DataFrame
    genomic: pd.DataFrame
    sources: pd.DataFrame
    means: pd.DataFrame
    scales: pd.DataFrame
    base_covariance: np.ndarray | None
    layers: list[tuple[np.ndarray, np.ndarray]] = dataclasses.field(repr=False)

    def mix(self, sources: np.ndarray | pd.DataFrame) -> np.ndarray:
        """(m, d) sources -> (m, d) noise-free observations."""
        return apply_mixing(np.asarray(sources, dtype=float), self.layers)


def _one_factor_correlation(d: int, rng: np.random.Generator, shared: float = 0.8) -> np.ndarray:
    """A random (d, d) correlation matrix with one shared component: shared * v v^T + diag(1 - shared * v^2),
    v_j = ±U(0.6, 1) with random signs."""
    v = rng.choice([-1.0, 1.0], size=d) * rng.uniform(0.6, 1.0, size=d)
    return shared * np.outer(v, v) + np.diag(1.0 - shared * v**2)


def make_segments(
    n_segments: int = 20,
    n_per_segment: int = 1000,
    n_sources: int = 5,
    depth: int = 2,
    imca: bool = False,
    noise: float = 0.0,
    vary_mean: bool = False,
    seed: int = 0,
) -> SyntheticSegments:
    """The simulation of ICE-BeeM (Khemakhem et al., NeurIPS 2020, Sec. 5.1; setting of TCL, Hyvärinen &
    Morioka 2016): n_segments × n_per_segment observations of d = n_sources Gaussian sources, mixed by an
    injective LeakyReLU(0.2) MLP of `depth` layers (depth=1: linear), observed in d dimensions.

    Nonlinear ICA (imca=False): in segment k, s_j ~ N(m_kj, sd_kj^2) independently, sd_kj ~ U(0.01, 3) and
    m_kj = 0 (only the variance is modulated, the default of the authors' code, github.com/ilkhem/icebeem) or
    m_kj ~ U(-3, 3) when vary_mean.
    IMCA (imca=True): the sources are dependent within a segment. Their density is a non-factorised base
    measure N(0, C) times the factorised exponential-family modulation prod_j exp(-s_j^2 / (2 sd_kj^2) +
    s_j m_kj / sd_kj^2), i.e. s ~ N(P_k^-1 (m_k / sd_k^2), P_k^-1) with precision P_k = C^-1 + diag(1 / sd_k^2).
    ICE-BeeM's IMCA experiment has the same form with C a random correlation matrix scaled by 2d, which leaves
    the sources only weakly dependent (mean |within-segment correlation| ~0.03 at d=5); here C is a one-factor
    correlation matrix (shared component 0.8, `_one_factor_correlation`), giving mean |correlation| ~0.2-0.3.
    Mixing layers are orthogonal × diag(U(0.5, 2)) (condition number <= 4), no biases, LeakyReLU between
    layers (the authors' code applies LeakyReLU before each of L-1 orthogonal maps, so its L=1 is the identity).
    Observations get N(0, noise^2 × var) noise per dimension when noise > 0 (none by default).

    Parameters
    ----------
    n_segments, n_per_segment, n_sources : int
        segments, observations per segment, sources d (also the observed dimension)
    depth : int
        layers of the mixing MLP (1: linear)
    imca : bool
        dependent sources within a segment (IMCA) instead of independent ones
    noise : float
        observation noise sd as a share of each dimension's sd
    vary_mean : bool
        modulate the sources' means as well as their variances
    seed : int
        draws the modulation, the mixing and the observations

    Returns
    -------
    SyntheticSegments
        `clinical` (the segment label), `genomic` (the observations) and the true `sources`

    Examples
    --------
    >>> data = make_segments(n_segments=20, n_per_segment=1000, n_sources=5, depth=4, seed=0)
    """
    n_seg = check_int("n_segments", n_segments, 2)
    n_per = check_int("n_per_segment", n_per_segment, 1)
    d = check_int("n_sources", n_sources, 1)
    depth = check_int("depth", depth, 1)
    noise = check_float("noise", noise, 0.0, math.inf)
    seed = check_int("seed", seed, 0)
    if not isinstance(imca, (bool, np.bool_)):
        raise IdaeError(f"imca must be True or False, got {imca!r}")
    if not isinstance(vary_mean, (bool, np.bool_)):
        raise IdaeError(f"vary_mean must be True or False, got {vary_mean!r}")
    rng_mod, rng_src, rng_mix, rng_noise = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4))

    scales = rng_mod.uniform(0.01, 3.0, size=(n_seg, d))
    means = rng_mod.uniform(-3.0, 3.0, size=(n_seg, d)) if vary_mean else np.zeros((n_seg, d))
    base = _one_factor_correlation(d, rng_mod) if imca else None
    eps = rng_src.normal(size=(n_seg, n_per, d))
    s = np.empty((n_seg, n_per, d))
    for seg in range(n_seg):
        if base is None:
            s[seg] = means[seg] + scales[seg] * eps[seg]
        else:
            cov = np.linalg.inv(np.linalg.inv(base) + np.diag(1.0 / scales[seg] ** 2))
            cov = (cov + cov.T) / 2
            s[seg] = cov @ (means[seg] / scales[seg] ** 2) + eps[seg] @ np.linalg.cholesky(cov).T
    s = s.reshape(n_seg * n_per, d)
    layers = random_mixing(d, d, depth, rng_mix)
    x = apply_mixing(s, layers)
    if noise > 0:
        x = x + noise * x.std(axis=0) * rng_noise.normal(size=x.shape)

    index = pd.Index(patient_ids("P", n_seg * n_per), name="patient")
    seg_names = patient_ids("seg", n_seg, width=2)
    segment = pd.Categorical(np.repeat(seg_names, n_per), categories=seg_names)
    src_cols, obs_cols = [f"s{j}" for j in range(d)], [f"x{j}" for j in range(d)]
    return SyntheticSegments(
        clinical=pd.DataFrame({"segment": segment}, index=index),
        genomic=pd.DataFrame(x, index=index, columns=obs_cols),
        sources=pd.DataFrame(s, index=index, columns=src_cols),
        means=pd.DataFrame(means, index=seg_names, columns=src_cols),
        scales=pd.DataFrame(scales, index=seg_names, columns=src_cols),
        base_covariance=base,
        layers=layers,
    )
