r"""The compiled driver for a user's numba log-density (``compiled_log_joint``).

A user's model may offer ``compiled_log_joint``, an ``@njit`` function
``f(x, z) -> float`` of one sample.  With a Gaussian, MultivariateGaussian or
Uniform q (an affine map of normal or uniform base draws) importance sampling
and the ELBO then run here: the same (replicate, chunk) units, streams,
blocks and fixed-order reduction as ``driver.log_weight_stats``, in parallel.

The user's function is an argument of these drivers, so they are compiled
once per process for each function (numba cannot cache code that calls a
function it was handed); ``estimators.warm_up`` does it outside any timing.
"""

import numpy as np
from numba import njit, prange

from .driver import BLOCK, CHUNK
from .driver import combine_replicates
from .linear_gaussian import affine_log_q, draw_affine
from .reduce import NSTATS, fold_block, init_acc
from .rng import seed_state


@njit
def user_block(f, x, loc, T, diagonal, normal_base, log_q_const, state, ub, z, lw, n):
    """lw[:n] <- f(x, z_k) - log q(z_k) for n fresh affine draws z_k (base draws kept in ub)."""
    draw_affine(state, ub, z, n, loc, T, diagonal, normal_base)
    for k in range(n):
        lw[k] = f(x, z[k]) - affine_log_q(ub, k, log_q_const, normal_base)


@njit
def _user_unit(f, x, loc, T, diagonal, normal_base, log_q_const, key, K, n_chunks, u, parts):
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
    start = c * CHUNK
    stop = min(K, start + CHUNK)
    for i in range(start, stop, BLOCK):
        n = min(BLOCK, stop - i)
        user_block(f, x, loc, T, diagonal, normal_base, log_q_const, state, ub, z, lw, n)
        fold_block(acc, lw, n)
    for j in range(NSTATS):
        parts[u, j] = acc[j]


@njit(parallel=True)
def user_stats_parallel(f, x, loc, T, diagonal, normal_base, log_q_const, key, K, R):
    n_chunks = (K + CHUNK - 1) // CHUNK
    parts = np.empty((R * n_chunks, NSTATS))
    for u in prange(R * n_chunks):
        _user_unit(f, x, loc, T, diagonal, normal_base, log_q_const, key, K, n_chunks, u, parts)
    return combine_replicates(parts, R, n_chunks)


@njit
def user_stats_serial(f, x, loc, T, diagonal, normal_base, log_q_const, key, K, R):
    n_chunks = (K + CHUNK - 1) // CHUNK
    parts = np.empty((R * n_chunks, NSTATS))
    for u in range(R * n_chunks):
        _user_unit(f, x, loc, T, diagonal, normal_base, log_q_const, key, K, n_chunks, u, parts)
    return combine_replicates(parts, R, n_chunks)
