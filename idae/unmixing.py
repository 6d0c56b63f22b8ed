"""The conditional linear stage: the linear map under which the factors are independent Gaussians given y.

If the codes z (n, d) are an invertible linear mix of sources s that are independent given the clinical
state y, each with a y-dependent mean and variance, z = s A + c, then u = (z - c) W with W = A⁻¹ (up to
permutation and scale) maximises

    Σ_i Σ_j log N(u_ij; m_j(y_i), v_j(y_i)) + n log |det W|,

with m and log v linear in the clinical design. This is maximum-likelihood linear ICA for nonstationary
Gaussian sources (Pham & Cardoso, IEEE TSP 2001), the conditioning variable standing in for time, and the
last, linear layer of the identifiable model (iVAE and ICE-BeeM identify their factors up to such a map
once the nonlinear part is right). The likelihood is flat along rotations when the clinical modulation is
weak, where first-order training moves slowly; it is solved here in float64 by L-BFGS from the whitened
codes and a few random rotations, keeping the best likelihood. A Gaussian prior on the head's weights
(precision `PRIOR_PRECISION`) keeps a small cohort's rotation stable.

`fit` applies to any codes: idae's own (inside `IDAE.fit`) and every baseline's, so that a comparison
gives all of them the same post-hoc step.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import nn

from idae.errors import IdaeError

RESTARTS = 4  # the whitened codes, then random rotations
PRIOR_PRECISION = 10.0  # on the head's weights, in units of one patient's log-likelihood
MAX_ITERATIONS = 500


@dataclasses.dataclass
class Unmixing:
    """u = (z - centre) @ weight; head_weight (q, 2d) and head_bias (2d,) give [m(y), log v(y)] = y @ W + b."""

    centre: np.ndarray  # (d,)
    weight: np.ndarray  # (d, d)
    head_weight: np.ndarray  # (q, 2d)
    head_bias: np.ndarray  # (2d,)
    nll: float  # mean negative log-likelihood of the codes per patient at the optimum (prior excluded)

    def transform(self, z: np.ndarray) -> np.ndarray:
        return (np.asarray(z, dtype=np.float64) - self.centre) @ self.weight


def _negative_log_likelihood(u: torch.Tensor, head: nn.Linear, design: torch.Tensor, weight: torch.Tensor,
                             log_var_range: tuple[float, float]) -> torch.Tensor:  # fmt: skip
    d = u.shape[1]
    out = head(design)
    mean, log_var = out[:, :d], out[:, d:].clamp(*log_var_range)
    nll = 0.5 * ((u - mean) ** 2 * torch.exp(-log_var) + log_var + np.log(2 * np.pi)).sum(dim=1).mean()
    return nll - torch.linalg.slogdet(weight)[1]


def fit(
    codes: np.ndarray,
    design: np.ndarray,
    seed: int = 0,
    restarts: int = RESTARTS,
    prior_precision: float = PRIOR_PRECISION,
    log_var_range: tuple[float, float] = (-12.0, 12.0),
) -> Unmixing:
    """The maximum-likelihood conditional linear stage for training codes (n, d) and design (n, q).

    Unit-variance output: W is rescaled so that every unmixed factor has variance 1 on these codes, its
    sign so that the largest loading is positive, and the factors are ordered by decreasing share of
    their variance that the design explains (the head adjusted to match). Deterministic given `seed`.
    """
    z = np.asarray(codes, dtype=np.float64)
    y = np.asarray(design, dtype=np.float64)
    if z.ndim != 2 or y.ndim != 2 or len(z) != len(y):
        raise IdaeError(f"unmixing needs codes (n, d) and a design (n, q) of the same n, got {z.shape} and {y.shape}")
    n, d = z.shape
    if n <= d:
        raise IdaeError(f"unmixing {d} factors needs more than {d} patients, got {n}")
    centre = z.mean(axis=0)
    evals, evecs = np.linalg.eigh(np.cov(z - centre, rowvar=False).reshape(d, d))
    if evals.min() <= 1e-12 * max(evals.max(), 1e-300):
        raise IdaeError("unmixing: the codes are linearly dependent (a factor is constant or a copy of others)")
    whiten = evecs / np.sqrt(evals)
    zw = torch.from_numpy((z - centre) @ whiten)
    yt = torch.from_numpy(y)
    rng = np.random.default_rng(seed)
    starts = [np.eye(d)] + [_random_rotation(d, rng) for _ in range(max(0, restarts - 1))]
    best: tuple[float, np.ndarray, nn.Linear] | None = None
    for start in starts:
        nll, rotation, head = _fit_from(start, zw, yt, prior_precision / n, log_var_range)
        if np.isfinite(nll) and (best is None or nll < best[0]):
            best = (nll, rotation, head)
    if best is None:
        raise IdaeError("unmixing did not converge to a finite likelihood from any start")
    nll, rotation, head = best
    weight = whiten @ rotation
    head_weight, head_bias = head.weight.detach().numpy().T.copy(), head.bias.detach().numpy().copy()
    nll -= float(np.linalg.slogdet(whiten)[1])  # per patient, in the coordinates of the codes
    return _normalise(Unmixing(centre, weight, head_weight, head_bias, nll), z, y)


def _fit_from(start: np.ndarray, zw: torch.Tensor, design: torch.Tensor, ridge: float,
              log_var_range: tuple[float, float]) -> tuple[float, np.ndarray, nn.Linear]:  # fmt: skip
    """L-BFGS from the rotation `start` of the whitened codes: (mean nll, rotation, fitted head)."""
    d = zw.shape[1]
    weight = nn.Parameter(torch.from_numpy(start.copy()))
    head = nn.Linear(design.shape[1], 2 * d).double()
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    optimiser = torch.optim.LBFGS([weight, *head.parameters()], lr=1.0, max_iter=MAX_ITERATIONS, history_size=30,
                                  line_search_fn="strong_wolfe", tolerance_grad=1e-8, tolerance_change=1e-11)

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = _negative_log_likelihood(zw @ weight, head, design, weight, log_var_range)
        loss = loss + ridge * (head.weight**2).sum()
        loss.backward()
        weight.grad = weight.grad.contiguous()  # slogdet's gradient is a transposed view; L-BFGS flattens
        return loss

    optimiser.step(closure)
    with torch.no_grad():
        nll = float(_negative_log_likelihood(zw @ weight, head, design, weight, log_var_range))
    return nll, weight.detach().numpy().copy(), head


def _random_rotation(d: int, rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(d, d)))
    return q * np.sign(np.diag(r))


def _normalise(stage: Unmixing, z: np.ndarray, y: np.ndarray) -> Unmixing:
    """Unit variance, a positive largest loading and an order by explained share, with the head rescaled
    to describe the rescaled factors (mean × a, log-variance + 2 log|a|)."""
    d = z.shape[1]
    u = stage.transform(z)
    scale = 1.0 / u.std(axis=0)
    signs = np.sign(stage.weight[np.abs(stage.weight).argmax(axis=0), np.arange(d)])
    a = scale * np.where(signs == 0, 1.0, signs)
    mean = y @ stage.head_weight[:, :d] + stage.head_bias[:d]
    explained = (mean * a).var(axis=0) / ((u * a).var(axis=0) + 1e-300)
    order = np.argsort(-explained, kind="stable")
    a_o = a[order]
    head_w = np.concatenate([stage.head_weight[:, :d][:, order] * a_o, stage.head_weight[:, d:][:, order]], axis=1)
    head_b = np.concatenate([stage.head_bias[:d][order] * a_o, stage.head_bias[d:][order] + 2 * np.log(np.abs(a_o))])
    return Unmixing(stage.centre, stage.weight[:, order] * a_o, head_w, head_b, stage.nll)  # nll: a reparametrisation
