"""Compiled kernels of the weight diagnostics and the estimators built on the
same draws: the PSIS tail (each replicate's largest log-weights, kept in the
pass that computes ``weight_stats``' sums), the raw log-weights of one
replicate, the power sums behind the Renyi bound and CUBO, and the
jackknife's passes.

A kernel subpackage: its numba cache is its own (see ``estimators._kernels``),
so editing these files does not recompile the importance-sampling kernels.
Every kernel here runs the units (replicate r, chunk c) of ``driver``:
the same ``CHUNK``/``BLOCK`` layout, the streams ``rng.seed_state(key, r, c)``
and the block functions registered with ``driver.register_block`` (through
``driver.call_block``), so with the same seed they see exactly the draws of
``estimators.weight_stats``.
"""
