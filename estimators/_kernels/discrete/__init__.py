"""Compiled kernels of the discrete-latent gradient estimators
(``estimators.discrete_gradients``: ARM, DisARM, REBAR, Gumbel-softmax,
straight-through) for a Bernoulli q on ``SigmoidBeliefNet`` and ``MissingPixels``.

A kernel subpackage: its numba cache is its own (see ``estimators._kernels``),
so editing these files does not recompile the importance-sampling kernels.
The RNG is the suite's (``estimators._kernels.rng``): unit (replicate r,
chunk c) of a call draws from the stream ``seed_state(key, r, c)``.
"""
