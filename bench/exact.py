r"""Exact moments of the log-weights and weights that the problems do not
provide themselves, from their public exact quantities (posterior, log-joint
table).  They give the suite's checks exact standard errors.

With :math:`w = p(x,z)/q(z)`, :math:`z \sim q`:

* ``log_weight_moments(p, x, q)`` -> (mean, variance, fourth central moment)
  of :math:`\log w`.  The mean is ELBO(q).  The ELBO estimate of K draws has
  variance :math:`\sigma^2/K` and fourth central moment
  :math:`(\mu_4 + 3(K-1)\sigma^4)/K^3`.
* ``relative_weight_variance(p, x, q)`` -> :math:`\mathrm{Var}_q[w]/p(x)^2`.

Why exact: a sample standard error underestimates when q puts a small
probability on values far from the mean (a rarely drawn mixture component):
with a few thousand draws the sample may not contain them at all.

Formulas.

*Discrete latent* (Categorical q, GaussianMixture): enumeration over the
support S of q, :math:`f_k = \log p(x,k) - \log q_k`,
:math:`\mathrm{E}[g(\log w)] = \sum_{k\in S} q_k\, g(f_k)`.

*Gaussian q* (mean m, covariance :math:`S = LL^T`) against the Gaussian
posterior :math:`N(\mu, \Sigma)`, :math:`P = \Sigma^{-1}`: with
:math:`z = m + L\varepsilon`,

.. math::
    \log w = \mathrm{const} + a^T\varepsilon + \tfrac12 \varepsilon^T C \varepsilon,\qquad
    a = -L^T P (m - \mu),\quad C = I - L^T P L,

a quadratic form of a standard normal, whose cumulants are
:math:`\kappa_n = \tfrac{(n-1)!}{2}\operatorname{tr} C^n + \tfrac{n!}{2}\, a^T C^{n-2} a`
(n >= 2): variance :math:`\kappa_2 = a^Ta + \tfrac12\operatorname{tr}C^2`,
:math:`\mu_4 = \kappa_4 + 3\kappa_2^2` with
:math:`\kappa_4 = 3\operatorname{tr}C^4 + 12\, a^T C^2 a`.

*Uniform box q* (independent coordinates, mean m, variances
:math:`v_i = \mathrm{width}_i^2/12`, fourth central moments
:math:`\nu_i = \mathrm{width}_i^4/80`): :math:`\log w = \mathrm{const} + g^Ty - \tfrac12 y^TPy`,
:math:`y = z - m`, :math:`g = -P(m - \mu)`, and since odd moments of y vanish

.. math::
    \mathrm{Var}[\log w] = \sum_i g_i^2 v_i + \tfrac14\Big[\sum_i P_{ii}^2(\nu_i - v_i^2)
        + 2\sum_{i\neq j} P_{ij}^2 v_i v_j\Big];

its fourth moment is not implemented (NaN).
"""

from __future__ import annotations

import math

import numpy as np

from estimators import Categorical, Gaussian, MultivariateGaussian, Uniform

from . import metrics

__all__ = ["log_weight_moments", "relative_weight_variance", "elbo_mean_moments"]


def _gaussian_posterior(p, x):
    post = p.posterior(x)
    if not isinstance(post, MultivariateGaussian):
        raise ValueError(f"p: {type(p).__name__}'s posterior is not Gaussian; no closed form here")
    return post.loc, np.linalg.inv(post.cov)


def log_weight_moments(p, x, q):
    """(mean, variance, fourth central moment) of log w under q, exactly
    (see the module docstring); NaN for a moment with no formula here."""
    if isinstance(q, Categorical):
        table = p.log_joint_table(x)
        s = q.probs > 0
        f = table[s] - np.log(q.probs[s])
        qs = q.probs[s]
        mean = float(np.sum(qs * f))
        d = f - mean
        return mean, float(np.sum(qs * d**2)), float(np.sum(qs * d**4))
    mean = float(p.elbo(x, q))
    if isinstance(q, (Gaussian, MultivariateGaussian)):
        mu, P = _gaussian_posterior(p, x)
        L = np.diag(q.scale) if isinstance(q, Gaussian) else q.chol
        a = -L.T @ P @ (q.loc - mu)
        C = np.eye(len(mu)) - L.T @ P @ L
        C2 = C @ C
        k2 = float(a @ a + 0.5 * np.trace(C2))
        k4 = float(3.0 * np.trace(C2 @ C2) + 12.0 * a @ C2 @ a)
        return mean, max(k2, 0.0), max(k4 + 3.0 * k2 * k2, 0.0)
    if isinstance(q, Uniform):
        mu, P = _gaussian_posterior(p, x)
        m = 0.5 * (q.low + q.high)
        width = q.high - q.low
        v = width**2 / 12.0
        nu = width**4 / 80.0
        g = -P @ (m - mu)
        off = P**2 * np.outer(v, v)
        np.fill_diagonal(off, 0.0)
        var = float(np.sum(g**2 * v) + 0.25 * (np.sum(np.diag(P) ** 2 * (nu - v**2)) + 2.0 * np.sum(off)))
        return mean, var, math.nan
    return mean, math.nan, math.nan


def elbo_mean_moments(var, mu4, K):
    r"""Variance and fourth central moment of the mean of K i.i.d. log-weights:
    :math:`\sigma^2/K` and :math:`(\mu_4 + 3(K-1)\sigma^4)/K^3`."""
    return var / K, (mu4 + 3.0 * (K - 1) * var * var) / K**3


def relative_weight_variance(p, x, q):
    r""":math:`\mathrm{Var}_q[w]/p(x)^2`: by enumeration for a Categorical q
    (``metrics.categorical_relative_weight_variance``), the problem's own
    closed form when it has one (``LinearGaussian.relative_weight_variance``,
    Gaussian q; inf when infinite), else NaN (e.g. a uniform box)."""
    if isinstance(q, Categorical):
        return metrics.categorical_relative_weight_variance(p.posterior(x).probs, q.probs)
    fn = getattr(p, "relative_weight_variance", None)
    if fn is not None and isinstance(q, (Gaussian, MultivariateGaussian)):
        # a variance: clip the round-off of expm1(~1e-16) at q = posterior
        return max(float(fn(x, q)), 0.0)
    return math.nan
