"""The machine's peak rates of the kernels' primitives, for ``python -m bench
peers``: the part of the throughput comparison that must run the kernels'
own random-number generator, so it lives beside the kernels (nothing outside
``estimators`` imports ``estimators._kernels``)."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._kernels.linear_gaussian import SAFE_FASTMATH
from ._kernels.rng import fill_normal, fill_uniform, seed_state

__all__ = ["limit_kernels", "SAFE_FASTMATH"]


def limit_kernels():
    """(normals, matvecs, exps): numba functions that measure the machine's peak
    rates of the kernels' primitives with the kernels' own generator and layout:
    ``normals(n_per_thread, threads)`` (ziggurat normals), ``matvecs(W, passes,
    threads)`` (multiply-adds of W z over 128-vector blocks), ``exps(n_per_thread,
    threads)``.  Compiled on first use (not cached)."""
    @njit(parallel=True, cache=False)
    def normals(n_per_thread, threads):
        total = 0.0
        for t in prange(threads):
            state = np.empty(4, dtype=np.uint64)
            seed_state(state, 99, t, 0)
            buf = np.empty(4096)
            for _ in range(n_per_thread // 4096):
                fill_normal(state, buf, 4096)
                total += buf[0]
        return total

    @njit(parallel=True, cache=False, fastmath=SAFE_FASTMATH)
    def matvecs(W, passes, threads):
        # the machine's best case for W z over a block of 128 vectors: samples in
        # the innermost loop, so every multiply-add is a vertical SIMD FMA
        D, d = W.shape
        total = 0.0
        for t in prange(threads):
            Zt = np.ones((d, 128)) * (t + 1)
            out = np.zeros((D, 128))
            for _ in range(passes):
                for i in range(D):
                    for j in range(d):
                        w = W[i, j]
                        for k in range(128):
                            out[i, k] += w * Zt[j, k]
                Zt[0, 0] = out[0, 0] * 1e-300  # keep the passes from being folded away
            total += out.sum()
        return total

    @njit(parallel=True, cache=False)
    def exps(n_per_thread, threads):
        total = 0.0
        for t in prange(threads):
            state = np.empty(4, dtype=np.uint64)
            seed_state(state, 7, t, 0)
            buf = np.empty(4096)
            acc = 0.0
            for _ in range(n_per_thread // 4096):
                fill_uniform(state, buf, 4096)
                for k in range(4096):
                    acc += np.exp(-buf[k])
            total += acc
        return total

    return normals, matvecs, exps
