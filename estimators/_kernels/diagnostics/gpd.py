r"""The generalised-Pareto fit of PSIS (Zhang & Stephens 2009, with the
weakly informative prior of Vehtari et al. 2024), compiled.

Operation for operation ArviZ's ``_gpdfit`` (see ``estimators.psis`` for the
formulas), except that each mean is a plain left-to-right sum where NumPy sums
pairwise -- a difference in the last bits.  It avoids NumPy's (m, n)
temporaries (m = 30 + sqrt n grid points; 84 x 3001 at K = 1e6), so a fit costs
about m n ``log1p`` and nothing else.  ``khat_rows`` fits the replicates in
parallel (one replicate per iteration: the same numbers for any thread count).
"""

import numpy as np
from numba import njit, prange

PRIOR_K = 10.0  # the prior's weight, in observations (towards k = 0.5)
PRIOR_BS = 3.0
LOG_TINY = float(np.log(np.finfo(np.float64).tiny))
_EPS10 = 10.0 * float(np.finfo(np.float64).eps)


#: tail excesses no larger than this (in units of the largest weight) are ties
#: to rounding -- e.g. q = p(z|x), where every weight equals p(x) up to 1e-15 --
#: and have no tail to fit: k-hat is inf, as for exact ties
TIES = 1e-12

@njit(cache=True)
def _grid(y, n):
    m = 30 + int(n**0.5)
    b = np.empty(m)
    for j in range(m):
        b[j] = 1.0 - np.sqrt(m / (j + 1 - 0.5))
    quartile = y[int(n / 4 + 0.5) - 1]
    for j in range(m):
        b[j] /= PRIOR_BS * quartile
    for j in range(m):
        b[j] += 1.0 / y[n - 1]
    return b


@njit(cache=True, inline="always")
def _mean_log1p(bj, y, n):
    s = 0.0
    for i in range(n):
        s += np.log1p(-bj * y[i])
    return s / n


@njit(cache=True, error_model="numpy")
def _posterior(b, k, y, n):
    """(k, sigma) from the grid b and its profile k(b)."""
    m = b.shape[0]
    len_scale = np.empty(m)
    for j in range(m):
        len_scale[j] = n * (np.log(-(b[j] / k[j])) - k[j] - 1.0)
    weights = np.empty(m)
    for j in range(m):
        s = 0.0
        for l in range(m):
            s += np.exp(len_scale[l] - len_scale[j])
        weights[j] = 1.0 / s
    total = 0.0
    for j in range(m):
        if weights[j] >= _EPS10:
            total += weights[j]
    b_post = 0.0
    for j in range(m):
        if weights[j] >= _EPS10:
            b_post += b[j] * (weights[j] / total)
    k_post = _mean_log1p(b_post, y, n)
    sigma = -k_post / b_post
    k_post = (n * k_post + PRIOR_K * 0.5) / (n + PRIOR_K)
    return k_post, sigma


@njit(cache=True)
def gpd_fit(y):
    """(k, sigma) for the excesses y (ascending, > 0)."""
    n = y.shape[0]
    b = _grid(y, n)
    k = np.empty(b.shape[0])
    for j in range(b.shape[0]):
        k[j] = _mean_log1p(b[j], y, n)
    return _posterior(b, k, y, n)


@njit(cache=True)
def tail_excesses(top):
    """The excesses exp(x) - exp(cutoff) of the values x above the cutoff, with
    x = top - max(top) and cutoff = max(x[0], log tiny) -- ArviZ's ``_psislw``
    for a replicate's largest log-weights ``top`` (ascending).  Empty when every
    weight is zero."""
    top_max = top[top.shape[0] - 1]
    if top_max == -np.inf:
        return np.empty(0)
    cutoff = max(top[0] - top_max, LOG_TINY)
    exp_cutoff = np.exp(cutoff)
    n = 0
    for i in range(top.shape[0]):
        if top[i] - top_max > cutoff:
            n += 1
    y = np.empty(n)
    j = 0
    for i in range(top.shape[0]):
        x = top[i] - top_max
        if x > cutoff:
            y[j] = np.exp(x) - exp_cutoff
            j += 1
    return y


@njit(cache=True)
def khat_one(top):
    """k-hat of one replicate's largest log-weights (ascending): NaN if every
    weight is zero, inf if 4 or fewer lie above the threshold."""
    if top[top.shape[0] - 1] == -np.inf:
        return np.nan
    y = tail_excesses(top)
    if y.shape[0] <= 4 or y[y.shape[0] - 1] <= TIES:
        return np.inf
    return gpd_fit(y)[0]


@njit(cache=True, parallel=True)
def _khat_rows_parallel(tops):
    R = tops.shape[0]
    out = np.empty(R)
    for r in prange(R):
        out[r] = khat_one(tops[r])
    return out


def khat_rows(tops):
    """(R,) k-hat of each row of ``tops`` (each row ascending): one replicate
    per iteration, in parallel for R >= 2 (a single fit, about 1.5 ms at
    K = 1e6, is cheaper than a parallel launch on a busy machine)."""
    tops = np.ascontiguousarray(tops, dtype=np.float64)
    if tops.shape[0] == 1:
        return np.array([khat_one(tops[0])])
    return _khat_rows_parallel(tops)
