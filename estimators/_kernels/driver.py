r"""The one parallel driver every log-weight estimator runs through.

The R x K samples are cut into units (replicate r, chunk c) of at most
``CHUNK`` samples; ``prange`` runs the units, each with its own RNG stream
(``rng.seed_state(key, r, c)``) and a ``BLOCK``-sized scratch buffer, so
memory does not grow with K.  Per-unit accumulators are then combined per
replicate in chunk order, so the answer does not depend on the thread count.

``block_fn(state, lw, n, args)`` is a problem/proposal-specific njit function
that draws n latents from q with ``state`` and writes their log-weights
log p(x, z) - log q(z) into lw[:n].
"""

import numpy as np
from numba import njit, prange

from .reduce import NSTATS, combine, fold_block, init_acc
from .rng import seed_state

CHUNK = 16384  # samples per unit of parallel work (fixed: reproducibility)
BLOCK = 256  # samples per scratch block inside a unit


@njit(cache=True, parallel=True)
def log_weight_stats(block_fn, args, key, K, R):
    """(R, 3) array: log sum_k w_k, log sum_k w_k^2, sum_k log w_k per replicate."""
    n_chunks = (K + CHUNK - 1) // CHUNK
    units = R * n_chunks
    parts = np.empty((units, NSTATS))
    for u in prange(units):
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
    out = np.empty((R, 3))
    for r in range(R):
        combine(parts, r * n_chunks, (r + 1) * n_chunks, out[r])
    return out
