"""Turn (problem, x, q) into the arguments of a gradient block function.

The log-weight arguments come from the compiled kernel registered for the
problem (``estimators.kernels``); this adapter maps its log-weight kernel to the
matching gradient kernel, adds what the gradient needs, and says which
per-sample vectors (``gradient_driver`` modes) the pair supports.

Adding a latent family: write ``_kernels/gradient_<family>.py`` with a
``block(state, n, args, mode, lw, S)`` registered by
``register_gradient_block``, and add one entry to ``_ADAPTERS``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._kernels import bernoulli_mixture as bernoulli_mixture_kernel
from ._kernels import categorical as categorical_kernel
from ._kernels import (
    gradient_affine,
    gradient_bernoulli_mixture,
    gradient_categorical,
    gradient_mixture_prior,
)
from ._kernels import linear_gaussian as linear_gaussian_kernel
from ._kernels import mixture_prior as mixture_prior_kernel
from ._kernels.gradient_driver import MODEL, REPARAM, SCORE, STL
from .kernels import compiled_block
from .proposals import Gaussian, MultivariateGaussian


@dataclass(frozen=True)
class GradientTarget:
    kind: str  # the name its gradient block is registered under (gradient_driver)
    args: tuple
    modes: frozenset  # the per-sample vectors this (p, q) pair supports
    why_not: dict  # mode -> reason it is unsupported (a ValueError message tail)


def _affine(p, q, args):
    modes = {MODEL}
    why_not = {}
    if isinstance(q, (Gaussian, MultivariateGaussian)):
        modes |= {SCORE, REPARAM, STL}
    else:
        why_not[SCORE] = (
            f"q: {type(q).__name__} has a support that moves with its parameters; "
            "the score-function estimator needs a fixed support (use Gaussian or MultivariateGaussian)"
        )
        why_not[REPARAM] = why_not[STL] = "needs a reparameterizable q"
    return GradientTarget(gradient_affine.KIND, args, frozenset(modes), why_not)


def _score_only(p):
    return {
        REPARAM: "needs a reparameterizable q",
        STL: "needs a reparameterizable q",
        MODEL: f"p: model gradients are implemented for LinearGaussian only, got {type(p).__name__}",
    }


def _categorical(p, q, args):
    # the log-weight block's draw tables and log-weights, plus q's probabilities
    a = categorical_kernel.KIND(*args)
    probs = np.ascontiguousarray(q.probs, dtype=np.float64)
    return GradientTarget(gradient_categorical.KIND, (a.keep, a.pair, a.table, probs), frozenset({SCORE}),
                          _score_only(p))


def _bernoulli_mixture(p, q, args):
    # the log-weight block's args already hold the bit probabilities phi
    return GradientTarget(gradient_bernoulli_mixture.KIND, args, frozenset({SCORE}), _score_only(p))


def _mixture_prior(p, q, args):
    if isinstance(q, (Gaussian, MultivariateGaussian)):  # 1-D: the same (loc, log scale)
        return GradientTarget(gradient_mixture_prior.KIND, args, frozenset({SCORE, REPARAM, STL}), {
            MODEL: f"p: model gradients are implemented for LinearGaussian only, got {type(p).__name__}",
        })
    reason = f"q: gradients on MixturePrior are implemented for a Gaussian q, got {type(q).__name__}"
    return GradientTarget(gradient_mixture_prior.KIND, args, frozenset(), {m: reason for m in (SCORE, REPARAM, STL, MODEL)})


_ADAPTERS = {  # log-weight block kind -> adapter
    linear_gaussian_kernel.KIND: _affine,
    mixture_prior_kernel.KIND: _mixture_prior,
    categorical_kernel.KIND: _categorical,
    bernoulli_mixture_kernel.KIND: _bernoulli_mixture,
}


def gradient_target_for(p, x, q):
    """The GradientTarget of a validated (p, x, q), or None when no compiled
    gradient kernel serves the pair (it then runs on the generic path)."""
    return target_for_block(p, q, compiled_block(p, x, q))


def target_for_block(p, q, block):
    """The GradientTarget of the compiled log-weight ``block`` = (kind, args)
    of q against p, or None when no gradient kernel matches it."""
    if block is None:
        return None
    kind, args = block
    adapter = _ADAPTERS.get(kind)
    return None if adapter is None else adapter(p, q, args)
