r"""A one-dimensional latent with a Gaussian-mixture prior: the lecture's
bimodal posterior.

.. math::
    z \sim \sum_j w_j N(m_j, s_j^2), \qquad x \mid z \sim N(z, \sigma^2).

Exact in closed form: :math:`p(x) = \sum_j w_j N(x; m_j, s_j^2 + \sigma^2)`
and the posterior is again a mixture,
:math:`p(z|x) = \sum_j \pi_j N(z; \mu_j, v_j)` with
:math:`v_j = (s_j^{-2} + \sigma^{-2})^{-1}`,
:math:`\mu_j = v_j (m_j / s_j^2 + x / \sigma^2)`,
:math:`\pi_j \propto w_j N(x; m_j, s_j^2 + \sigma^2)`.

The ELBO, the KL and the ELBO gradient of a Gaussian (or uniform) q have no
closed form; they are computed by adaptive quadrature (``scipy.integrate.quad``)
to an absolute error below 1e-10, and an error is raised if quadrature cannot
certify that.
"""

from __future__ import annotations

import numpy as np
from scipy.integrate import quad
from scipy.special import logsumexp
from scipy.stats import norm

from ._validation import as_float_array, check_probabilities
from .distributions import Gaussian, MixtureOfGaussians, Uniform

from .base import Problem

_LOG_2PI = float(np.log(2.0 * np.pi))
QUADRATURE_TOL = 1e-10
_STD_RANGE = 14.0  # a Gaussian q is integrated over mean +- 14 sd (mass outside < 1e-43)


class MixturePrior(Problem):
    """1-D z ~ sum_j w_j N(locs_j, scales_j^2); x | z ~ N(z, noise^2)."""

    discrete = False
    latent_type = "continuous"
    obs_dim = 1
    latent_dim = 1

    def __init__(self, weights, locs, scales, noise):
        weights = check_probabilities("weights", weights)
        if weights.ndim != 1:
            raise ValueError(f"weights: expected shape (J,), got {weights.shape}")
        J = weights.shape[0]
        self.weights = weights / weights.sum()
        self.locs = as_float_array("locs", locs, shape=(J,))
        self.scales = as_float_array("scales", scales, shape=(J,), positive=True)
        noise = as_float_array("noise", noise, positive=True)
        if noise.size != 1:
            raise ValueError(f"noise: expected a positive scalar, got shape {noise.shape}")
        self.noise = float(noise.reshape(()))
        with np.errstate(divide="ignore"):
            self._log_weights = np.log(self.weights)

    @property
    def log_weights(self):
        """log of the prior's mixture weights, (J,) (-inf for a zero weight)."""
        return self._log_weights

    def __repr__(self):
        return f"MixturePrior(J={self.weights.size}, noise={self.noise})"

    @classmethod
    def lecture(cls):
        """The lecture's picture: a bimodal posterior, a narrow minor mode near
        -4 and a broad major mode near 2, observed at x = 0.5.  The question it
        poses: is N(2, 2) or N(-4, 0.75) the better approximation?"""
        return cls(weights=[0.35, 0.65], locs=[-4.0, 2.2], scales=[0.8, 1.6], noise=4.0)

    lecture_x = np.array([0.5])

    # ---- sampling and densities ------------------------------------------
    def sample(self, n, seed=0):
        n, rng = self._check_sample_args(n, seed)
        j = rng.choice(self.weights.size, size=n, p=self.weights)
        z = self.locs[j] + self.scales[j] * rng.standard_normal(n)
        return (z + self.noise * rng.standard_normal(n))[:, None]

    def log_prior(self, z):
        """log p(z) for an array of scalar z."""
        z = np.asarray(z, dtype=np.float64)
        comp = (
            self._log_weights
            - np.log(self.scales)
            - 0.5 * _LOG_2PI
            - 0.5 * ((z[..., None] - self.locs) / self.scales) ** 2
        )
        return logsumexp(comp, axis=-1)

    def log_joint(self, x, z):
        """log p(x, z), vectorised over leading axes of z (..., 1); x of shape (1,)."""
        x = self._check_x(x)
        z = as_float_array("z", z)
        if z.ndim == 0 or z.shape[-1] != 1:
            raise ValueError(f"z: expected trailing dimension 1, got shape {z.shape}")
        z = z[..., 0]
        return self.log_prior(z) + norm.logpdf(x[0], loc=z, scale=self.noise)

    def _log_marginal_rows(self, X):
        var = self.scales**2 + self.noise**2
        comp = self._log_weights - 0.5 * np.log(2 * np.pi * var) - 0.5 * (X - self.locs) ** 2 / var
        return logsumexp(comp, axis=-1)

    def prior(self):
        return MixtureOfGaussians(self.weights, self.locs, self.scales)

    def posterior(self, x):
        """Exact p(z | x), a MixtureOfGaussians (see the module docstring)."""
        x = self._check_x(x)[0]
        var = self.scales**2 + self.noise**2
        log_pi = self._log_weights - 0.5 * np.log(var) - 0.5 * (x - self.locs) ** 2 / var
        pi = np.exp(log_pi - logsumexp(log_pi))
        v = 1.0 / (1.0 / self.scales**2 + 1.0 / self.noise**2)
        mu = v * (self.locs / self.scales**2 + x / self.noise**2)
        return MixtureOfGaussians(pi, mu, np.sqrt(v))

    # ---- quadrature ----------------------------------------------------------
    def _expect(self, q, fn):
        """E_q[fn(z)] by adaptive quadrature, certified to QUADRATURE_TOL."""
        if isinstance(q, Gaussian):
            m, s = q.loc[0], q.scale[0]
            value, err = quad(
                lambda t: norm.pdf(t) * fn(m + s * t),
                -_STD_RANGE,
                _STD_RANGE,
                epsabs=1e-13,
                epsrel=1e-13,
                limit=1000,
            )
        else:
            low, high = q.low[0], q.high[0]
            width = high - low
            value, err = quad(lambda z: fn(z) / width, low, high, epsabs=1e-13, epsrel=1e-13, limit=1000)
        if not np.isfinite(value) or err > QUADRATURE_TOL:
            raise ArithmeticError(
                f"quadrature could not certify an absolute error below {QUADRATURE_TOL} "
                f"(estimate {value!r}, error bound {err:.3g}); the result would not be exact"
            )
        return value

    def _scalar_log_joint(self, x0):
        log_norm_lik = -np.log(self.noise) - 0.5 * _LOG_2PI

        def f(z):
            return float(self.log_prior(z)) + log_norm_lik - 0.5 * ((x0 - z) / self.noise) ** 2

        return f

    def elbo(self, x, q):
        """Exact ELBO(q) = E_q[log p(x, z)] + H(q), by quadrature (q Gaussian or Uniform)."""
        x = self._check_x(x)
        q = self._check_q(q, (Gaussian, Uniform), "elbo")
        return self._expect(q, self._scalar_log_joint(x[0])) + q.entropy

    def kl(self, x, q):
        """Exact KL(q || p(z|x)) = -H(q) - E_q[log p(z|x)], by quadrature
        against the closed-form mixture posterior (not via elbo or log_marginal)."""
        x = self._check_x(x)
        q = self._check_q(q, (Gaussian, Uniform), "kl")
        post = self.posterior(x)
        log_pi = np.log(post.weights)

        def log_post(z):
            comp = log_pi - np.log(post.scales) - 0.5 * _LOG_2PI - 0.5 * ((z - post.locs) / post.scales) ** 2
            return float(logsumexp(comp))

        return -q.entropy - self._expect(q, log_post)

    def _score_z(self, x0):
        """d/dz log p(x, z)."""

        def g(z):
            comp = self._log_weights - np.log(self.scales) - 0.5 * ((z - self.locs) / self.scales) ** 2
            resp = np.exp(comp - logsumexp(comp))
            return float(np.sum(resp * (-(z - self.locs) / self.scales**2)) + (x0 - z) / self.noise**2)

        return g

    def elbo_grad(self, x, q):
        r"""Exact d ELBO / d (loc, log scale) for a Gaussian q, by quadrature:
        :math:`\partial_\mu = E_q[\partial_z \log p(x,z)]`,
        :math:`\partial_{\log\sigma} = \sigma E_\varepsilon[\varepsilon\,\partial_z \log p(x, \mu+\sigma\varepsilon)] + 1`."""
        x = self._check_x(x)
        q = self._check_q(q, (Gaussian,), "elbo_grad")
        g = self._score_z(x[0])
        m, s = q.loc[0], q.scale[0]
        d_loc = self._expect(q, g)
        d_log_scale = self._expect(q, lambda z: (z - m) * g(z)) + 1.0
        return np.array([d_loc, d_log_scale])
