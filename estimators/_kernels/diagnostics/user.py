r"""The tail pass and the raw log-weights for a user's ``compiled_log_joint``.

The counterparts of ``tail.top_stats`` and ``tail.replicate_log_weights`` for
the compiled user driver (``_kernels.user_driver``): the same units, streams,
affine draws, blocks and reductions, with each replicate's largest
log-weights kept in the same buffers and merged in the same waves.  The user's
function is an argument, so these compile once per process and function
(numba cannot cache them), like ``user_driver``.
"""

import numpy as np
from numba import njit, prange

from ..driver import BLOCK, CHUNK, combine_replicates, use_serial
from ..reduce import NSTATS, fold_block, init_acc
from ..rng import seed_state
from ..user_driver import user_block
from .tail import final_tops, merge_wave, next_wave, offer_block, scheduled_unit, select_top, top_state, wave_layout


@njit
def _user_unit_top(f, x, loc, T, diagonal, normal_base, log_q_const, key, K, n_chunks, u, parts, bufs, counts, slot, keep, t, primed):
    r = u // n_chunks
    c = u - r * n_chunks
    state = np.empty(4, dtype=np.uint64)
    seed_state(state, key, r, c)
    d = loc.shape[0]
    ub = np.empty((BLOCK, d))
    z = np.empty((BLOCK, d))
    lw = np.empty(BLOCK)
    acc = np.empty(NSTATS)
    init_acc(acc)
    buf = bufs[slot]
    count = 0
    start = c * CHUNK
    stop = min(K, start + CHUNK)
    for i in range(start, stop, BLOCK):
        n = min(BLOCK, stop - i)
        user_block(f, x, loc, T, diagonal, normal_base, log_q_const, state, ub, z, lw, n)
        fold_block(acc, lw, n)
        count, t, primed = offer_block(buf, count, t, primed, keep, lw, n)
    if count > keep:
        select_top(buf, count, keep)
        count = keep
    for j in range(NSTATS):
        parts[u, j] = acc[j]
    counts[slot] = count


@njit(parallel=True)
def user_top_parallel(f, x, loc, T, diagonal, normal_base, log_q_const, key, K, R, cap):
    n_chunks, size, ukeep, ubuf, wave = wave_layout(K, R, cap)
    n_units = R * n_chunks
    parts = np.empty((n_units, NSTATS))
    bufs = np.empty((wave, ubuf))
    counts = np.zeros(wave, dtype=np.int64)
    tops, top_counts, top_t, top_primed = top_state(R, size)
    first = min(wave, R)
    j0 = 0
    while j0 < n_units:
        nw = next_wave(j0, first, wave, n_units)
        if nw == 1:
            u = scheduled_unit(j0, R, n_chunks)
            _user_unit_top(f, x, loc, T, diagonal, normal_base, log_q_const, key, K, n_chunks, u, parts, bufs, counts, 0, ukeep, top_t[0], top_primed[0])
        else:
            for i in prange(nw):
                u = scheduled_unit(j0 + i, R, n_chunks)
                r = u // n_chunks
                _user_unit_top(f, x, loc, T, diagonal, normal_base, log_q_const, key, K, n_chunks, u, parts, bufs, counts, i, ukeep, top_t[r], top_primed[r])
        merge_wave(bufs, counts, nw, j0, R, n_chunks, tops, top_counts, top_t, top_primed, size)
        j0 += nw
    return combine_replicates(parts, R, n_chunks), final_tops(tops, top_counts, size)


@njit
def user_top_serial(f, x, loc, T, diagonal, normal_base, log_q_const, key, K, R, cap):
    n_chunks, size, ukeep, ubuf, wave = wave_layout(K, R, cap)
    n_units = R * n_chunks
    parts = np.empty((n_units, NSTATS))
    bufs = np.empty((wave, ubuf))
    counts = np.zeros(wave, dtype=np.int64)
    tops, top_counts, top_t, top_primed = top_state(R, size)
    first = min(wave, R)
    j0 = 0
    while j0 < n_units:
        nw = next_wave(j0, first, wave, n_units)
        for i in range(nw):
            u = scheduled_unit(j0 + i, R, n_chunks)
            r = u // n_chunks
            _user_unit_top(f, x, loc, T, diagonal, normal_base, log_q_const, key, K, n_chunks, u, parts, bufs, counts, i, ukeep, top_t[r], top_primed[r])
        merge_wave(bufs, counts, nw, j0, R, n_chunks, tops, top_counts, top_t, top_primed, size)
        j0 += nw
    return combine_replicates(parts, R, n_chunks), final_tops(tops, top_counts, size)


@njit
def _user_chunk_log_weights(f, x, loc, T, diagonal, normal_base, log_q_const, key, K, c, out):
    state = np.empty(4, dtype=np.uint64)
    seed_state(state, key, 0, c)
    d = loc.shape[0]
    ub = np.empty((BLOCK, d))
    z = np.empty((BLOCK, d))
    lw = np.empty(BLOCK)
    start = c * CHUNK
    stop = min(K, start + CHUNK)
    for i in range(start, stop, BLOCK):
        n = min(BLOCK, stop - i)
        user_block(f, x, loc, T, diagonal, normal_base, log_q_const, state, ub, z, lw, n)
        for k in range(n):
            out[i + k] = lw[k]


@njit(parallel=True)
def user_log_weights_parallel(f, x, loc, T, diagonal, normal_base, log_q_const, key, K):
    out = np.empty(K)
    for c in prange((K + CHUNK - 1) // CHUNK):
        _user_chunk_log_weights(f, x, loc, T, diagonal, normal_base, log_q_const, key, K, c, out)
    return out


@njit
def user_log_weights_serial(f, x, loc, T, diagonal, normal_base, log_q_const, key, K):
    out = np.empty(K)
    for c in range((K + CHUNK - 1) // CHUNK):
        _user_chunk_log_weights(f, x, loc, T, diagonal, normal_base, log_q_const, key, K, c, out)
    return out


def user_top_stats(user_args, key, K, R, cap):
    """``tail.top_stats`` for ``user_args = (f, x, loc, T, diagonal, normal_base, log_q_const)``."""
    run = user_top_serial if use_serial(K, R) else user_top_parallel
    out, top = run(*user_args, key, K, R, cap)
    return out, np.sort(top, axis=1)


def user_log_weights(user_args, key, K):
    """``tail.replicate_log_weights`` for a user's compiled log-joint."""
    run = user_log_weights_serial if use_serial(K, 1) else user_log_weights_parallel
    return run(*user_args, key, K)
