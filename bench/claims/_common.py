r"""Shared pieces of the lecture's claims (``bench.claims``): the verdict
words, the claim definition type, exact helpers several claims use (the
Bernoulli relative weight variance, the exact Var_q[log w], the orthogonal
PPCA model, quadrature over the lecture's posterior) and the error-table row.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import numpy as np
import pandas as pd
from scipy.integrate import quad
from scipy.special import logsumexp

from estimators import Gaussian, Uniform
from problems import LinearGaussian, MissingPixels, MixturePrior

from .. import metrics

HELD, NOT_HELD = "held", "did not hold"
LECTURE_DIGIT = 9  # its bottom half is also the bottom half of a 3 and of a 5
VAE_K = 4
LEARNING_RATE = 0.05


class ClaimDef(NamedTuple):
    """One claim's definition: ``spec`` (title, statement, rule, figure),
    ``rule(numbers) -> bool`` (fixed before measuring) and
    ``compute(settings) -> (numbers, tables, notes)``, where ``settings`` is
    the mode's merged settings (each module reads its own groups)."""

    spec: dict
    rule: Callable
    compute: Callable


def bernoulli_relative_weight_variance(post_weights, post_probs, phi):
    r"""Exact :math:`\mathrm{Var}_q[w]/p(x)^2` for a Bernoulli(φ) q against a
    posterior that is a mixture of independent bits,
    :math:`p(z|x) = \sum_c \pi_c \prod_j t_{cj}^{z_j}(1-t_{cj})^{1-z_j}`:

    .. math::
        \frac{\mathrm{Var}_q[w]}{p(x)^2} = \sum_z \frac{p(z|x)^2}{q(z)} - 1
          = \sum_{c,c'} \pi_c \pi_{c'} \prod_j \Big(\frac{t_{cj}t_{c'j}}{\phi_j}
            + \frac{(1-t_{cj})(1-t_{c'j})}{1-\phi_j}\Big) - 1,

    summed in log space over the pairs (c, c').  ``inf`` when q gives zero
    probability to a completion the posterior can produce (some φ_j in {0, 1}
    with the matching t strictly inside (0, 1)): the estimator is then not
    even unbiased.
    """
    pi = np.asarray(post_weights, float)
    t = np.asarray(post_probs, float)
    phi = np.asarray(phi, float)
    if np.any((phi <= 0) | (phi >= 1)):
        return math.inf
    keep = pi > 0
    pi, t = pi[keep], t[keep]
    on = t[:, None, :] * t[None, :, :] / phi
    off = (1 - t[:, None, :]) * (1 - t[None, :, :]) / (1 - phi)
    log_terms = np.log(pi)[:, None] + np.log(pi)[None, :] + np.sum(np.log(on + off), axis=-1)
    return float(np.expm1(logsumexp(log_terms)))


def orthogonal_linear_gaussian(D, d, seed=0, noise_var=0.5):
    """LinearGaussian with W = Q diag(2 .. 1) (Q: D x d with orthonormal columns),
    b ~ N(0, I), isotropic noise: a PPCA model whose posterior is diagonal."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((D, d)))
    return LinearGaussian(Q * np.linspace(2.0, 1.0, d), rng.standard_normal(D), np.full(D, noise_var))


def log_weight_variance(p, x, q, elbo):
    r"""Exact :math:`\mathrm{Var}_q[\log w]`, :math:`\log w = \log p(x,z) - \log q(z)`,
    given the exact ELBO (its mean):

    * MixturePrior with a Gaussian or Uniform q: :math:`\int q(z)(\log w(z) -
      \mathrm{ELBO})^2 dz` by adaptive quadrature over the mean ± 14 sd (or the box);
    * MissingPixels with a Bernoulli q: :math:`\sum_z q(z)(\log w(z) - \mathrm{ELBO})^2`
      over all :math:`2^m` completions (m <= 20).

    It gives exact standard errors: when the log-weights have a long tail that a
    few thousand draws rarely reach, the sample SE is far too small.
    """
    if isinstance(p, MissingPixels):
        m = p.latent_dim
        if m > 20:
            raise ValueError(f"p: enumerating 2^{m} completions is refused above 20 latent bits")
        idx = np.arange(1 << m)
        z = ((idx[:, None] >> np.arange(m)) & 1).astype(np.int8)
        lq = q.log_prob(z)
        keep = np.isfinite(lq)
        lw = p.log_joint(x, z[keep]) - lq[keep]
        return float(np.sum(np.exp(lq[keep]) * (lw - elbo) ** 2))
    if isinstance(p, MixturePrior) and isinstance(q, (Gaussian, Uniform)):
        if isinstance(q, Gaussian):
            lo, hi = float(q.loc[0] - 14 * q.scale[0]), float(q.loc[0] + 14 * q.scale[0])
        else:
            lo, hi = float(q.low[0]), float(q.high[0])

        def f(z):
            zz = np.array([[z]])
            lq = float(q.log_prob(zz)[0])
            return math.exp(lq) * (float(p.log_joint(x, zz)[0]) - lq - elbo) ** 2

        pts = [v for v in p.locs.tolist() if lo < v < hi]
        value, err = quad(f, lo, hi, points=pts or None, epsabs=1e-12, epsrel=1e-10, limit=500)
        if not math.isfinite(value) or err > 1e-8 * max(1.0, value):
            raise ArithmeticError(f"quadrature error bound {err:.2g} too large for Var_q[log w] = {value!r}")
        return float(value)
    raise ValueError(f"p: no exact Var_q[log w] here for {type(p).__name__} with {type(q).__name__}")


def _error_row(label, K, est, truth, exact_error=math.nan):
    err = np.asarray(est, float) - truth
    R = err.size
    sd = float(np.std(err, ddof=1)) if R > 1 else 0.0
    mse, mse_se = metrics.mse_se(est, truth)
    rmse = math.sqrt(mse)
    return {
        "q": label, "K": int(K), "R": int(R), "mean_error": float(np.mean(err)), "sd_error": sd,
        "mean_error_se": sd / math.sqrt(R), "rmse": rmse,
        "rmse_se": (mse_se / (2 * rmse)) if rmse > 0 else 0.0, "exact_error": float(exact_error),
    }


def _mixture_prior_expectation(f, post, lo=-60.0, hi=60.0):
    """int f(z) dz over [lo, hi] by adaptive quadrature, breakpoints at the posterior modes."""
    value, err = quad(f, lo, hi, points=sorted(post.locs.tolist()), epsabs=1e-12, epsrel=1e-10, limit=500)
    if not math.isfinite(value) or err > 1e-8 * max(1.0, abs(value)):
        raise ArithmeticError(f"quadrature error bound {err:.2g} too large for value {value!r}")
    return value


def _curves(fit, run, best):
    return pd.DataFrame({
        "run": run, "step": fit.history_steps.astype(int),
        "ll_below_max": best - fit.log_likelihood_history,
        "elbo_below_max": best - fit.elbo_history,
        "gap": fit.gap_history,
    })

