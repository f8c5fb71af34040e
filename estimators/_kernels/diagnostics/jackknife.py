r"""Jackknife variational inference (Nowozin 2018): the passes, compiled.

With :math:`\ell_k = \log w_k`, :math:`L_K = \log \frac1K \sum_k w_k` and
:math:`\bar L_{K-j}` the mean of :math:`\log \frac1{K-j}\sum_{k \notin J} w_k`
over the leave-j-out sets J, the generalized jackknife of order m is
:math:`\sum_{j=0}^m c_j \bar L_{K-j}` with
:math:`c_j = (-1)^j (K-j)^m / ((m-j)!\, j!)` (so :math:`\sum_j c_j = 1` and the
:math:`K^{-1}, \dots, K^{-m}` terms of the bias cancel).  Centred on
:math:`L_K` (the coefficients are O(K^m), so the differences are formed
first): :math:`\mathrm{JVI}_m = L_K + \sum_{j \ge 1} c_j D_j`,
:math:`D_j = \bar L_{K-j} - L_K`.  With :math:`u_k = w_k / \sum w`,

.. math::
    D_1 = \frac1K \sum_i \log\Big(1 + \frac{1 - K u_i}{K - 1}\Big), \qquad
    D_2 = \binom K2^{-1} \sum_{i<j} \log\Big(1 + \frac{2 - K(u_i + u_j)}{K - 2}\Big),

each term computed with ``log1p`` (the first-order parts sum to zero exactly, so
the terms are small and nothing cancels catastrophically).  A leave-out set
that drops the largest weight uses the sum of the others accumulated directly
(``rest``; for pairs also the sum without the two largest), never
:math:`\sum w - w_{\max}`, which would lose every digit when one weight
dominates.

Order 1 streams in two passes over the units of ``driver`` (the same streams
and block functions as ``weight_stats``): pass 1 accumulates (max M, scaled sum
s, scaled ``rest`` = the sum without one maximal term) per unit, combined per
replicate in chunk order; pass 2 regenerates the same draws and sums the D_1
terms per unit, combined in chunk order.  Order 2 needs every pair, O(K^2):
a replicate's K <= ``JACKKNIFE2_MAX_K`` draws are one unit, held in a buffer;
its pair sums are formed row by row (in parallel over rows or over
replicates) and added in row order.  Bit-identical for any NUMBA_NUM_THREADS.
"""

import numpy as np
from numba import njit, prange

from ..driver import BLOCK, CHUNK, call_block, use_serial
from ..rng import seed_state

#: order 2 holds a replicate's K log-weights and visits K (K - 1) / 2 pairs
JACKKNIFE2_MAX_K = CHUNK


# --------------------------------------------------------------------------- pass 1


@njit(cache=True, inline="always")
def _merge(acc, m, s, rest):
    """Fold a (max m, scaled sum s, scaled rest) triple into acc; the earlier
    maximum stays the excluded one on ties."""
    if m == -np.inf:
        return
    if m > acc[0]:
        r = np.exp(acc[0] - m)
        acc[2] = rest + acc[1] * r
        acc[1] = s + acc[1] * r
        acc[0] = m
    else:
        r = np.exp(m - acc[0])
        acc[1] += s * r
        acc[2] += s * r


@njit(cache=True)
def fold_pass1(acc, lw, n):
    """Fold lw[:n] into acc = (M, s, rest): sum w = e^M s, and e^M rest the sum
    without one maximal term (the block's first maximum)."""
    m = -np.inf
    top = -1
    for k in range(n):
        if lw[k] > m:
            m = lw[k]
            top = k
    if m == -np.inf:
        return
    s = 0.0
    rest = 0.0
    for k in range(n):
        e = np.exp(lw[k] - m)
        s += e
        if k != top:
            rest += e
    _merge(acc, m, s, rest)


@njit(cache=True)
def init_pass1(acc):
    acc[0] = -np.inf
    acc[1] = 0.0
    acc[2] = 0.0


@njit(cache=True)
def fold_pass1_unit(lw, out):
    """out[:3] <- the pass-1 accumulator of one unit's log-weights, BLOCK by BLOCK."""
    init_pass1(out)
    n = lw.shape[0]
    for i in range(0, n, BLOCK):
        m = min(BLOCK, n - i)
        fold_pass1(out, lw[i : i + m], m)


@njit(cache=True)
def combine_pass1(parts, R, n_chunks):
    """(R, 3) per-replicate (M, s, rest), units in chunk order."""
    out = np.empty((R, 3))
    for r in range(R):
        init_pass1(out[r])
        for u in range(r * n_chunks, (r + 1) * n_chunks):
            _merge(out[r], parts[u, 0], parts[u, 1], parts[u, 2])
    return out


@njit(cache=True)
def _unit_pass1(args, key, K, n_chunks, u, parts):
    r = u // n_chunks
    c = u - r * n_chunks
    state = np.empty(4, dtype=np.uint64)
    seed_state(state, key, r, c)
    lw = np.empty(BLOCK)
    acc = parts[u]
    init_pass1(acc)
    stop = min(K, (c + 1) * CHUNK)
    i = c * CHUNK
    while i < stop:
        n = min(BLOCK, stop - i)
        call_block(state, lw, n, args)
        fold_pass1(acc, lw, n)
        i += n


# --------------------------------------------------------------------------- pass 2


@njit(cache=True)
def add_d1_terms(lw, n, tot, K, acc):
    """acc[0] += sum_i log(1 + (1 - K u_i) / (K - 1)) over lw[:n], with the
    replicate's pass-1 totals tot = (M, s, rest)."""
    M, s, rest = tot[0], tot[1], tot[2]
    top_term = np.log(rest) - np.log(s) - np.log1p(-1.0 / K) if rest > 0 else -np.inf
    t = acc[0]
    for k in range(n):
        if lw[k] == M:
            t += top_term
        else:
            u = np.exp(lw[k] - M) / s
            t += np.log1p((1.0 - K * u) / (K - 1.0))
    acc[0] = t


@njit(cache=True)
def d1_unit(lw, tot, K):
    """The sum of one unit's D_1 terms (the generic path's pass 2)."""
    acc = np.zeros(1)
    n = lw.shape[0]
    for i in range(0, n, BLOCK):
        m = min(BLOCK, n - i)
        add_d1_terms(lw[i : i + m], m, tot, K, acc)
    return acc[0]


@njit(cache=True)
def _unit_pass2(args, key, K, n_chunks, u, totals, sums):
    r = u // n_chunks
    c = u - r * n_chunks
    state = np.empty(4, dtype=np.uint64)
    seed_state(state, key, r, c)
    lw = np.empty(BLOCK)
    acc = np.zeros(1)
    tot = totals[r]
    stop = min(K, (c + 1) * CHUNK)
    i = c * CHUNK
    while i < stop:
        n = min(BLOCK, stop - i)
        call_block(state, lw, n, args)
        add_d1_terms(lw, n, tot, K, acc)
        i += n
    sums[u] = acc[0]


@njit(cache=True)
def finish_order1(totals, sums, R, n_chunks, K):
    """(R,) JVI_1 = L_K - (K - 1) D_1 from the pass-1 totals and the per-unit D_1 sums."""
    out = np.empty(R)
    for r in range(R):
        M, s = totals[r, 0], totals[r, 1]
        if M == -np.inf:
            out[r] = -np.inf  # every weight is zero
            continue
        d = 0.0
        for u in range(r * n_chunks, (r + 1) * n_chunks):
            d += sums[u]
        L = M + np.log(s) - np.log(K)
        out[r] = L - (K - 1.0) * (d / K)
    return out


@njit(cache=True, parallel=True)
def order1_parallel(args, key, K, R):
    n_chunks = (K + CHUNK - 1) // CHUNK
    parts = np.empty((R * n_chunks, 3))
    for u in prange(R * n_chunks):
        _unit_pass1(args, key, K, n_chunks, u, parts)
    totals = combine_pass1(parts, R, n_chunks)
    sums = np.empty(R * n_chunks)
    for u in prange(R * n_chunks):
        _unit_pass2(args, key, K, n_chunks, u, totals, sums)
    return finish_order1(totals, sums, R, n_chunks, K)


@njit(cache=True)
def order1_serial(args, key, K, R):
    n_chunks = (K + CHUNK - 1) // CHUNK
    parts = np.empty((R * n_chunks, 3))
    for u in range(R * n_chunks):
        _unit_pass1(args, key, K, n_chunks, u, parts)
    totals = combine_pass1(parts, R, n_chunks)
    sums = np.empty(R * n_chunks)
    for u in range(R * n_chunks):
        _unit_pass2(args, key, K, n_chunks, u, totals, sums)
    return finish_order1(totals, sums, R, n_chunks, K)


# --------------------------------------------------------------------------- order 2


@njit(cache=True)
def _order2_setup(lw):
    """(M, e, s, i1, i2, T1, T2): the scaled weights e = exp(lw - M), their sum,
    the first maximum i1, the largest other i2, and the sums without i1 and
    without i1, i2 accumulated directly."""
    K = lw.shape[0]
    M = -np.inf
    i1 = 0
    for k in range(K):
        if lw[k] > M:
            M = lw[k]
            i1 = k
    e = np.empty(K)
    for k in range(K):
        e[k] = np.exp(lw[k] - M)
    i2 = 1 if i1 == 0 else 0
    for k in range(K):
        if k != i1 and e[k] > e[i2]:
            i2 = k
    s = 0.0
    T1 = 0.0
    T2 = 0.0
    for k in range(K):
        s += e[k]
        if k != i1:
            T1 += e[k]
            if k != i2:
                T2 += e[k]
    return M, e, s, i1, i2, T1, T2


@njit(cache=True, inline="always")
def _log_or_minus_inf(v):
    return np.log(v) if v > 0 else -np.inf


@njit(cache=True)
def _order2_row(i, e, s, i1, i2, T1, T2, K):
    """sum over j > i of the D_2 term of the pair (i, j)."""
    c2 = np.log(s) + np.log1p(-2.0 / K)
    t = 0.0
    for j in range(i + 1, K):
        if i == i1 or j == i1:
            other = j if i == i1 else i
            S = T2 if other == i2 else T1 - e[other]
            t += _log_or_minus_inf(S) - c2
        else:
            t += np.log1p((2.0 - K * (e[i] + e[j]) / s) / (K - 2.0))
    return t


@njit(cache=True)
def _order2_finish(lw, rows, M, e, s, i1, T1):
    K = lw.shape[0]
    L = M + np.log(s) - np.log(K)
    top = _log_or_minus_inf(T1) - np.log(s) - np.log1p(-1.0 / K)
    d1 = 0.0
    for k in range(K):
        if lw[k] == M:
            d1 += top
        else:
            d1 += np.log1p((1.0 - K * e[k] / s) / (K - 1.0))
    d1 /= K
    d2 = 0.0
    for i in range(K):
        d2 += rows[i]
    d2 /= 0.5 * K * (K - 1.0)
    return L - (K - 1.0) ** 2 * d1 + 0.5 * (K - 2.0) ** 2 * d2


@njit(cache=True)
def jvi2_of(lw):
    """JVI_2 = L_K - (K - 1)^2 D_1 + (K - 2)^2 / 2 D_2 of one replicate's log-weights."""
    M, e, s, i1, i2, T1, T2 = _order2_setup(lw)
    if M == -np.inf:
        return -np.inf
    K = lw.shape[0]
    rows = np.empty(K)
    for i in range(K):
        rows[i] = _order2_row(i, e, s, i1, i2, T1, T2, K)
    return _order2_finish(lw, rows, M, e, s, i1, T1)


@njit(cache=True, parallel=True)
def jvi2_of_parallel_rows(lw):
    """``jvi2_of`` with the rows in parallel (the same sums, added in row order)."""
    M, e, s, i1, i2, T1, T2 = _order2_setup(lw)
    if M == -np.inf:
        return -np.inf
    K = lw.shape[0]
    rows = np.empty(K)
    for i in prange(K):
        rows[i] = _order2_row(i, e, s, i1, i2, T1, T2, K)
    return _order2_finish(lw, rows, M, e, s, i1, T1)


@njit(cache=True)
def _replicate_log_weights(args, key, K, r):
    state = np.empty(4, dtype=np.uint64)
    seed_state(state, key, r, 0)
    lw = np.empty(K)
    buf = np.empty(BLOCK)
    i = 0
    while i < K:
        n = min(BLOCK, K - i)
        call_block(state, buf, n, args)
        for k in range(n):
            lw[i + k] = buf[k]
        i += n
    return lw


@njit(cache=True, parallel=True)
def order2_over_replicates(args, key, K, R):
    out = np.empty(R)
    for r in prange(R):
        out[r] = jvi2_of(_replicate_log_weights(args, key, K, r))
    return out


@njit(cache=True)
def order2_serial(args, key, K, R):
    out = np.empty(R)
    for r in range(R):
        out[r] = jvi2_of(_replicate_log_weights(args, key, K, r))
    return out


@njit(cache=True)
def replicate_log_weights_r(args, key, K, r):
    """(K,) replicate r's log-weights, K <= CHUNK (one unit)."""
    return _replicate_log_weights(args, key, K, r)


# --------------------------------------------------------------------------- entry points


def jackknife_compiled(kind, args, key, K, R, order):
    """(R,) JVI estimates of the given order for a registered block."""
    a = kind(*args)
    if order == 1:
        run = order1_serial if use_serial(K, R) else order1_parallel
        return run(a, key, K, R)
    if R == 1 and not use_serial(K * K // 64, 1):
        return np.array([jvi2_of_parallel_rows(replicate_log_weights_r(a, key, K, 0))])
    run = order2_serial if use_serial(K * K // 64, R) else order2_over_replicates
    return run(a, key, K, R)


def jvi2(lw):
    """JVI_2 of one replicate's log-weights (any path), rows in parallel when K is large."""
    lw = np.ascontiguousarray(lw, dtype=np.float64)
    return float(jvi2_of_parallel_rows(lw) if lw.shape[0] >= 512 else jvi2_of(lw))
