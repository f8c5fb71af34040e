"""Compiled kernels of the sequential estimators (``estimators.smc``).

A kernel subpackage: its numba cache is its own (see ``estimators._kernels``),
so editing these files does not recompile the importance-sampling kernels.
The RNG is the suite's (``estimators._kernels.rng``): replicate r of a call
draws from the stream ``seed_state(key, r, 0)``.
"""
