"""The built-in problems' compiled kernels, each attached to its problem type
through the public ``estimators.register_kernel``.

Each builder turns (problem, x, q) into the arguments of its numba block
function -- validated, float64 and C-contiguous -- or returns None for a
proposal its kernel does not cover (that pair runs on the generic path).
"""

from __future__ import annotations

import numpy as np

from problems import GaussianMixture, LinearGaussian, MissingPixels, MixturePrior

from ._kernels import bernoulli_mixture as bernoulli_mixture_kernel
from ._kernels import categorical as categorical_kernel
from ._kernels import linear_gaussian as linear_gaussian_kernel
from ._kernels import mixture_prior as mixture_prior_kernel
from .kernels import register_kernel
from .proposals import Bernoulli, Categorical, Gaussian, MixtureOfGaussians, MultivariateGaussian, Uniform

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


def _is(q, *classes):
    """q is exactly one of the built-in classes (a user's subclass may
    override how it samples, so it takes the generic path)."""
    return type(q) in classes


@register_kernel(LinearGaussian)
def _linear_gaussian(p, x, q):
    if not _is(q, Gaussian, MultivariateGaussian, Uniform):
        return None
    xb = np.ascontiguousarray(x - p.b)
    inv_psi = np.ascontiguousarray(1.0 / p.psi)
    log_p_const = -0.5 * p.latent_dim * _LOG_2PI - 0.5 * float(np.sum(np.log(2 * np.pi * p.psi)))
    return linear_gaussian_kernel.KIND, affine_proposal_args(q) + (xb, p.W, inv_psi, log_p_const)


@register_kernel(GaussianMixture)
def _gaussian_mixture(p, x, q):
    if not _is(q, Categorical):
        return None
    table = p.log_joint_table(x)
    with np.errstate(divide="ignore"):
        log_w = np.where(q.probs > 0, table - np.log(np.where(q.probs > 0, q.probs, 1.0)), -np.inf)
    keep, pair = categorical_kernel.draw_tables(q.probs)
    log_w = np.ascontiguousarray(log_w)
    return categorical_kernel.KIND, (keep, pair, log_w) + categorical_kernel.fold_tables(log_w)


@register_kernel(MixturePrior)
def _mixture_prior(p, x, q):
    if _is(q, Gaussian, MultivariateGaussian):
        loc, T, _, _, _ = affine_proposal_args(q)
        mixture = (np.ones(1), np.zeros(1), loc.copy(), np.array([T[0, 0]]))
        normal_base = True
    elif _is(q, MixtureOfGaussians):
        with np.errstate(divide="ignore"):
            mixture = (cumulative_probs(q.weights), np.log(q.weights), q.locs, q.scales)
        normal_base = True
    elif _is(q, Uniform):
        mixture = (np.ones(1), np.zeros(1), q.low.copy(), q.width.copy())
        normal_base = False
    else:
        return None
    mixture = tuple(np.ascontiguousarray(a, dtype=np.float64) for a in mixture)
    target = (float(x[0]), np.ascontiguousarray(p.log_weights), p.locs, p.scales, p.noise)
    return mixture_prior_kernel.KIND, (normal_base,) + mixture + target


@register_kernel(MissingPixels)
def _missing_pixels(p, x, q):
    if not _is(q, Bernoulli):
        return None
    with np.errstate(divide="ignore"):
        log_on, log_off = np.log(q.probs), np.log1p(-q.probs)
    a = p.observed_log_likelihoods(x)
    args = (q.probs, log_on, log_off, a) + tuple(p.latent_log_templates)
    return bernoulli_mixture_kernel.KIND, tuple(np.ascontiguousarray(v, dtype=np.float64) for v in args)
