r"""``weight_stats``' sums and each replicate's largest log-weights, in one pass.

PSIS (Vehtari et al. 2024) fits a generalised Pareto distribution to the
M = ceil(min(K/5, 3 sqrt K)) largest importance weights of a replicate, above
the (M+1)-th largest as the threshold.  Those M + 1 values are all it needs,
so instead of the K log-weights each replicate keeps only its ``cap = M + 1``
largest: a buffer of several times that, reduced to its ``cap`` largest by a
quickselect (``nth_smallest``) whenever it fills; after the first reduction a draw not above
the kept minimum is dropped at the cost of one comparison.  Memory is
O(M) = O(sqrt K), not O(K), and the work per draw O(1) amortised.

The pass is ``driver.log_weight_stats``' pass, with the buffer beside it: the
units (replicate r, chunk c) draw from ``seed_state(key, r, c)`` through the
registered block functions (``driver.call_block``) and fold each block into
the driver's accumulator (``reduce.fold_block``), so the sums are bit for bit
those of ``driver.log_weight_stats``.  A kernel with a fused
``draw_and_fold`` has one here too (``register_top_fold``; Categorical's,
which counts draws per category); any other fused kernel is served by its
block function and ``fold_block``.

Units run in waves (``prange`` within a wave), each into its own buffer;
after a wave the units' buffers are offered to their replicates' buffers.
The waves go chunk layer by chunk layer (every replicate's chunk 0 first):
the first runs every replicate's chunk 0 (in the calling thread when R = 1),
the later ones as many units as the memory bound allows, and a unit starts from its replicate's threshold so far: at
K = 1e6 only the first wave's units select their 3001 largest of 16384 (a
quickselect is branchy: ~200 us a chunk), and the later ones pass on the few
draws above the threshold at one branch-freecomparison each.  The ``cap`` largest values of a multiset do not depend on
the order they are offered in, nor on which were dropped as provably below
them (ties are equal values), and each replicate's are sorted at the end (by
NumPy), so the result is bit-identical for any NUMBA_NUM_THREADS.  Memory:
2 R cap + WAVE_DOUBLES doubles during the pass, R cap in the result,
whatever K.
"""

import numpy as np
from numba import njit, prange
from numba.core import types
from numba.extending import overload

from ..categorical import CategoricalArgs, draw_counts
from ..driver import BLOCK, CHUNK, call_block, combine_replicates, use_serial
from ..reduce import NSTATS, fold_block, fold_counts, init_acc
from ..rng import seed_state

#: the units of one wave buffer at most this many values in all (16 MB)
WAVE_DOUBLES = 1 << 21
MAX_WAVE = 1024
UNIT_MIN_BUFFER = 4096


# --------------------------------------------------------------------------- the buffer


@njit(cache=True, inline="always")
def _swap(a, i, j):
    tmp = a[i]
    a[i] = a[j]
    a[j] = tmp


@njit(cache=True)
def nth_smallest(a, n, k):
    """Rearrange a[:n] in place so that a[k] is its k-th smallest value (0-based),
    a[:k] <= a[k] <= a[k+1:n]; returns a[k].  Quickselect with a median-of-three
    pivot and a partition that stops on equal keys, so ties cost nothing extra
    (Numerical Recipes' ``select``): O(n) expected, no allocation."""
    lo = 0
    hi = n - 1
    while True:
        if hi <= lo + 1:
            if hi == lo + 1 and a[hi] < a[lo]:
                _swap(a, lo, hi)
            return a[k]
        mid = (lo + hi) >> 1
        _swap(a, mid, lo + 1)
        if a[lo] > a[hi]:
            _swap(a, lo, hi)
        if a[lo + 1] > a[hi]:
            _swap(a, lo + 1, hi)
        if a[lo] > a[lo + 1]:
            _swap(a, lo, lo + 1)
        i = lo + 1
        j = hi
        pivot = a[lo + 1]
        while True:
            i += 1
            while a[i] < pivot:
                i += 1
            j -= 1
            while a[j] > pivot:
                j -= 1
            if j < i:
                break
            _swap(a, i, j)
        a[lo + 1] = a[j]
        a[j] = pivot
        if j >= k:
            hi = j - 1
        if j <= k:
            lo = i


@njit(cache=True)
def select_top(buf, count, keep):
    """Reduce buf[:count] to its ``keep`` largest values, in buf[:keep] (unordered);
    returns their minimum (the new threshold)."""
    k = count - keep
    t = nth_smallest(buf, count, k)
    for j in range(keep):
        buf[j] = buf[k + j]
    return t


@njit(cache=True)
def offer_block(buf, count, t, primed, keep, lw, n):
    """Offer lw[:n] to a top-``keep`` buffer; returns (count, t, primed).

    buf[:count] holds a superset of the ``keep`` largest values offered so
    far.  Once ``primed``, ``keep`` values >= t are known to exist (in the
    buffer, or in the replicate's buffer a unit started from), so a value not
    above t cannot be among the largest and is dropped: one comparison, and
    no branch (the value is written, and the count advances by ``v > t``).
    When the buffer (capacity buf.shape[0] > keep) fills, it is reduced to its
    ``keep`` largest (``select_top``)."""
    cap = buf.shape[0]
    k = 0
    while k < n:
        if primed and count + (n - k) <= cap:
            for j in range(k, n):
                v = lw[j]
                buf[count] = v
                count += v > t
            return count, t, primed
        v = lw[k]
        k += 1
        if primed and not v > t:
            continue
        if count == cap:
            t = select_top(buf, count, keep)
            count = keep
            primed = True
            if not v > t:
                continue
        buf[count] = v
        count += 1
    return count, t, primed


@njit(cache=True)
def offer_counts(buf, count, t, primed, keep, counts, values):
    """Offer ``counts[c]`` copies of ``values[c]`` for every c (the same result
    as ``offer_block`` on the expanded block); returns (count, t, primed)."""
    cap = buf.shape[0]
    for c in range(values.shape[0]):
        v = values[c]
        remaining = int(min(counts[c], keep))
        while remaining > 0:
            if primed and not v > t:
                break
            if count == cap:
                t = select_top(buf, count, keep)
                count = keep
                primed = True
                continue
            m = min(remaining, cap - count)
            for j in range(m):
                buf[count + j] = v
            count += m
            remaining -= m
    return count, t, primed


# --------------------------------------------------------------------------- one block

_TOP_FUSED = {}


def register_top_fold(args_type, fold):
    """``fold(state, acc, lw, n, args, buf, count, t, primed, keep) -> (count, t, primed)``:
    draw n samples, fold them into ``acc`` with the same sums as the kernel's
    ``draw_and_fold`` and offer their log-weights to the buffer (``offer_block``)."""
    if _TOP_FUSED.get(args_type, fold) is not fold:
        raise ValueError(f"args_type: a different top fold is already registered for {args_type!r}")
    _TOP_FUSED[args_type] = fold
    return args_type


def draw_fold_top(state, acc, lw, n, args, buf, count, t, primed, keep):
    """Draw n samples, fold them into ``acc`` and offer them to the buffer (numba only)."""
    raise NotImplementedError("draw_fold_top is resolved inside numba-compiled code only")


@overload(draw_fold_top)
def _draw_fold_top(state, acc, lw, n, args, buf, count, t, primed, keep):
    if not isinstance(args, types.BaseNamedTuple):
        return None
    fused = _TOP_FUSED.get(args.instance_class)
    if fused is not None:

        def impl(state, acc, lw, n, args, buf, count, t, primed, keep):
            return fused(state, acc, lw, n, args, buf, count, t, primed, keep)

        return impl

    def impl(state, acc, lw, n, args, buf, count, t, primed, keep):
        call_block(state, lw, n, args)
        fold_block(acc, lw, n)
        return offer_block(buf, count, t, primed, keep, lw, n)

    return impl


@njit(cache=True)
def categorical_fold_top(state, acc, lw, n, args, buf, count, t, primed, keep):
    """Categorical's ``draw_and_fold`` (the same uniforms, counts and
    ``fold_counts``), with the counted log-weights offered to the buffer."""
    keep_p, pair, table, top, exp_below_top = args
    counts = draw_counts(state, lw, n, keep_p, pair)  # categorical.draw_and_fold's categories
    fold_counts(acc, counts, table, top, exp_below_top)
    return offer_counts(buf, count, t, primed, keep, counts, table)


register_top_fold(CategoricalArgs, categorical_fold_top)


# --------------------------------------------------------------------------- units and waves


@njit(cache=True)
def run_unit_top(args, key, K, n_chunks, u, parts, bufs, counts, slot, keep, t, primed):
    """Unit u's sums into parts[u]; a superset of its log-weights among the
    ``keep`` largest, above t when ``primed``, into bufs[slot, :counts[slot]]
    (at most ``keep`` of them)."""
    r = u // n_chunks
    c = u - r * n_chunks
    state = np.empty(4, dtype=np.uint64)
    seed_state(state, key, r, c)
    lw = np.empty(BLOCK)
    acc = np.empty(NSTATS)
    init_acc(acc)
    buf = bufs[slot]
    count = 0
    start = c * CHUNK
    stop = min(K, start + CHUNK)
    i = start
    while i < stop:
        n = min(BLOCK, stop - i)
        count, t, primed = draw_fold_top(state, acc, lw, n, args, buf, count, t, primed, keep)
        i += n
    if count > keep:
        select_top(buf, count, keep)
        count = keep
    for j in range(NSTATS):
        parts[u, j] = acc[j]
    counts[slot] = count


@njit(cache=True)
def wave_layout(K, R, cap):
    """(n_chunks, kept per replicate, kept per unit, a unit's buffer, largest wave)."""
    n_chunks = (K + CHUNK - 1) // CHUNK
    size = min(cap, K)
    ukeep = min(size, CHUNK)
    ubuf = min(max(4 * ukeep, UNIT_MIN_BUFFER), CHUNK)
    wave = max(1, min(MAX_WAVE, WAVE_DOUBLES // ubuf, R * n_chunks))
    return n_chunks, size, ukeep, ubuf, wave


@njit(cache=True, inline="always")
def scheduled_unit(j, R, n_chunks):
    """The unit (replicate r, chunk c) -> r n_chunks + c run j-th: chunk layer by
    chunk layer (every replicate's chunk 0, then every chunk 1, ...)."""
    c = j // R
    r = j - c * R
    return r * n_chunks + c


@njit(cache=True)
def next_wave(j, first, wave_max, n_units):
    """How many units the wave starting at schedule position j runs: ``first``
    (every replicate's first chunk), then ``wave_max`` at a time.  The later
    waves start from their replicates' thresholds, so most of their draws cost
    one comparison; few waves, because each ``prange`` launch can cost a
    scheduler quantum on a busy machine."""
    return min(first if j == 0 else wave_max, n_units - j)


@njit(cache=True)
def merge_wave(bufs, counts, nw, j0, R, n_chunks, tops, top_counts, top_t, top_primed, size):
    """Offer the buffers of the wave's units to their replicates'; a replicate
    holding ``size`` values or more is reduced to its ``size`` largest, so its
    threshold is known to the next wave's units."""
    for i in range(nw):
        r = scheduled_unit(j0 + i, R, n_chunks) // n_chunks
        count, t, primed = offer_block(tops[r], top_counts[r], top_t[r], top_primed[r], size, bufs[i], counts[i])
        if not primed and count >= size:
            t = select_top(tops[r], count, size)
            count = size
            primed = True
        top_counts[r], top_t[r], top_primed[r] = count, t, primed


@njit(cache=True)
def final_tops(tops, top_counts, size):
    """(R, size): each replicate's ``size`` largest values (unordered)."""
    R = tops.shape[0]
    out = np.empty((R, size))
    for r in range(R):
        count = top_counts[r]
        if count > size:
            select_top(tops[r], count, size)
        for j in range(size):
            out[r, j] = tops[r, j]
    return out


@njit(cache=True)
def top_state(R, size):
    """Each replicate's buffer (twice its ``size``), count, threshold and primed flag."""
    return np.empty((R, 2 * size)), np.zeros(R, dtype=np.int64), np.full(R, -np.inf), np.zeros(R, dtype=np.bool_)


@njit(cache=True, parallel=True)
def top_stats_parallel(args, key, K, R, cap):
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
        if nw == 1:  # R = 1's first chunk: no prange launch for one unit
            u = scheduled_unit(j0, R, n_chunks)
            run_unit_top(args, key, K, n_chunks, u, parts, bufs, counts, 0, ukeep, top_t[0], top_primed[0])
        else:
            for i in prange(nw):
                u = scheduled_unit(j0 + i, R, n_chunks)
                r = u // n_chunks
                run_unit_top(args, key, K, n_chunks, u, parts, bufs, counts, i, ukeep, top_t[r], top_primed[r])
        merge_wave(bufs, counts, nw, j0, R, n_chunks, tops, top_counts, top_t, top_primed, size)
        j0 += nw
    return combine_replicates(parts, R, n_chunks), final_tops(tops, top_counts, size)


@njit(cache=True)
def top_stats_serial(args, key, K, R, cap):
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
            run_unit_top(args, key, K, n_chunks, u, parts, bufs, counts, i, ukeep, top_t[r], top_primed[r])
        merge_wave(bufs, counts, nw, j0, R, n_chunks, tops, top_counts, top_t, top_primed, size)
        j0 += nw
    return combine_replicates(parts, R, n_chunks), final_tops(tops, top_counts, size)


# --------------------------------------------------------------------------- raw log-weights


@njit(cache=True)
def _chunk_log_weights(args, key, K, c, out):
    state = np.empty(4, dtype=np.uint64)
    seed_state(state, key, 0, c)
    lw = np.empty(BLOCK)
    start = c * CHUNK
    stop = min(K, start + CHUNK)
    i = start
    while i < stop:
        n = min(BLOCK, stop - i)
        call_block(state, lw, n, args)
        for k in range(n):
            out[i + k] = lw[k]
        i += n


@njit(cache=True, parallel=True)
def log_weights_parallel(args, key, K):
    """(K,) the log-weights of replicate 0, chunk by chunk from its streams."""
    out = np.empty(K)
    n_chunks = (K + CHUNK - 1) // CHUNK
    for c in prange(n_chunks):
        _chunk_log_weights(args, key, K, c, out)
    return out


@njit(cache=True)
def log_weights_serial(args, key, K):
    out = np.empty(K)
    n_chunks = (K + CHUNK - 1) // CHUNK
    for c in range(n_chunks):
        _chunk_log_weights(args, key, K, c, out)
    return out


@njit(cache=True)
def _top_of(lw, size):
    buf = np.empty(2 * size)
    count, _, _ = offer_block(buf, 0, -np.inf, False, size, lw, lw.shape[0])
    if count > size:
        select_top(buf, count, size)
    return buf[:size].copy()


def top_of(lw, cap):
    """The min(cap, n) largest values of lw, ascending (through the same buffer)."""
    return np.sort(_top_of(np.ascontiguousarray(lw, dtype=np.float64), min(cap, len(lw))))


def top_stats(kind, args, key, K, R, cap):
    """((R, 3) sums as ``driver.log_weight_stats``, (R, min(cap, K)) largest log-weights ascending)."""
    run = top_stats_serial if use_serial(K, R) else top_stats_parallel
    out, top = run(kind(*args), key, K, R, cap)
    return out, np.sort(top, axis=1)


def replicate_log_weights(kind, args, key, K):
    """(K,) the log-weights of replicate 0 (the draws of ``weight_stats``' replicate 0)."""
    run = log_weights_serial if use_serial(K, 1) else log_weights_parallel
    return run(kind(*args), key, K)
