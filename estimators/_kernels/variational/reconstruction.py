r"""The reconstruction sum of the linear-Gaussian model under an affine proposal.

Per replicate, :math:`\sum_{k=1}^K \log p(x \mid z_k)` with
:math:`z_k = loc + T u_k` drawn exactly as ``linear_gaussian.block`` draws them
(same streams, same BLOCK layout, so the same z as ``weight_stats``), and

.. math::
    \log p(x \mid z) = -\tfrac12 \sum_i \log(2\pi\psi_i)
        - \tfrac12 \sum_i \psi_i^{-1} \big(x_i - b_i - (W z)_i\big)^2 .

Units (replicate r, chunk c) are summed in draw order and combined per
replicate in chunk order: bit-identical for any NUMBA_NUM_THREADS.
"""

import numpy as np
from numba import njit, prange

from ..driver import BLOCK, CHUNK, use_serial
from ..linear_gaussian import SAFE_FASTMATH, draw_affine
from ..rng import seed_state


@njit(cache=True, fastmath=SAFE_FASTMATH)
def log_lik_rows(z, n, xb, W, inv_psi, log_lik_const, out):
    """out[k] <- log p(x | z_k) for k < n, with xb = x - b."""
    D, d = W.shape
    for k in range(n):
        quad = 0.0
        for i in range(D):
            r = xb[i]
            for j in range(d):
                r -= W[i, j] * z[k, j]
            quad += r * r * inv_psi[i]
        out[k] = log_lik_const - 0.5 * quad


@njit(cache=True)
def recon_unit(loc, T, diagonal, normal_base, xb, W, inv_psi, log_lik_const, key, K, n_chunks, u):
    """sum of log p(x | z_k) over the draws of unit u = (r, c)."""
    r = u // n_chunks
    c = u - r * n_chunks
    state = np.empty(4, dtype=np.uint64)
    seed_state(state, key, r, c)
    d = loc.shape[0]
    ub = np.empty((BLOCK, d))
    zb = np.empty((BLOCK, d))
    ll = np.empty(BLOCK)
    start = c * CHUNK
    stop = min(K, start + CHUNK)
    total = 0.0
    i = start
    while i < stop:
        n = min(BLOCK, stop - i)
        draw_affine(state, ub, zb, n, loc, T, diagonal, normal_base)
        log_lik_rows(zb, n, xb, W, inv_psi, log_lik_const, ll)
        block_sum = 0.0
        for k in range(n):
            block_sum += ll[k]
        total += block_sum
        i += n
    return total


@njit(cache=True)
def _combine(parts, R, n_chunks):
    out = np.zeros(R)
    for r in range(R):
        acc = 0.0
        for c in range(n_chunks):
            acc += parts[r * n_chunks + c]
        out[r] = acc
    return out


@njit(cache=True)
def recon_sums_serial(loc, T, diagonal, normal_base, xb, W, inv_psi, log_lik_const, key, K, R):
    n_chunks = (K + CHUNK - 1) // CHUNK
    parts = np.empty(R * n_chunks)
    for u in range(R * n_chunks):
        parts[u] = recon_unit(loc, T, diagonal, normal_base, xb, W, inv_psi, log_lik_const, key, K, n_chunks, u)
    return _combine(parts, R, n_chunks)


@njit(cache=True, parallel=True)
def recon_sums_parallel(loc, T, diagonal, normal_base, xb, W, inv_psi, log_lik_const, key, K, R):
    n_chunks = (K + CHUNK - 1) // CHUNK
    parts = np.empty(R * n_chunks)
    for u in prange(R * n_chunks):
        parts[u] = recon_unit(loc, T, diagonal, normal_base, xb, W, inv_psi, log_lik_const, key, K, n_chunks, u)
    return _combine(parts, R, n_chunks)


def recon_sums(loc, T, diagonal, normal_base, xb, W, inv_psi, log_lik_const, key, K, R):
    """(R,) sum_k log p(x | z_k) per replicate; arguments validated float64, C-contiguous."""
    run = recon_sums_serial if use_serial(K, R) else recon_sums_parallel
    return run(loc, T, diagonal, normal_base, xb, W, inv_psi, log_lik_const, np.uint64(key), K, R)
