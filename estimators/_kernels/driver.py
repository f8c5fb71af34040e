r"""The driver every log-weight estimator runs through.

The R x K samples are cut into units (replicate r, chunk c) of at most
``CHUNK`` samples.  Each unit has its own RNG stream
(``rng.seed_state(key, r, c)``) and a ``BLOCK``-sized scratch buffer, so
memory does not grow with K.  Per-unit accumulators are then combined per
replicate in chunk order, so the answer does not depend on which thread ran
which unit -- nor on whether the units ran in parallel at all.

``block_fn(state, lw, n, args)`` is a problem/proposal-specific njit function
that draws n latents from q with ``state`` and writes their log-weights
log p(x, z) - log q(z) into lw[:n].

Launching a ``prange`` loop costs tens of microseconds on an idle machine and
up to a scheduler quantum on a busy one, so calls with fewer than
``PARALLEL_MIN_SAMPLES`` samples in all run the same units serially
(``log_weight_stats_serial``): the same numbers, without the launch.
"""

import numpy as np
from numba import njit, prange

from .reduce import NSTATS, combine, fold_block, init_acc
from .rng import seed_state

CHUNK = 16384  # samples per unit of parallel work (fixed: reproducibility)
BLOCK = 256  # samples per scratch block inside a unit
PARALLEL_MIN_SAMPLES = 1 << 15


@njit(cache=True)
def run_unit(block_fn, args, key, K, n_chunks, u, parts):
    """Draw and fold the samples of unit u into parts[u]."""
    r = u // n_chunks
    c = u - r * n_chunks
    state = np.empty(4, dtype=np.uint64)
    seed_state(state, key, r, c)
    lw = np.empty(BLOCK)
    acc = np.empty(NSTATS)
    init_acc(acc)
    start = c * CHUNK
    stop = min(K, start + CHUNK)
    i = start
    while i < stop:
        n = min(BLOCK, stop - i)
        block_fn(state, lw, n, args)
        fold_block(acc, lw, n)
        i += n
    for j in range(NSTATS):
        parts[u, j] = acc[j]


@njit(cache=True)
def combine_replicates(parts, R, n_chunks):
    out = np.empty((R, 3))
    for r in range(R):
        combine(parts, r * n_chunks, (r + 1) * n_chunks, out[r])
    return out


@njit(cache=True, parallel=True)
def log_weight_stats_parallel(block_fn, args, key, K, R):
    n_chunks = (K + CHUNK - 1) // CHUNK
    parts = np.empty((R * n_chunks, NSTATS))
    for u in prange(R * n_chunks):
        run_unit(block_fn, args, key, K, n_chunks, u, parts)
    return combine_replicates(parts, R, n_chunks)


@njit(cache=True)
def log_weight_stats_serial(block_fn, args, key, K, R):
    n_chunks = (K + CHUNK - 1) // CHUNK
    parts = np.empty((R * n_chunks, NSTATS))
    for u in range(R * n_chunks):
        run_unit(block_fn, args, key, K, n_chunks, u, parts)
    return combine_replicates(parts, R, n_chunks)


def log_weight_stats(block_fn, args, key, K, R):
    """(R, 3) array: log sum_k w_k, log sum_k w_k^2, sum_k log w_k per replicate."""
    if K * R < PARALLEL_MIN_SAMPLES or (K + CHUNK - 1) // CHUNK * R < 2:
        return log_weight_stats_serial(block_fn, args, key, K, R)
    return log_weight_stats_parallel(block_fn, args, key, K, R)
