"""Turn (problem, x, q) into the arguments of a numba block function.

This is the one place that knows which kernel serves which problem and
proposal family; everything it hands over is validated, float64 and
C-contiguous.  Problems are imported lazily so that ``problems`` can import
``estimators.proposals`` without a cycle.
"""

from __future__ import annotations

import numpy as np

from ._kernels import bernoulli_mixture as bernoulli_mixture_kernel
from ._kernels import categorical as categorical_kernel
from ._kernels import linear_gaussian as linear_gaussian_kernel
from ._kernels import mixture_prior as mixture_prior_kernel
from .proposals import Bernoulli, Categorical, Gaussian, MixtureOfGaussians, MultivariateGaussian, Proposal, Uniform

_LOG_2PI = float(np.log(2.0 * np.pi))


def cumulative_probs(probs):
    """Cumulative probabilities for inverse-CDF sampling: exactly 1.0 from the
    last positive category on, so a zero-probability category is never drawn."""
    cum = np.cumsum(probs)
    cum /= cum[-1]
    last_positive = int(np.flatnonzero(probs > 0)[-1])
    cum[last_positive:] = 1.0
    return np.ascontiguousarray(cum)


def affine_proposal_args(q):
    """(loc, T, diagonal, normal_base, log_q_const) for a continuous proposal."""
    loc, T, diagonal, base = q._affine()
    T = np.ascontiguousarray(T, dtype=np.float64)
    log_det = float(np.sum(np.log(np.abs(np.diag(T)))))
    if base == "normal":
        log_q_const = -0.5 * q.dim * _LOG_2PI - log_det
    else:
        log_q_const = -log_det
    # A copy, so always writeable: a read-only loc (e.g. Uniform from
    # uniform_proposal's np.broadcast_to at d = 1) is a different numba type
    # and would compile a second specialization of every kernel.
    loc = np.array(loc, dtype=np.float64, order="C")
    return (loc, T, bool(diagonal), base == "normal", float(log_q_const))


def _linear_gaussian(p, x, q):
    if not isinstance(q, (Gaussian, MultivariateGaussian, Uniform)):
        raise ValueError(
            f"q: LinearGaussian has a continuous latent; expected Gaussian, "
            f"MultivariateGaussian or Uniform, got {type(q).__name__}"
        )
    xb = np.ascontiguousarray(x - p.b)
    inv_psi = np.ascontiguousarray(1.0 / p.psi)
    log_p_const = -0.5 * p.latent_dim * _LOG_2PI - 0.5 * float(np.sum(np.log(2 * np.pi * p.psi)))
    return linear_gaussian_kernel.KIND, affine_proposal_args(q) + (xb, p.W, inv_psi, log_p_const)


def _gaussian_mixture(p, x, q):
    if not isinstance(q, Categorical):
        raise ValueError(
            f"q: GaussianMixture has a discrete latent; expected Categorical, got {type(q).__name__}"
        )
    if q.num_categories != p.num_components:
        raise ValueError(f"q: has {q.num_categories} categories, the mixture has {p.num_components}")
    table = p.log_joint_table(x)
    with np.errstate(divide="ignore"):
        log_w = np.where(q.probs > 0, table - np.log(np.where(q.probs > 0, q.probs, 1.0)), -np.inf)
    keep, alias = categorical_kernel.alias_table(q.probs)
    return categorical_kernel.KIND, (keep, alias, np.ascontiguousarray(log_w))


def _mixture_prior(p, x, q):
    if isinstance(q, (Gaussian, MultivariateGaussian)):
        loc, T, _, _, _ = affine_proposal_args(q)
        mixture = (np.ones(1), np.zeros(1), loc.copy(), np.array([T[0, 0]]))
        normal_base = True
    elif isinstance(q, MixtureOfGaussians):
        with np.errstate(divide="ignore"):
            mixture = (cumulative_probs(q.weights), np.log(q.weights), q.locs, q.scales)
        normal_base = True
    elif isinstance(q, Uniform):
        mixture = (np.ones(1), np.zeros(1), q.low.copy(), q.width.copy())
        normal_base = False
    else:
        raise ValueError(
            "q: MixturePrior has a continuous 1-D latent; expected Gaussian, "
            f"MultivariateGaussian, MixtureOfGaussians or Uniform, got {type(q).__name__}"
        )
    mixture = tuple(np.ascontiguousarray(a, dtype=np.float64) for a in mixture)
    target = (float(x[0]), np.ascontiguousarray(p._log_weights), p.locs, p.scales, p.noise)
    return mixture_prior_kernel.KIND, (normal_base,) + mixture + target


def _missing_pixels(p, x, q):
    if not isinstance(q, Bernoulli):
        raise ValueError(
            f"q: MissingPixels has a binary latent; expected Bernoulli, got {type(q).__name__}"
        )
    with np.errstate(divide="ignore"):
        log_on, log_off = np.log(q.probs), np.log1p(-q.probs)
    a = p.observed_log_likelihoods(x)
    args = (q.probs, log_on, log_off, a, p._lat_on, p._lat_off)
    return bernoulli_mixture_kernel.KIND, tuple(np.ascontiguousarray(v, dtype=np.float64) for v in args)


def _registry():
    from problems import GaussianMixture, LinearGaussian, MissingPixels, MixturePrior

    return {
        LinearGaussian: _linear_gaussian,
        GaussianMixture: _gaussian_mixture,
        MixturePrior: _mixture_prior,
        MissingPixels: _missing_pixels,
    }


def block_for(p, x, q):
    """(kind, args): the registered block name and its arguments for the
    log-weights of q against p at x (both validated)."""
    if not isinstance(q, Proposal):
        raise ValueError(f"q: expected a proposal object (estimators.Gaussian, ...), got {type(q).__name__}")
    for cls, build in _registry().items():
        if isinstance(p, cls):
            if q.dim != p.latent_dim:
                raise ValueError(f"q: has dimension {q.dim}, the latent has {p.latent_dim}")
            return build(p, x, q)
    raise ValueError(
        f"p: no compiled kernel for problems of type {type(p).__name__}; "
        "supported: " + ", ".join(c.__name__ for c in _registry())
    )
