r"""Power sums of the importance weights, :math:`\log \sum_k w_k^s`, streamed.

The Renyi (VR) bound and CUBO estimators are log-sum-exps of scaled
log-weights: :math:`\log\sum_k e^{s \ell_k}` with s = 1 - alpha or s = n.
One pass over the units of ``driver`` (the same streams and block functions,
so the draws of ``weight_stats``), each block scaled by s and folded into a
running (max, scaled sum) pair, rescaling when the maximum grows; units are
combined per replicate in chunk order, so the result is bit-identical for any
NUMBA_NUM_THREADS.

A weight of 0 (log-weight -inf) raised to a negative power is +inf: the sum
is then +inf (sticky), never NaN.  All terms zero give -inf.
"""

import numpy as np
from numba import njit, prange

from ..driver import BLOCK, CHUNK, call_block, use_serial
from ..rng import seed_state


@njit(cache=True, inline="always")
def _merge(acc, m_new, s_new):
    """Fold the sum e^m_new s_new into acc = (max, scaled sum); +inf is sticky."""
    if m_new == -np.inf or acc[0] == np.inf:
        return
    if m_new == np.inf:
        acc[0] = np.inf
        acc[1] = 1.0
        return
    m_old = acc[0]
    if m_new > m_old:
        acc[1] = acc[1] * np.exp(m_old - m_new) + s_new
        acc[0] = m_new
    else:
        acc[1] += s_new * np.exp(m_new - m_old)


@njit(cache=True)
def fold_power_block(acc, lw, n, s):
    """Fold e^{s lw[k]}, k < n, into acc = (max, scaled sum)."""
    m = -np.inf
    for k in range(n):
        v = s * lw[k] if lw[k] != -np.inf else (np.inf if s < 0 else -np.inf)
        if v > m:
            m = v
    if m == -np.inf or m == np.inf:
        _merge(acc, m, 1.0)
        return
    total = 0.0
    for k in range(n):
        if lw[k] != -np.inf:
            total += np.exp(s * lw[k] - m)
    _merge(acc, m, total)


@njit(cache=True)
def fold_power_unit(lw, s, out):
    """out[:2] <- the (max, scaled sum) of one unit's log-weights, BLOCK by BLOCK
    (the generic path's counterpart of ``run_unit_power``)."""
    out[0] = -np.inf
    out[1] = 0.0
    n = lw.shape[0]
    for i in range(0, n, BLOCK):
        m = min(BLOCK, n - i)
        fold_power_block(out, lw[i : i + m], m, s)


@njit(cache=True)
def run_unit_power(args, key, K, n_chunks, u, s, parts):
    r = u // n_chunks
    c = u - r * n_chunks
    state = np.empty(4, dtype=np.uint64)
    seed_state(state, key, r, c)
    lw = np.empty(BLOCK)
    acc = parts[u]
    acc[0] = -np.inf
    acc[1] = 0.0
    start = c * CHUNK
    stop = min(K, start + CHUNK)
    i = start
    while i < stop:
        n = min(BLOCK, stop - i)
        call_block(state, lw, n, args)
        fold_power_block(acc, lw, n, s)
        i += n


@njit(cache=True)
def combine_power(parts, R, n_chunks):
    """(R,) log sum_k e^{s lw_k}: each replicate's units in chunk order."""
    out = np.empty(R)
    acc = np.empty(2)
    for r in range(R):
        acc[0] = -np.inf
        acc[1] = 0.0
        for u in range(r * n_chunks, (r + 1) * n_chunks):
            _merge(acc, parts[u, 0], parts[u, 1])
        if acc[0] == np.inf:
            out[r] = np.inf
        elif acc[1] > 0:
            out[r] = acc[0] + np.log(acc[1])
        else:
            out[r] = -np.inf
    return out


@njit(cache=True, parallel=True)
def power_sums_parallel(args, key, K, R, s):
    n_chunks = (K + CHUNK - 1) // CHUNK
    parts = np.empty((R * n_chunks, 2))
    for u in prange(R * n_chunks):
        run_unit_power(args, key, K, n_chunks, u, s, parts)
    return combine_power(parts, R, n_chunks)


@njit(cache=True)
def power_sums_serial(args, key, K, R, s):
    n_chunks = (K + CHUNK - 1) // CHUNK
    parts = np.empty((R * n_chunks, 2))
    for u in range(R * n_chunks):
        run_unit_power(args, key, K, n_chunks, u, s, parts)
    return combine_power(parts, R, n_chunks)


def power_sums(kind, args, key, K, R, s):
    """(R,) log sum_k w_k^s per replicate, for the block whose argument type is ``kind``."""
    run = power_sums_serial if use_serial(K, R) else power_sums_parallel
    return run(kind(*args), key, K, R, float(s))
