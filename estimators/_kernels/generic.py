r"""Compiled pieces of the generic path (``estimators._generic``).

The generic path serves any problem: it draws each (replicate, chunk) unit in
Python, calls the user's vectorised ``log_joint`` once per unit, and folds the
unit's log-weights with these functions -- the reductions of the compiled
drivers, block by block in the same ``BLOCK`` order -- so that it reduces in
the same fixed order and is bit-identical for any thread count.

``unit_noise`` gives the base draws of unit (r, c) from the unit's own
xoshiro256** stream ``seed_state(key, r, c)``: exactly the numbers the
compiled kernels draw for that unit (they fill BLOCK * d at a time from the
same stream, and a stream is a sequence), so a built-in Gaussian,
MultivariateGaussian or Uniform q sees the same draws on both paths.
"""

import numpy as np
from numba import njit

from .driver import BLOCK
from .gradient_driver import add_signals, fold_sums
from .reduce import NSTATS, fold_block, init_acc
from .rng import fill_normal, fill_uniform, seed_state


@njit(cache=True)
def unit_noise(key, r, c, n, normal):
    """n base draws of unit (r, c): N(0, 1) (``normal``) or U[0, 1)."""
    state = np.empty(4, dtype=np.uint64)
    seed_state(state, key, r, c)
    out = np.empty(n)
    if normal:
        fill_normal(state, out, n)
    else:
        fill_uniform(state, out, n)
    return out


@njit(cache=True)
def fold_unit(lw, out):
    """out[:NSTATS] <- the accumulator of one unit's log-weights, folded BLOCK by BLOCK."""
    acc = np.empty(NSTATS)
    init_acc(acc)
    n = lw.shape[0]
    for i in range(0, n, BLOCK):
        m = min(BLOCK, n - i)
        fold_block(acc, lw[i : i + m], m)
    for j in range(NSTATS):
        out[j] = acc[j]


@njit(cache=True)
def fold_sums_unit(acc, lw, S, P, off):
    """Fold one unit's (lw, S) into an initialised pass-1 accumulator, BLOCK by BLOCK."""
    n = lw.shape[0]
    for i in range(0, n, BLOCK):
        m = min(BLOCK, n - i)
        fold_sums(acc, lw[i : i + m], S[i : i + m], m, P, off)


@njit(cache=True)
def add_signals_unit(out, lw, S, P, signal, K, tot):
    """out[:P] += sum_k c_k S_k over one unit, BLOCK by BLOCK."""
    n = lw.shape[0]
    for i in range(0, n, BLOCK):
        m = min(BLOCK, n - i)
        add_signals(out, lw[i : i + m], S[i : i + m], m, P, signal, K, tot)
