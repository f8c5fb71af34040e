r"""The linear-Gaussian latent model (factor analysis / probabilistic PCA).

.. math::
    z \sim N(0, I_d), \qquad x \mid z \sim N(W z + b, \operatorname{diag}(\psi))

Everything is closed form:

* marginal  :math:`x \sim N(b,\ W W^T + \Psi)`;
* posterior :math:`z \mid x \sim N(\mu, \Sigma)` with
  :math:`\Sigma = (I + W^T \Psi^{-1} W)^{-1}`,
  :math:`\mu = \Sigma W^T \Psi^{-1} (x - b)`;
* for any q with mean m, covariance S and entropy H (Gaussian, full
  Gaussian, uniform box), because log p(x, z) is quadratic in z,

  .. math::
      \mathrm{ELBO}(q) = -\tfrac{d}{2}\log 2\pi - \tfrac12(\operatorname{tr}S + m^T m)
          - \tfrac12\sum_i \log(2\pi\psi_i)
          - \tfrac12\big[r^T \Psi^{-1} r + \operatorname{tr}(\Psi^{-1} W S W^T)\big] + H(q),
      \quad r = x - b - W m;

* :math:`\mathrm{KL}(q\,\|\,p(z|x)) = -H(q) + \tfrac12\big[d\log 2\pi + \log|\Sigma|
  + \operatorname{tr}(\Sigma^{-1} S) + (m-\mu)^T \Sigma^{-1} (m-\mu)\big]`,
  computed from the posterior alone (never from ``elbo`` or ``log_marginal``).
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import cho_solve, solve_triangular

from ._validation import as_float_array, check_count, check_seed
from .distributions import Gaussian, MultivariateGaussian, Uniform

from ._bounds import WeightMoments, check_power
from .base import Problem

_LOG_2PI = float(np.log(2.0 * np.pi))


class LinearGaussian(WeightMoments, Problem):
    """z ~ N(0, I_d); x | z ~ N(W z + b, diag(psi)).  W (D, d), b (D,), psi (D,)."""

    discrete = False

    def __init__(self, W, b, psi):
        W = as_float_array("W", W, ndim=2)
        D, d = W.shape
        if D < 1 or d < 1:
            raise ValueError(f"W: expected a non-empty (D, d) matrix, got shape {W.shape}")
        self.W = W
        self.b = as_float_array("b", b, shape=(D,))
        self.psi = as_float_array("psi", psi, shape=(D,), positive=True)
        self.obs_dim, self.latent_dim = D, d
        # Posterior precision P = I + W^T Psi^-1 W (independent of x), its
        # Cholesky factor, and the marginal covariance's Cholesky factor.
        Wt_psi = W.T / self.psi
        self._post_precision = np.eye(d) + Wt_psi @ W
        try:
            self._post_precision_chol = np.linalg.cholesky(self._post_precision)
            self._marg_chol = np.linalg.cholesky(W @ W.T + np.diag(self.psi))
        except np.linalg.LinAlgError:
            raise ValueError(
                "psi: the model is numerically singular (the marginal covariance W W^T + diag(psi) "
                f"or the posterior precision is not positive definite in float64; min psi = {self.psi.min():.3g}, "
                f"max |W| = {np.abs(W).max():.3g})"
            ) from None
        if not (np.isfinite(self._post_precision_chol).all() and np.isfinite(self._marg_chol).all()):
            raise ValueError("psi: the model overflows float64 (psi too small for W's scale)")
        self._post_cov = cho_solve((self._post_precision_chol, True), np.eye(d))

    def __repr__(self):
        return f"LinearGaussian(D={self.obs_dim}, d={self.latent_dim})"

    @classmethod
    def random(cls, D, d, seed=0):
        """A random, well-conditioned instance: W with entries N(0, 1/d),
        b ~ N(0, 1), psi ~ U(0.5, 1.5)."""
        D, d = check_count("D", D), check_count("d", d)
        rng = np.random.default_rng(check_seed(seed))
        W = rng.standard_normal((D, d)) / np.sqrt(d)
        b = rng.standard_normal(D)
        psi = rng.uniform(0.5, 1.5, size=D)
        return cls(W, b, psi)

    # ---- sampling and densities ------------------------------------------
    def sample(self, n, seed=0):
        """n observations x ~ p(x), shape (n, D)."""
        n, rng = self._check_sample_args(n, seed)
        z = rng.standard_normal((n, self.latent_dim))
        return z @ self.W.T + self.b + np.sqrt(self.psi) * rng.standard_normal((n, self.obs_dim))

    def log_joint(self, x, z):
        r"""log p(x, z) = log N(z; 0, I) + log N(x; W z + b, diag psi), vectorised
        over leading axes of z (and of x, broadcast against z)."""
        x = as_float_array("x", x)
        z = as_float_array("z", z)
        if x.ndim == 0 or x.shape[-1] != self.obs_dim:
            raise ValueError(f"x: expected trailing dimension {self.obs_dim}, got shape {x.shape}")
        if z.ndim == 0 or z.shape[-1] != self.latent_dim:
            raise ValueError(f"z: expected trailing dimension {self.latent_dim}, got shape {z.shape}")
        log_prior = -0.5 * np.sum(z**2, axis=-1) - 0.5 * self.latent_dim * _LOG_2PI
        resid = x - (z @ self.W.T + self.b)
        log_lik = -0.5 * np.sum(resid**2 / self.psi, axis=-1) - 0.5 * np.sum(np.log(2 * np.pi * self.psi))
        return log_prior + log_lik

    def log_likelihood(self, x, z):
        r"""log p(x | z) = log N(x; W z + b, diag psi), vectorised over leading axes of z
        (the reconstruction term, for ``estimators.elbo(..., kl="analytic")``)."""
        x = as_float_array("x", x)
        z = as_float_array("z", z)
        if x.ndim == 0 or x.shape[-1] != self.obs_dim:
            raise ValueError(f"x: expected trailing dimension {self.obs_dim}, got shape {x.shape}")
        if z.ndim == 0 or z.shape[-1] != self.latent_dim:
            raise ValueError(f"z: expected trailing dimension {self.latent_dim}, got shape {z.shape}")
        resid = x - (z @ self.W.T + self.b)
        return -0.5 * np.sum(resid**2 / self.psi, axis=-1) - 0.5 * np.sum(np.log(2 * np.pi * self.psi))

    def grad_log_joint(self, x, z):
        r""":math:`\nabla_z \log p(x, z) = -z + W^T \Psi^{-1}(x - b - W z)`, shape of z."""
        x = as_float_array("x", x)
        z = as_float_array("z", z)
        if z.ndim == 0 or z.shape[-1] != self.latent_dim:
            raise ValueError(f"z: expected trailing dimension {self.latent_dim}, got shape {z.shape}")
        resid = x - (z @ self.W.T + self.b)
        return -z + (resid / self.psi) @ self.W

    def _log_marginal_rows(self, X):
        L = self._marg_chol
        eps = solve_triangular(L, (X - self.b).T, lower=True)
        return (
            -0.5 * np.sum(eps**2, axis=0)
            - np.sum(np.log(np.diag(L)))
            - 0.5 * self.obs_dim * _LOG_2PI
        )

    def prior(self):
        """p(z) = N(0, I_d) as a diagonal Gaussian."""
        return Gaussian(np.zeros(self.latent_dim), np.ones(self.latent_dim))

    def posterior_mean(self, x):
        x = self._check_x(x)
        return self._post_cov @ (self.W.T @ ((x - self.b) / self.psi))

    def posterior(self, x):
        """Exact p(z | x) = N(mu, Sigma) as a MultivariateGaussian."""
        return MultivariateGaussian(self.posterior_mean(x), self._post_cov)

    # ---- exact variational quantities ------------------------------------
    def elbo(self, x, q):
        """Exact ELBO(q) for q in (Gaussian, MultivariateGaussian, Uniform); see module docstring."""
        x = self._check_x(x)
        q = self._check_q(q, (Gaussian, MultivariateGaussian, Uniform), "elbo")
        m, S = q.mean, q.cov
        d = self.latent_dim
        expected_log_prior = -0.5 * d * _LOG_2PI - 0.5 * (np.trace(S) + m @ m)
        r = x - self.b - self.W @ m
        WSWt_diag = np.einsum("ij,jk,ik->i", self.W, S, self.W)
        expected_log_lik = -0.5 * np.sum(np.log(2 * np.pi * self.psi)) - 0.5 * (
            np.sum(r**2 / self.psi) + np.sum(WSWt_diag / self.psi)
        )
        return float(expected_log_prior + expected_log_lik + q.entropy)

    def kl(self, x, q):
        """Exact KL(q || p(z|x)) from the posterior's moments alone."""
        x = self._check_x(x)
        q = self._check_q(q, (Gaussian, MultivariateGaussian, Uniform), "kl")
        mu = self.posterior_mean(x)
        P, Lp = self._post_precision, self._post_precision_chol
        diff = q.mean - mu
        log_det_sigma = -2.0 * np.sum(np.log(np.diag(Lp)))
        cross_entropy = 0.5 * (
            self.latent_dim * _LOG_2PI + log_det_sigma + np.trace(P @ q.cov) + diff @ P @ diff
        )
        return float(cross_entropy - q.entropy)

    def elbo_grad(self, x, q):
        r"""Exact d ELBO / d q.params.

        With :math:`P = I + W^T\Psi^{-1}W` and :math:`g = W^T\Psi^{-1}(x-b)`:
        :math:`\partial/\partial m = g - P m`,
        :math:`\partial/\partial S = \tfrac12(S^{-1} - P)`.  For a diagonal
        Gaussian, :math:`\partial/\partial\log\sigma_i = 1 - P_{ii}\sigma_i^2`;
        for a MultivariateGaussian, :math:`\partial/\partial L = (S^{-1} - P)L
        = L^{-T} - P L` on the lower triangle, chained through ``exp`` on the
        diagonal.
        """
        x = self._check_x(x)
        q = self._check_q(q, (Gaussian, MultivariateGaussian), "elbo_grad")
        P = self._post_precision
        g = self.W.T @ ((x - self.b) / self.psi)
        grad_loc = g - P @ q.loc
        if isinstance(q, Gaussian):
            grad_log_scale = 1.0 - np.diag(P) * q.scale**2
            return np.concatenate([grad_loc, grad_log_scale])
        L = q.chol
        d = self.latent_dim
        grad_L = solve_triangular(L, np.eye(d), lower=True).T - P @ L
        grad_L = np.tril(grad_L)
        grad_L[np.diag_indices(d)] *= np.diag(L)
        return np.concatenate([grad_loc, grad_L[np.tril_indices(d)]])

    def wake_grad(self, x, q):
        r"""Exact wake-phi gradient :math:`\mathbb E_{p(z|x)}[\nabla_\phi \log q_\phi(z)]`
        (= :math:`-\nabla_\phi \mathrm{KL}(p(z|x) \| q_\phi)`) for a Gaussian or MultivariateGaussian q
        (``_wake_grad_full``); for a diagonal Gaussian, from the
        posterior's mean m and covariance S:
        :math:`\partial/\partial\mu_i = (m_i - \mu_i)/\sigma_i^2`,
        :math:`\partial/\partial\log\sigma_i = ((m_i - \mu_i)^2 + S_{ii})/\sigma_i^2 - 1`."""
        x = self._check_x(x)
        q = self._check_q(q, (Gaussian, MultivariateGaussian), "wake_grad")
        m, S = self.posterior_mean(x), self._post_cov
        if isinstance(q, MultivariateGaussian):
            return self._wake_grad_full(m, S, q)
        var = q.scale**2
        return np.concatenate([(m - q.loc) / var, ((m - q.loc) ** 2 + np.diag(S)) / var - 1.0])

    @staticmethod
    def _wake_grad_full(m, S, q):
        r"""The wake-phi gradient for q = N(mu, L L^T), params = (mu, vech L~) (L~: L with log diagonal).
        With :math:`\delta = m - \mu` and :math:`M = L^{-1}(S + \delta\delta^T)L^{-T} = \mathbb E_{p(z|x)}[u u^T]`,
        :math:`u = L^{-1}(z - \mu)`:
        :math:`\partial/\partial\mu = (L L^T)^{-1}\delta`, :math:`\partial/\partial L_{ij} = (L^{-T} M)_{ij}`
        (i > j), :math:`\partial/\partial\log L_{ii} = L_{ii}(L^{-T} M)_{ii} - 1`."""
        L = q.chol
        d = L.shape[0]
        delta = m - q.loc
        grad_loc = solve_triangular(L.T, solve_triangular(L, delta, lower=True), lower=False)
        A = solve_triangular(L, S + np.outer(delta, delta), lower=True)  # L^-1 (S + dd^T)
        M = solve_triangular(L, A.T, lower=True).T  # L^-1 (S + dd^T) L^-T (symmetric)
        G = solve_triangular(L.T, M, lower=False)  # L^-T M
        diag = np.diag_indices(d)
        G[diag] = np.diag(L) * G[diag] - 1.0
        return np.concatenate([grad_loc, G[np.tril_indices(d)]])

    def elbo_estimator_variance(self, x, q, K=1, kl="mc"):
        r"""Exact variance of the K-sample ELBO estimator under a Gaussian or
        MultivariateGaussian q = N(m, L L^T): ``kl="mc"`` for
        :math:`\frac1K\sum_k \log w_k` (``estimators.elbo``), ``kl="analytic"``
        for :math:`\frac1K\sum_k \log p(x|z_k) - \mathrm{KL}(q\,\|\,p(z))`.

        With :math:`z = m + L u`, :math:`u \sim N(0, I)` and
        :math:`r = x - b - W m`, both per-draw terms are quadratics in u,
        :math:`c + a^T u - \tfrac12 u^T A u`, whose variance is
        :math:`a^T a + \tfrac12 \operatorname{tr}(A^2)` (the cross moment of a
        linear and a quadratic form of a normal vector is zero):

        * analytic: :math:`a = L^T W^T \Psi^{-1} r`, :math:`A = L^T W^T \Psi^{-1} W L`;
        * mc: :math:`\log p(z) - \log q(z)` adds :math:`-L^T m` to a and
          :math:`L^T L - I` to A.

        The estimator's variance is that over K.  (At q = p(z|x) the mc one is 0:
        the log-weight is constant; the analytic one is not.)"""
        x = self._check_x(x)
        q = self._check_q(q, (Gaussian, MultivariateGaussian), "elbo_estimator_variance")
        K = check_count("K", K)
        if kl not in ("mc", "analytic"):
            raise ValueError(f'kl: must be "mc" or "analytic", got {kl!r}')
        m = q.mean
        L = np.diag(q.scale) if isinstance(q, Gaussian) else q.chol
        WL = self.W @ L
        a = WL.T @ ((x - self.b - self.W @ m) / self.psi)
        A = WL.T @ (WL / self.psi[:, None])
        if kl == "mc":
            a = a - L.T @ m
            A = A + L.T @ L - np.eye(self.latent_dim)
        return float((a @ a + 0.5 * np.sum(A * A.T)) / K)

    # ---- importance-weight variance ----------------------------------------
    def log_weight_second_moment(self, x, q):
        r"""Exact :math:`\log \mathbb E_q[w^2]`, :math:`w = p(x, z)/q(z)`, for a
        Gaussian or MultivariateGaussian q = N(m, S).

        With the posterior :math:`p(z|x) = N(\mu, \Sigma)`, :math:`p(x, z) =
        p(x) N(z; \mu, \Sigma)`, so

        .. math::
            \mathbb E_q[w^2] = \int \frac{p(x,z)^2}{q(z)}\,dz
                = p(x)^2 \int \frac{N(z; \mu, \Sigma)^2}{N(z; m, S)}\,dz .

        The integrand is :math:`\exp(-\tfrac12 Q(z))` times constants with
        :math:`Q(z) = 2(z-\mu)^T\Sigma^{-1}(z-\mu) - (z-m)^T S^{-1}(z-m)`, a
        quadratic of precision :math:`A = 2\Sigma^{-1} - S^{-1}
        = \Sigma^{-1}(2S - \Sigma)S^{-1}`.  The integral is finite iff A is
        positive definite, i.e. iff :math:`2S - \Sigma` is positive definite
        (q's covariance more than half the posterior's).  Then, with
        :math:`\delta = \mu - m`, completing the square (min over z of Q is
        :math:`-2\delta^T(2S-\Sigma)^{-1}\delta`, by Woodbury) and the Gaussian
        integral :math:`(2\pi)^{d/2}|A|^{-1/2}` give

        .. math::
            \log \mathbb E_q[w^2] = 2\log p(x) + \log|S| - \tfrac12\log|\Sigma|
                - \tfrac12\log|2S - \Sigma| + \delta^T (2S - \Sigma)^{-1}\delta .

        (q = posterior gives :math:`2\log p(x)`: the weight is constant.)
        Outside that region -- :math:`2S - \Sigma` not positive definite --
        :math:`\mathbb E_q[w^2]` and hence :math:`\mathrm{Var}_q[w]` are
        infinite and this returns ``+inf``.
        """
        x = self._check_x(x)
        return float(2.0 * self.log_marginal(x) + self._log_relative_second_moment(x, q))

    def _log_relative_second_moment(self, x, q):
        """log E_q[(w / p(x))^2] (+inf where infinite); x already checked."""
        q = self._check_q(q, (Gaussian, MultivariateGaussian), "log_weight_second_moment")
        S = q.cov
        Sigma = self._post_cov
        M = 2.0 * S - Sigma
        M = 0.5 * (M + M.T)
        try:
            L = np.linalg.cholesky(M)
        except np.linalg.LinAlgError:
            return float("inf")
        if not np.all(np.diag(L) > 0):  # pragma: no cover - singular boundary
            return float("inf")
        delta = self.posterior_mean(x) - q.mean
        y = solve_triangular(L, delta, lower=True)
        _, log_det_S = np.linalg.slogdet(S)
        log_det_sigma = -2.0 * np.sum(np.log(np.diag(self._post_precision_chol)))
        log_det_M = 2.0 * np.sum(np.log(np.diag(L)))
        return float(log_det_S - 0.5 * log_det_sigma - 0.5 * log_det_M + float(y @ y))

    def relative_weight_variance(self, x, q):
        r""":math:`\mathrm{Var}_q[w] / p(x)^2 = \mathbb E_q[w^2]/p(x)^2 - 1`
        (``+inf`` where the variance is infinite; see
        ``log_weight_second_moment``).  It is 0 for q = p(z|x), and the
        delta-method bias of importance sampling is about minus this over 2K."""
        x = self._check_x(x)
        # >= 0 exactly (Jensen: E[w^2] >= E[w]^2 = p^2); rounding can give -1e-17 at q = posterior
        return max(0.0, float(np.expm1(self._log_relative_second_moment(x, q))))

    # ---- moments of the weight: Renyi bounds, CUBO, ESS limit, tail shape ----
    def _weight_spectrum(self, x, q, what):
        r"""(mu, y): the eigenvalues mu_i of :math:`\Sigma^{-1}S` and the offset
        :math:`\delta = \mu_{post} - m` in their eigenbasis, whitened by the
        posterior precision's Cholesky factor :math:`L_p` (:math:`M = L_p^T S L_p
        = V \operatorname{diag}(\mu) V^T`, :math:`y = V^T L_p^T \delta`)."""
        q = self._check_q(q, (Gaussian, MultivariateGaussian), what)
        Lp = self._post_precision_chol
        M = Lp.T @ q.cov @ Lp
        mu, V = np.linalg.eigh(0.5 * (M + M.T))
        y = V.T @ (Lp.T @ (self.posterior_mean(x) - q.mean))
        return mu, y

    def _log_relative_moment(self, x, q, s):
        x = self._check_x(x)
        mu, y = self._weight_spectrum(x, q, "log_weight_moment")
        t = 1.0 + s * (mu - 1.0)  # eigenvalues of Sigma^-1/2 B Sigma^-1/2, B = s S + (1 - s) Sigma
        if not np.all(t > 0):
            return float("inf")
        return float(np.sum(0.5 * s * np.log(mu) - 0.5 * np.log1p(s * (mu - 1.0)) - 0.5 * s * (1.0 - s) * y**2 / t))

    def log_weight_moment(self, x, q, s):
        r"""Exact :math:`\log \mathbb E_q[w^s]` for real s, :math:`w = p(x,z)/q(z)`, for
        a Gaussian or MultivariateGaussian q = N(m, S).

        With the posterior :math:`N(\mu, \Sigma)`, :math:`w = p(x) N(z;\mu,\Sigma)/N(z;m,S)`, so
        :math:`\mathbb E_q[w^s] = p(x)^s \int N(z;\mu,\Sigma)^s N(z;m,S)^{1-s} dz`, a
        Gaussian integral of precision :math:`P = s\Sigma^{-1} + (1-s)S^{-1}`.
        It is finite iff P is positive definite, equivalently iff
        :math:`B = sS + (1-s)\Sigma` is (:math:`B = S P \Sigma`, and both are
        congruent to :math:`\operatorname{diag}(1 + s(\mu_i - 1))` up to positive
        factors); always for 0 <= s <= 1; for s > 1 iff
        :math:`S - (1 - 1/s)\Sigma` is positive definite (q wide enough); for
        s < 0 iff :math:`\Sigma - \frac{-s}{1-s} S` is.  Completing the square
        (min of the exponent :math:`s(1-s)\,\delta^T B^{-1}\delta`, :math:`\delta = \mu - m`)
        and :math:`\int e^{-\frac12 u^T P u} = (2\pi)^{d/2}|P|^{-1/2}` give

        .. math::
            \log \mathbb E_q[w^s] = s \log p(x) + \tfrac{1-s}2 \log|\Sigma| + \tfrac s2 \log|S|
                - \tfrac12 \log|B| - \tfrac{s(1-s)}2\, \delta^T B^{-1} \delta ,

        computed in the eigenbasis of :math:`\Sigma^{-1}S` (eigenvalues
        :math:`\mu_i`, offset coordinates :math:`y_i`) as
        :math:`\sum_i [\tfrac s2 \log\mu_i - \tfrac12 \operatorname{log1p}(s(\mu_i - 1))
        - \tfrac{s(1-s)}2 y_i^2 / (1 + s(\mu_i - 1))]`, accurate as s -> 0.
        s = 2 is ``log_weight_second_moment``.  ``+inf`` where the integral diverges.
        """
        x = self._check_x(x)
        s = check_power(s)
        rel = self._log_relative_moment(x, q, s)
        return rel if rel == float("inf") else float(s * self.log_marginal(x) + rel)

    def pareto_k(self, x, q):
        r"""The exact shape k of the weights' upper tail under a Gaussian q = N(m, S).

        :math:`\log w` is a quadratic in z; in the eigenbasis of
        :math:`\Sigma^{-1} S` (eigenvalues :math:`\mu_i`) it is
        :math:`c - \tfrac12 \sum_i (\mu_i - 1)(v_i - a_i)^2`, :math:`v \sim N(0, I)`.
        :math:`\mathbb E_q[w^s]` is finite iff :math:`1 + s(\mu_i - 1) > 0` for all i
        (``log_weight_moment``), so with :math:`\mu_{\min} < 1` the moments exist
        exactly for s < 1/(1 - mu_min): a power-law tail
        :math:`P(w > t) = t^{-1/k} L(t)` with

        .. math:: k = 1 - \mu_{\min},

        L slowly varying (:math:`(\log t)^{d'/2 - 1}`, d' the multiplicity; L is
        constant -- w exactly Pareto -- for d' = 2 with the offset orthogonal to
        those directions, e.g. q = N(mu, c Sigma) in d = 2, where k = 1 - c).
        With every :math:`\mu_i > 1` (q wider than the posterior in every
        direction) the weights are bounded, :math:`P(w > w_{\max} - \epsilon)
        \propto \epsilon^{d/2}`, and the generalised-Pareto limit is k = -2/d.
        Directions with :math:`\mu_i = 1` add a linear term (a log-normal
        factor: unbounded, every moment finite, k = 0) when the offset has a
        component there, and nothing otherwise.  NaN for q = p(z|x) (constant
        weights).  k > 1/2 is exactly where Var_q[w] is infinite."""
        x = self._check_x(x)
        mu, y = self._weight_spectrum(x, q, "pareto_k")
        one = np.abs(mu - 1.0) <= 1e-12
        if np.any(mu[~one] < 1.0):
            return float(1.0 - mu.min())
        if np.any(one & (np.abs(y) > 1e-12)):
            return 0.0
        d_eff = int(np.sum(~one))
        return float(-2.0 / d_eff) if d_eff else float("nan")

    def elbo_model_grad(self, x, q):
        r"""Exact d ELBO / d (W, b, psi) at a fixed q: a dict {"W": (D, d), "b": (D,), "psi": (D,)}.

        q enters only through its mean m and covariance S (Gaussian,
        MultivariateGaussian or Uniform); with :math:`\bar r = x - b - W m`,

        .. math::
            \frac{\partial\,\mathrm{ELBO}}{\partial W} = \Psi^{-1}(\bar r m^T - W S), \quad
            \frac{\partial\,\mathrm{ELBO}}{\partial b} = \Psi^{-1}\bar r, \quad
            \frac{\partial\,\mathrm{ELBO}}{\partial \psi_i} = -\frac{1}{2\psi_i}
                + \frac{\bar r_i^2 + (W S W^T)_{ii}}{2\psi_i^2}

        (the derivative in psi itself, not in log psi).
        """
        x = self._check_x(x)
        q = self._check_q(q, (Gaussian, MultivariateGaussian, Uniform), "elbo_model_grad")
        m, S = q.mean, q.cov
        r = x - self.b - self.W @ m
        WSWt_diag = np.einsum("ij,jk,ik->i", self.W, S, self.W)
        return {
            "W": (np.outer(r, m) - self.W @ S) / self.psi[:, None],
            "b": r / self.psi,
            "psi": -0.5 / self.psi + 0.5 * (r**2 + WSWt_diag) / self.psi**2,
        }

    @classmethod
    def ppca_mle(cls, X, d):
        r"""Closed-form probabilistic-PCA maximum likelihood (Tipping & Bishop 1999).

        For data X (n, D) with mean :math:`\bar x` and covariance
        :math:`S = \frac1n \sum_i (x_i - \bar x)(x_i - \bar x)^T = U \Lambda U^T`
        (eigenvalues :math:`\lambda_1 \ge \dots \ge \lambda_D`), the maximum of
        :math:`\sum_i \log N(x_i; b, W W^T + \sigma^2 I)` over W (D, d), b and an
        isotropic noise :math:`\sigma^2` is attained at

        .. math::
            b = \bar x, \quad \sigma^2 = \frac{1}{D-d}\sum_{j>d}\lambda_j, \quad
            W = U_d(\Lambda_d - \sigma^2 I)^{1/2}

        (unique up to a rotation of W's columns).  Returns that LinearGaussian,
        with ``psi = sigma^2 * ones(D)``.
        """
        X = as_float_array("X", X, ndim=2)
        n, D = X.shape
        d = check_count("d", d)
        if n < 2:
            raise ValueError(f"X: need at least 2 rows, got {n}")
        if d >= D:
            raise ValueError(f"d: must be smaller than the data dimension D={D}, got {d}")
        mean = X.mean(axis=0)
        S = (X - mean).T @ (X - mean) / n
        eigval, eigvec = np.linalg.eigh(S)
        order = np.argsort(eigval)[::-1]
        eigval, eigvec = eigval[order], eigvec[:, order]
        sigma2 = float(np.mean(eigval[d:]))
        if sigma2 <= 0:
            raise ValueError("X: the data lie in a d-dimensional subspace; the noise variance would be 0")
        W = eigvec[:, :d] * np.sqrt(np.maximum(eigval[:d] - sigma2, 0.0))
        return cls(W, mean, np.full(D, sigma2))
