"""Compiled kernels of the variational estimators that are not functions of
the importance weights alone: the reconstruction term of the analytic-KL
ELBO (``estimators.elbo(..., kl="analytic")``).

A kernel subpackage: its numba cache is its own (see ``estimators._kernels``),
so editing these files does not recompile the importance-sampling kernels.
Every kernel here runs the units (replicate r, chunk c) of ``driver``: the
same ``CHUNK``/``BLOCK`` layout and the streams ``rng.seed_state(key, r, c)``,
so with the same seed it sees exactly the draws z of ``estimators.weight_stats``.
"""
