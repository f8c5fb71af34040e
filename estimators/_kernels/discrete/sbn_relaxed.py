r"""Gumbel-softmax and straight-through ELBO gradients on ``SBNModel``, in blocks
of samples (the path ``bernoulli.means`` takes for these two methods on a
sigmoid belief net).

The terms are those of ``bernoulli`` (and of ``estimators.discrete_gradients``):

* Gumbel-softmax: :math:`\nabla_z \log p(x, \zeta) \odot \zeta(1 - \zeta)/\tau` with
  :math:`\zeta = \sigma((\theta - \mathrm{logit}\,u)/\tau)`, computed as
  :math:`\zeta_j = 1 / (1 + \gamma_j\, \rho^{1/\tau})`, :math:`\rho = u/(1 - u)`,
  :math:`\gamma_j = e^{-\theta_j/\tau}` -- the same number (an identity of the
  logistic), with :math:`\rho^{1/\tau}` a product of :math:`1/\tau` factors when
  :math:`1/\tau` is an integer up to 8 (the default :math:`\tau = 1/2` needs one
  multiplication and no logarithm), else :math:`e^{\log(\rho)/\tau}`; a coordinate with
  :math:`|\theta_j/\tau| > 700`, where :math:`\gamma_j` would overflow, keeps the
  textbook formula.
* straight-through: the features :math:`\phi = x - \sigma(W b + b_0)`,
  :math:`b = 1[u < \pi]`, summed over the unit and mapped once to
  :math:`(n c + W^T \textstyle\sum \phi) \odot \pi(1 - \pi)`.

Per block of ``BLOCK`` samples the work is one pass of m uniforms per sample (the
unit's xoshiro256** stream in sample order, so straight-through's b are the draws
``score`` sees with the same seed), the activations :math:`a = W z + b_0` as m
axpys of length D per sample, :math:`e^{-|a|}` by the vectorisable
``vexp.exp_nonpositive`` over the whole block (the dominant cost: D exponentials
per sample), :math:`\sigma(a)` from it, and for Gumbel-softmax the m dot products
of :math:`W^T(x - \sigma(a))`.  The inner loops run over contiguous rows, so LLVM
vectorises them; ``bernoulli``'s per-sample path called libm's ``exp`` and ``log``
for every activation and coordinate, which does not vectorise.

Layout and reproducibility are ``bernoulli``'s: units (replicate r, chunk c) of at
most ``CHUNK`` samples from ``seed_state(key, r, c)``, each unit's terms summed in
sample order and the units of a replicate in chunk order, so the result is
bit-identical for any NUMBA_NUM_THREADS.  The block functions carry the safe
fastmath subset and are called (not inlined) from the unit, whose serial and
parallel drivers then run the same machine code.
"""

import numpy as np
from numba import njit, prange

from ..driver import CHUNK, PARALLEL_MIN_COSTLY_SAMPLES, use_serial
from ..rng import fill_uniform, seed_state
from ..vexp import exp_nonpositive

SAFE_FASTMATH = {"reassoc", "contract", "arcp", "nsz"}

#: samples per block: the block's (BLOCK, D) scratch stays in L1 for D = 64
BLOCK = 32
#: the largest integer 1/tau taken as a product of factors
MAX_POWER = 8
#: |theta_j / tau| above this keeps sigma((theta_j - logit u)/tau) (exp(-theta_j/tau) would overflow)
DIRECT_LIMIT = 700.0

#: the method codes of these two (``bernoulli.CODES`` takes them from here)
GUMBEL_SOFTMAX, STRAIGHT_THROUGH = 3, 4


def integer_power(tau):
    """1/tau if it is an integer in [1, MAX_POWER], else 0 (use exp(log(rho)/tau))."""
    inv = 1.0 / tau
    r = round(inv)
    return int(r) if 1 <= r <= MAX_POWER and inv == float(r) else 0


@njit(cache=True, fastmath=SAFE_FASTMATH)
def _relaxed_block(theta, gamma, direct, tau, power, U, n, Z):
    """Z[:n] <- zeta of the block's uniforms U[:n m] (row k: sample k)."""
    m = theta.shape[0]
    inv_tau = 1.0 / tau
    for k in range(n):
        for j in range(m):
            u = U[k * m + j]
            if direct[j]:
                rho = u / (1.0 - u)
                if power > 0:
                    t = rho
                    for _ in range(power - 1):
                        t *= rho
                else:
                    t = np.exp(np.log(rho) * inv_tau)
                Z[k, j] = 1.0 / (1.0 + gamma[j] * t)
            else:
                s = (theta[j] - np.log(u / (1.0 - u))) * inv_tau
                Z[k, j] = 1.0 / (1.0 + np.exp(-s))


@njit(cache=True, fastmath=SAFE_FASTMATH)
def _binary_block(pi, U, n, Z):
    """Z[:n] <- b = 1[u < pi] of the block's uniforms."""
    m = pi.shape[0]
    for k in range(n):
        for j in range(m):
            Z[k, j] = 1.0 if U[k * m + j] < pi[j] else 0.0


@njit(cache=True, fastmath=SAFE_FASTMATH)
def _features_block(WT, bias, x, Z, n, A, E, bits):
    """A[:n] <- phi = x - sigma(Z W^T + b_0), via E = exp(-|a|):
    sigma(a) = 1/(1 + E) for a >= 0, E/(1 + E) below."""
    m, D = WT.shape
    for k in range(n):
        for i in range(D):
            A[k, i] = bias[i]
        for j in range(m):
            zj = Z[k, j]
            row = WT[j]
            for i in range(D):
                A[k, i] += zj * row[i]
    for k in range(n):
        for i in range(D):
            E[k, i] = -abs(A[k, i])
    flat = E.reshape(-1)
    exp_nonpositive(flat, flat, bits, n * D)
    for k in range(n):
        for i in range(D):
            e = E[k, i]
            top = 1.0 if A[k, i] >= 0.0 else e
            A[k, i] = x[i] - top / (1.0 + e)


@njit(cache=True, fastmath=SAFE_FASTMATH)
def _gumbel_accumulate(WT, c, Z, Phi, n, inv_tau, acc):
    """acc[j] += (c_j + W^T phi_k)_j zeta_kj (1 - zeta_kj) / tau, samples in order."""
    m, D = WT.shape
    for k in range(n):
        for j in range(m):
            row = WT[j]
            s = 0.0
            for i in range(D):
                s += row[i] * Phi[k, i]
            z = Z[k, j]
            acc[j] += (c[j] + s) * (z * (1.0 - z) * inv_tau)


@njit(cache=True, fastmath=SAFE_FASTMATH)
def _feature_sum(Phi, n, phisum):
    D = phisum.shape[0]
    for k in range(n):
        for i in range(D):
            phisum[i] += Phi[k, i]


@njit(cache=True, fastmath=SAFE_FASTMATH)
def _straight_through_total(WT, c, var, phisum, n, acc):
    """acc <- (n c + W^T phisum) pi (1 - pi)."""
    m, D = WT.shape
    for j in range(m):
        row = WT[j]
        s = 0.0
        for i in range(D):
            s += row[i] * phisum[i]
        acc[j] = (n * c[j] + s) * var[j]


@njit(cache=True)
def run_unit(model, q, method, tau, power, gamma, direct, key, K, n_chunks, unit, parts):
    """parts[unit, :m] <- the sum of the per-sample terms of unit (r, c)."""
    r = unit // n_chunks
    ch = unit - r * n_chunks
    state = np.empty(4, dtype=np.uint64)
    seed_state(state, key, r, ch)
    WT = model.WT
    m, D = WT.shape
    U = np.empty(BLOCK * m)
    Z = np.empty((BLOCK, m))
    A = np.empty((BLOCK, D))
    E = np.empty((BLOCK, D))
    bits = np.empty(BLOCK * D, dtype=np.int64)
    acc = np.zeros(m)
    phisum = np.zeros(D)
    n = min(K, (ch + 1) * CHUNK) - ch * CHUNK
    inv_tau = 1.0 / tau
    for start in range(0, n, BLOCK):
        nb = min(BLOCK, n - start)
        fill_uniform(state, U, nb * m)
        if method == GUMBEL_SOFTMAX:
            _relaxed_block(q.theta, gamma, direct, tau, power, U, nb, Z)
        else:
            _binary_block(q.pi, U, nb, Z)
        _features_block(WT, model.bias, model.x, Z, nb, A, E, bits)
        if method == GUMBEL_SOFTMAX:
            _gumbel_accumulate(WT, model.c, Z, A, nb, inv_tau, acc)
        else:
            _feature_sum(A, nb, phisum)
    if method == STRAIGHT_THROUGH:
        _straight_through_total(WT, model.c, q.var, phisum, float(n), acc)
    for j in range(m):
        parts[unit, j] = acc[j]


@njit(cache=True)
def combine_units(parts, R, n_chunks, K):
    """(R, m): each replicate's unit sums added in chunk order, over K (both kernels of this folder)."""
    m = parts.shape[1]
    out = np.zeros((R, m))
    for r in range(R):
        for c in range(n_chunks):
            for j in range(m):
                out[r, j] += parts[r * n_chunks + c, j]
        for j in range(m):
            out[r, j] /= K
    return out


@njit(cache=True, parallel=True)
def _means_parallel(model, q, method, tau, power, gamma, direct, key, K, R):
    n_chunks = (K + CHUNK - 1) // CHUNK
    parts = np.empty((R * n_chunks, q.theta.shape[0]))
    for unit in prange(R * n_chunks):
        run_unit(model, q, method, tau, power, gamma, direct, key, K, n_chunks, unit, parts)
    return combine_units(parts, R, n_chunks, K)


@njit(cache=True)
def _means_serial(model, q, method, tau, power, gamma, direct, key, K, R):
    n_chunks = (K + CHUNK - 1) // CHUNK
    parts = np.empty((R * n_chunks, q.theta.shape[0]))
    for unit in range(R * n_chunks):
        run_unit(model, q, method, tau, power, gamma, direct, key, K, n_chunks, unit, parts)
    return combine_units(parts, R, n_chunks, K)


def means(model, q, method, tau, key, K, R):
    """(R, m) per-replicate averages of the Gumbel-softmax or straight-through
    terms (``method``: bernoulli's code) on an ``SBNModel``."""
    tau = float(tau)
    gamma, direct = _gamma_direct(q.theta, tau)
    run = _means_serial if use_serial(K, R, PARALLEL_MIN_COSTLY_SAMPLES) else _means_parallel
    return run(model, q, int(method), tau, integer_power(tau), gamma, direct, np.uint64(key), int(K), int(R))


def _gamma_direct(theta, tau):
    """(gamma_j = exp(-theta_j / tau), direct_j = |theta_j / tau| <= DIRECT_LIMIT); gamma is 0 where not direct."""
    scaled = theta / tau
    direct = np.abs(scaled) <= DIRECT_LIMIT
    return np.where(direct, np.exp(-np.where(direct, scaled, 0.0)), 0.0), direct
