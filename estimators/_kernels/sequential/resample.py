r"""Resampling, effective sample size and log-mean-exp for particle filters.

The filters keep unnormalised log-weights ``lw`` (N,) and exponentiate them
once per step (``relative_weights``) into w = exp(lw - max lw).  A resampling draws N ancestor indices ``anc`` from the
normalised weights :math:`W_i = w_i / \sum_j w_j` by inverting the cumulative
weights at N sorted points :math:`u_{(1)} \le \dots \le u_{(N)}` in [0, 1):

* multinomial -- i.i.d. uniforms, sorted in O(N) by exponential spacings:
  :math:`E_i = -\log(1 - U_i)`, :math:`u_{(i)} = \sum_{j\le i} E_j / \sum_{j\le N+1} E_j`;
* stratified -- :math:`u_{(i)} = (i + U_i)/N`, one uniform per stratum;
* systematic -- :math:`u_{(i)} = (i + U)/N`, one uniform for all;
* residual -- :math:`\lfloor N W_i \rfloor` copies of particle i, then the
  remaining :math:`N - \sum_i \lfloor N W_i \rfloor` multinomially from the
  residual weights :math:`N W_i - \lfloor N W_i \rfloor`.

Each scheme gives every particle :math:`E[\#\text{offspring}_i] = N W_i`, so
the particle filter's evidence estimate stays unbiased whichever is used.

A resampling always takes N + 1 uniforms ``u`` (drawn by the caller: from the
replicate's xoshiro256** stream in the compiled filter, from a NumPy
Generator on the generic path) and uses as many as its scheme needs, so both
paths share this code.  A particle of zero weight is never drawn: the
inversion stops at the last particle of positive weight.
"""

import numpy as np
from numba import njit

from ..vexp import exp_nonpositive

MULTINOMIAL, STRATIFIED, SYSTEMATIC, RESIDUAL = 0, 1, 2, 3


@njit(cache=True)
def max_finite(lw):
    m = -np.inf
    for i in range(lw.shape[0]):
        if lw[i] > m:
            m = lw[i]
    return m


@njit(cache=True, fastmath={"contract", "nsz", "arcp"})
def _exp_relative(lw, m, w, bits):
    """w[i] <- exp(lw[i] - m) for lw[i] <= m, by ``vexp.exp_nonpositive`` (within about
    1 ulp of libm's exp; 0 below m - 708, and for -inf); ``bits`` is int64 scratch of
    the same length."""
    n = lw.shape[0]
    for i in range(n):
        w[i] = lw[i] - m
    exp_nonpositive(w, w, bits, n)


@njit(cache=True)
def relative_weights(lw, w):
    r"""w[i] <- exp(lw[i] - m) with m = max(lw); returns (m, sum w, sum w^2).

    The one pass of exponentials per step: the effective sample size
    :math:`(\sum w)^2/\sum w^2`, the log-mean weight :math:`m + \log\sum w - \log N`
    and the resampling all read it.  m = -inf (every weight zero) leaves w untouched.
    The exponentials are ``_exp_relative``'s (within about 1 ulp of libm's; a weight
    below e^-708 of the largest counts as 0), the sums run in index order."""
    m = max_finite(lw)
    if m == -np.inf:
        return m, 0.0, 0.0
    _exp_relative(lw, m, w, np.empty(lw.shape[0], dtype=np.int64))
    s1 = 0.0
    s2 = 0.0
    for i in range(lw.shape[0]):
        v = w[i]
        s1 += v
        s2 += v * v
    return m, s1, s2


@njit(cache=True)
def resample_now(threshold, s1, s2, n):
    """Whether to resample: always at threshold >= 1, never at <= 0, else when
    ESS = s1^2 / s2 < threshold * n."""
    if threshold >= 1.0:
        return True
    if threshold <= 0.0:
        return False
    return s1 * s1 / s2 < threshold * n


@njit(cache=True)
def _sorted_uniforms(u, m):
    """u[:m] <- m sorted uniforms on [0, 1) from the m + 1 uniforms u[:m + 1] (exponential spacings)."""
    total = 0.0
    for i in range(m + 1):
        total += -np.log1p(-u[i])
    acc = 0.0
    for i in range(m):
        acc += -np.log1p(-u[i])
        u[i] = acc / total if total > 0.0 else 0.0


@njit(cache=True)
def _invert(cum, total, last, u, m, anc, offset):
    """anc[offset + i] <- the first j with cum[j] > u[i] * total, for sorted u[:m]; j <= last."""
    j = 0
    for i in range(m):
        target = u[i] * total
        while j < last and cum[j] <= target:
            j += 1
        anc[offset + i] = j


@njit(cache=True)
def ancestors(method, w, u, anc, cum):
    """anc[:N] <- the ancestor indices of one resampling of the (unnormalised,
    non-negative, not all zero) weights w, from the N + 1 uniforms in u
    (overwritten); ``cum`` is (N,) scratch."""
    n = w.shape[0]
    total = 0.0
    last = 0
    for i in range(n):
        total += w[i]
        cum[i] = total
        if w[i] > 0.0:
            last = i
    if method == MULTINOMIAL:
        _sorted_uniforms(u, n)
        _invert(cum, total, last, u, n, anc, 0)
    elif method == STRATIFIED:
        for i in range(n):
            u[i] = (i + u[i]) / n
        _invert(cum, total, last, u, n, anc, 0)
    elif method == SYSTEMATIC:
        u0 = u[0]
        for i in range(n):
            u[i] = (i + u0) / n
        _invert(cum, total, last, u, n, anc, 0)
    else:  # RESIDUAL
        k = 0
        res_total = 0.0
        res_last = 0
        for i in range(n):
            nw = n * (w[i] / total)
            c = int(np.floor(nw))
            if c > n - k:
                c = n - k
            for _ in range(c):
                anc[k] = i
                k += 1
            rest = nw - c
            if rest < 0.0:
                rest = 0.0
            res_total += rest
            cum[i] = res_total
            if rest > 0.0:
                res_last = i
        left = n - k
        if left > 0:
            if res_total > 0.0:
                _sorted_uniforms(u, left)
                _invert(cum, res_total, res_last, u, left, anc, k)
            else:  # pragma: no cover - rounding: floors summed to < N with no residual mass
                for i in range(left):
                    anc[k + i] = last
