"""The limit kernels of ``estimators.machine`` (see its docstring): one
primitive each, on ONE thread, in the estimator kernels' layout (a unit's
stream seeded as the driver seeds one, ``driver.BLOCK``-sized buffers),
returning a checksum so that nothing is folded away."""

import numpy as np
from numba import njit

from ..categorical import draw_pair, pair_table
from ..driver import BLOCK
from ..linear_gaussian import log_joint_block as lg_log_joint_block
from ..rng import fill_normal, fill_uniform, seed_state


@njit(cache=True)
def normals(n, width):
    """n // width * width ziggurat normals (``rng.fill_normal``) into a width-double buffer."""
    state = np.empty(4, dtype=np.uint64)
    seed_state(state, 99, 0, 0)
    buf = np.empty(width)
    acc = 0.0
    for _ in range(n // width):
        fill_normal(state, buf, width)
        acc += buf[0]
    return acc


@njit(cache=True)
def uniforms(n):
    """n // BLOCK * BLOCK uniforms (``rng.fill_uniform``) in BLOCK-sized buffers."""
    state = np.empty(4, dtype=np.uint64)
    seed_state(state, 98, 0, 0)
    buf = np.empty(BLOCK)
    acc = 0.0
    for _ in range(n // BLOCK):
        fill_uniform(state, buf, BLOCK)
        acc += buf[0]
    return acc


@njit(cache=True)
def categorical_counts(n, keep, alias):
    """n // BLOCK * BLOCK categorical draws and counts: a BLOCK of uniforms, then
    per uniform a Walker alias draw (``categorical.draw_pair``) and a count; the
    counts are summed once at the end, not per block."""
    C = keep.shape[0]
    state = np.empty(4, dtype=np.uint64)
    seed_state(state, 97, 0, 0)
    buf = np.empty(BLOCK)
    counts = np.zeros(C)
    pair = pair_table(alias)
    for _ in range(n // BLOCK):
        fill_uniform(state, buf, BLOCK)
        for k in range(BLOCK):
            counts[draw_pair(buf[k], keep, pair)] += 1.0
    acc = 0.0
    for c in range(C):
        acc += counts[c] * (c + 1)
    return acc


@njit(cache=True)
def log_joint_block(passes, z, xb, W, inv_psi):
    """``passes`` runs of the linear-Gaussian kernel's own ``log_joint_block``
    (one dgemm and the quadratic forms) on the rows of z: D d + 2 D + d
    multiply-adds per row."""
    n = z.shape[0]
    lw = np.empty(n)
    Wz = np.empty((n, W.shape[0]))
    acc = 0.0
    for _ in range(passes):
        lg_log_joint_block(z, n, xb, W, inv_psi, acc * 1e-300, lw, Wz)
        acc += lw[0]
    return acc


@njit(cache=True)
def exps(passes, lw):
    """``passes`` runs of ``reduce.fold_block``'s exp loop (e = exp(l - m),
    s += e, s2 += e e) over lw."""
    n = lw.shape[0]
    acc = 0.0
    for _ in range(passes):
        m = acc * 1e-300
        s = 0.0
        s2 = 0.0
        for k in range(n):
            e = np.exp(lw[k] - m)
            s += e
            s2 += e * e
        acc += s + s2
    return acc
