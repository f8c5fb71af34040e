r"""The PSIS Pareto k-hat: the shape of the importance weights' upper tail.

Vehtari, Simpson, Gelman, Yao & Gabry (2024), *Pareto smoothed importance
sampling*, JMLR 25(72).  The M largest of a replicate's K weights, above the
(M+1)-th largest :math:`w_{(M+1)}` as the threshold u, are modelled as a
generalised Pareto distribution of the excesses :math:`y = w - u`,

.. math::
    F(y) = 1 - (1 + k y / \sigma)^{-1/k}, \qquad
    M = \lceil \min(K/5,\ 3\sqrt K) \rceil ,

and :math:`\hat k` estimates its shape.  If the weights have a power-law tail
:math:`P(w > t) \sim t^{-1/k}`, then :math:`E_q[w^s] < \infty` exactly for
s < 1/k: at k < 1/2 the weights have a finite variance, and the 2024 paper's
reliability threshold for K draws is :math:`\min(1 - 1/\log_{10} K,\ 0.7)`
(``khat_threshold``).

The fit (``gpd_fit``) is Zhang & Stephens (2009)'s empirical Bayes estimate:
with the excesses sorted :math:`y_1 \le \dots \le y_n` and
:math:`m = 30 + \lfloor\sqrt n\rfloor` grid points

.. math::
    \theta_j = \frac1{y_n} + \frac{1 - \sqrt{m / (j - 1/2)}}{3\, y_{\lfloor n/4 + 1/2 \rfloor}},
    \qquad k(\theta) = \frac1n \sum_i \log(1 - \theta y_i),

profile log-likelihood :math:`\ell(\theta) = n[\log(-\theta/k(\theta)) - k(\theta) - 1]`,
posterior weights :math:`\omega_j \propto e^{\ell(\theta_j)}` (those below
:math:`10\epsilon` dropped), :math:`\bar\theta = \sum_j \omega_j\theta_j`,
:math:`\hat k_{ZS} = k(\bar\theta)`, :math:`\hat\sigma = -\hat k_{ZS}/\bar\theta`;
then the 2024 paper's weakly informative prior (k ~ 0.5 with the weight of
10 observations): :math:`\hat k = (n \hat k_{ZS} + 5) / (n + 10)`.  The
threshold is floored at log(tiny) relative to the largest weight, and a tail of
4 or fewer values has :math:`\hat k = \infty` (no fit), as does a tail whose
excesses are all below 1e-12 of the largest weight: ties to rounding, e.g.
q = p(z|x), where every weight is p(x) up to 1e-15 (ArviZ fits that rounding
noise; here it is treated as the exact ties it stands for).  This is ArviZ's
``psislw`` / loo's ``psis`` estimator operation for operation (``arviz.stats``
``_psislw`` and ``_gpdfit``, ArviZ 0.23), compiled
(``_kernels.diagnostics.gpd``; its means are left-to-right sums where NumPy's
are pairwise), so it gives their k-hat to rounding.

Only the M + 1 largest log-weights enter, so ``weight_stats`` keeps just those
per replicate (memory O(sqrt K)) and fits them when ``.khat`` is read.
"""

from __future__ import annotations

import math

import numpy as np

from ._kernels.diagnostics import gpd as _gpd

__all__ = ["tail_size", "khat_threshold", "gpd_fit", "pareto_khat", "khat_from_top"]


def tail_size(K):
    """M = ceil(min(K/5, 3 sqrt K)): the number of tail weights PSIS fits for K draws."""
    return int(np.ceil(min(K / 5.0, 3 * (K / 1.0) ** 0.5)))


def khat_threshold(K):
    """min(1 - 1/log10 K, 0.7): above it, K draws cannot give a reliable
    importance-sampling estimate (Vehtari et al. 2024, sec. 3.2.3)."""
    K = float(K)
    if K <= 1:
        return -math.inf
    return min(1.0 - 1.0 / math.log10(K), 0.7)


def gpd_fit(y):
    """(k, sigma) of a generalised Pareto fitted to the excesses y (ascending, > 0),
    Zhang & Stephens (2009) with the 2024 PSIS prior on k (see the module docstring)."""
    y = np.ascontiguousarray(y, dtype=np.float64)
    if y.ndim != 1 or y.shape[0] < 1:
        raise ValueError(f"y: expected a non-empty 1-D array of excesses, got shape {y.shape}")
    if not (np.all(y > 0) and np.all(np.diff(y) >= 0) and np.isfinite(y[-1])):
        raise ValueError("y: the excesses must be positive, finite and sorted ascending")
    k, sigma = _gpd.gpd_fit(y)
    return float(k), float(sigma)


def khat_from_top(top, K):
    """(R,) k-hat of each row of ``top``: a replicate's min(K, M + 1) largest
    log-weights in ascending order (M = tail_size(K)).  inf where the tail
    has 4 or fewer values above the threshold (K <= 20, or ties), NaN where
    every weight is zero."""
    top = np.asarray(top, dtype=np.float64)
    cap = tail_size(K) + 1
    if top.ndim != 2 or top.shape[1] != min(cap, K):
        raise ValueError(f"top: expected shape (R, {min(cap, K)}) for K = {K}, got {top.shape}")
    if top.shape[1] < cap:  # K = 1: no (M+1)-th largest weight
        return np.full(top.shape[0], math.inf)
    if top.shape[0] == 0:
        return np.empty(0)
    return _gpd.khat_rows(top)


def pareto_khat(log_weights):
    """The PSIS k-hat of raw log-weights: a float for shape (K,), an array of
    shape (...) for (..., K) (one fit per row, like ``arviz.psislw``)."""
    lw = np.asarray(log_weights, dtype=np.float64)
    if lw.ndim == 0 or lw.shape[-1] < 1:
        raise ValueError(f"log_weights: expected shape (..., K) with K >= 1, got {lw.shape}")
    if np.isnan(lw).any():
        raise ValueError("log_weights: contains NaN")
    if np.isposinf(lw).any():
        raise ValueError("log_weights: contains +inf")
    K = lw.shape[-1]
    cap = min(K, tail_size(K) + 1)
    top = np.sort(lw.reshape(-1, K), axis=1)[:, K - cap :]
    out = khat_from_top(top, K)
    return float(out[0]) if lw.ndim == 1 else out.reshape(lw.shape[:-1])
