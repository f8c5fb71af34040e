r"""Streaming reductions of log-weights, in log space.

A block of log-weights :math:`\ell_1..\ell_n` is folded into an accumulator

``acc = [M, S, M2, S2, T]`` with
:math:`\sum_k w_k = e^{M} S`, :math:`\sum_k w_k^2 = e^{M2} S2`,
:math:`T = \sum_k \ell_k`,

rescaling whenever the running maximum grows, so nothing overflows: log-weights
of -1e6 give finite answers and all-zero weights (every :math:`\ell = -\infty`)
give :math:`M = -\infty, S = 0`, i.e. log 0 = -inf, never NaN.
"""

import numpy as np
from numba import njit

NSTATS = 5  # M, S, M2, S2, T


@njit(cache=True, inline="always")
def init_acc(acc):
    acc[0] = -np.inf
    acc[1] = 0.0
    acc[2] = -np.inf
    acc[3] = 0.0
    acc[4] = 0.0


@njit(cache=True, inline="always")
def _merged(m_old, s_old, m_new, s_new):
    """(m, s) with e^m s = e^m_old s_old + e^m_new s_new, rescaled to the larger maximum."""
    if m_new == -np.inf:
        return m_old, s_old
    if m_new == m_old and m_new < np.inf:  # exp(0) = 1 exactly: the same sum, without the call
        return m_old, s_old + s_new
    if m_new > m_old:
        return m_new, s_old * np.exp(m_old - m_new) + s_new
    return m_old, s_old + s_new * np.exp(m_new - m_old)


@njit(cache=True, inline="always")
def _merge(acc, i, m_new, s_new):
    """Fold (m_new, s_new) -- a sum e^m_new * s_new -- into acc[i], acc[i+1] (``_merged``)."""
    acc[i], acc[i + 1] = _merged(acc[i], acc[i + 1], m_new, s_new)


@njit(cache=True)
def fold_block(acc, lw, n):
    """Fold log-weights lw[:n] into the accumulator."""
    m = -np.inf
    total = 0.0
    for k in range(n):
        total += lw[k]
        if lw[k] > m:
            m = lw[k]
    acc[4] += total
    if m == -np.inf:
        return
    s = 0.0
    s2 = 0.0
    for k in range(n):
        e = np.exp(lw[k] - m)
        s += e
        s2 += e * e
    _merge(acc, 0, m, s)
    _merge(acc, 2, 2.0 * m, s2)


@njit(cache=True)
def combine(parts, start, stop, out, r):
    """Combine accumulators parts[start:stop] in index order into out[r, :3] =
    (log sum w, log sum w^2, sum log w).  In scalar locals (``_merged``), not
    an accumulator array: it runs once per replicate after the parallel loop,
    serially, and an allocation per replicate was most of its cost (150 us of
    a 1 ms call at R = 1310, K = 100); the same sums to the bit."""
    m, s, m2, s2, t = -np.inf, 0.0, -np.inf, 0.0, 0.0
    for u in range(start, stop):
        m, s = _merged(m, s, parts[u, 0], parts[u, 1])
        m2, s2 = _merged(m2, s2, parts[u, 2], parts[u, 3])
        t += parts[u, 4]
    out[r, 0] = m + np.log(s) if s > 0 else -np.inf
    out[r, 1] = m2 + np.log(s2) if s2 > 0 else -np.inf
    out[r, 2] = t


@njit(cache=True)
def fold_counts(acc, counts, values, top, exp_below_top):
    """Fold a block given as ``counts[c]`` copies of the log-weight ``values[c]``:
    the same sums as ``fold_block`` on the expanded block, with one exp per
    distinct value instead of one per sample (a finite latent's log-weights take
    only as many values as it has states).

    ``(top, exp_below_top)`` are ``exps_below_top(values)``: a block that
    holds the category ``top`` of the largest value -- for a proposal with mass
    where the weights are largest, nearly every block -- takes no exp at all:
    its maximum is values[top], so exp(values[c] - m) is exp_below_top[c], the
    same number, computed once per call instead of once per block.  Any other
    block (or top = -1) takes one exp per category it holds."""
    total = 0.0
    for c in range(values.shape[0]):
        if counts[c] > 0:
            total += counts[c] * values[c]
    acc[4] += total
    cached = top >= 0 and counts[top] > 0
    if cached:
        m = values[top]
    else:
        m = -np.inf
        for c in range(values.shape[0]):
            if counts[c] > 0 and values[c] > m:
                m = values[c]
        if m == -np.inf:
            return
    s = 0.0
    s2 = 0.0
    for c in range(values.shape[0]):
        if counts[c] > 0:
            e = exp_below_top[c] if cached else np.exp(values[c] - m)
            s += counts[c] * e
            s2 += counts[c] * e * e
    _merge(acc, 0, m, s)
    _merge(acc, 2, 2.0 * m, s2)


@njit(cache=True)
def exps_below_top(values):
    """(top, e): the index of the first largest of ``values`` and e[c] =
    exp(values[c] - values[top]), ``fold_counts``'s exps for a block that holds
    category top; top = -1 (no block takes them) when the largest is not finite."""
    top = -1
    m = -np.inf
    for c in range(values.shape[0]):
        if values[c] > m:
            m = values[c]
            top = c
    e = np.empty(values.shape[0])
    if not np.isfinite(m):
        return -1, e
    for c in range(values.shape[0]):
        e[c] = np.exp(values[c] - m)
    return top, e
