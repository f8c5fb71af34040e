r"""A finite Gaussian mixture with the component as the latent.

.. math::
    z \sim \mathrm{Cat}(w), \qquad x \mid z = k \sim N(\mu_k, \Sigma_k)

Everything is exact by enumerating the C components:
:math:`\log p(x) = \operatorname{logsumexp}_k [\log w_k + \log N(x; \mu_k, \Sigma_k)]`,
:math:`p(z=k \mid x) = \operatorname{softmax}_k(\log p(x, k))`, and for a
Categorical q with probabilities :math:`q_k`

.. math::
    \mathrm{ELBO}(q) = \sum_k q_k [\log p(x, k) - \log q_k], \qquad
    \mathrm{KL}(q \,\|\, p(z|x)) = \sum_k q_k [\log q_k - \log p(k \mid x)],

with :math:`0 \log 0 = 0`.  With ``params = logits`` the gradient is
:math:`\partial \mathrm{ELBO}/\partial \eta_j = q_j (f_j - \sum_k q_k f_k)`,
:math:`f_k = \log p(x,k) - \log q_k`.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import solve_triangular
from scipy.special import log_softmax, logsumexp

from ._validation import (
    as_category_indices,
    as_float_array,
    check_count,
    check_probabilities,
    check_seed,
    cholesky_or_raise,
)
from .distributions import Categorical

from ._bounds import WeightMoments, check_power
from .base import Problem

_LOG_2PI = float(np.log(2.0 * np.pi))


class GaussianMixture(WeightMoments, Problem):
    """z ~ Cat(weights); x | z=k ~ N(means[k], covs[k]).  (C,), (C, D), (C, D, D)."""

    discrete = True
    latent_type = "categorical"
    latent_dim = 1

    def __init__(self, weights, means, covs):
        weights = check_probabilities("weights", weights)
        if weights.ndim != 1:
            raise ValueError(f"weights: expected shape (C,), got {weights.shape}")
        C = weights.shape[0]
        means = as_float_array("means", means, ndim=2)
        if means.shape[0] != C:
            raise ValueError(f"means: expected {C} rows (one per weight), got shape {means.shape}")
        D = means.shape[1]
        if D < 1:
            raise ValueError("means: each mean needs at least one coordinate")
        covs = as_float_array("covs", covs, shape=(C, D, D))
        self.weights = weights / weights.sum()
        self.means, self.covs = means, covs
        self.num_components, self.obs_dim = C, D
        self._chols = np.stack([cholesky_or_raise(f"covs[{k}]", covs[k]) for k in range(C)])
        # L_k^{-1} and log|L_k| once, so a table of log-densities is one batched product
        self._chol_invs = np.stack([solve_triangular(L, np.eye(D), lower=True) for L in self._chols])
        self._log_dets = np.sum(np.log(np.diagonal(self._chols, axis1=1, axis2=2)), axis=1)
        with np.errstate(divide="ignore"):
            self._log_weights = np.log(self.weights)

    @property
    def num_categories(self):
        """C: the latent's number of values (= num_components)."""
        return self.num_components

    def __repr__(self):
        return f"GaussianMixture(C={self.num_components}, D={self.obs_dim})"

    @classmethod
    def random(cls, C, D, seed=0):
        """A random, well-conditioned instance: Dirichlet(2) weights, means
        N(0, 3^2 I), covariances A A^T / D + 0.5 I."""
        C, D = check_count("C", C), check_count("D", D)
        rng = np.random.default_rng(check_seed(seed))
        weights = rng.dirichlet(np.full(C, 2.0))
        means = 3.0 * rng.standard_normal((C, D))
        A = rng.standard_normal((C, D, D))
        covs = A @ np.swapaxes(A, 1, 2) / D + 0.5 * np.eye(D)
        return cls(weights, means, covs)

    # ---- sampling and densities ------------------------------------------
    def sample(self, n, seed=0):
        """n observations x ~ p(x), shape (n, D)."""
        n, rng = self._check_sample_args(n, seed)
        k = rng.choice(self.num_components, size=n, p=self.weights)
        eps = rng.standard_normal((n, self.obs_dim))
        return self.means[k] + np.einsum("nij,nj->ni", self._chols[k], eps)

    def component_log_densities(self, X):
        """log N(x; mu_k, Sigma_k) for rows of X: shape (n, C)."""
        resid = X[None, :, :] - self.means[:, None, :]  # (C, n, D)
        eps = self._chol_invs @ np.swapaxes(resid, 1, 2)  # (C, D, n): L_k^{-1} (x - mu_k)
        out = -0.5 * np.sum(eps**2, axis=1) - self._log_dets[:, None] - 0.5 * self.obs_dim * _LOG_2PI
        return out.T

    def log_joint_table(self, x):
        """log p(x, z=k) for every k: shape (C,)."""
        x = self._check_x(x)
        return self._log_weights + self.component_log_densities(x[None, :])[0]

    def log_joint(self, x, z):
        """log p(x, z) for integer components z (any shape); x of shape (D,)."""
        table = self.log_joint_table(x)
        z = as_category_indices("z", z, self.num_components)
        if z.ndim >= 2 and z.shape[-1] == 1:
            z = z[..., 0]
        return table[z]

    def _log_marginal_rows(self, X):
        return logsumexp(self._log_weights + self.component_log_densities(X), axis=1)

    def prior(self):
        """p(z) = Cat(weights)."""
        return Categorical(self.weights)

    def posterior(self, x):
        """Exact p(z | x) = softmax_k log p(x, k), as a Categorical."""
        return Categorical(np.exp(log_softmax(self.log_joint_table(x))))

    # ---- exact variational quantities ------------------------------------
    def _q_terms(self, x, q, what):
        q = self._check_q(q, (Categorical,), what)
        if q.num_categories != self.num_components:
            raise ValueError(f"q: has {q.num_categories} categories, the mixture has {self.num_components}")
        return q, self.log_joint_table(x)

    def elbo(self, x, q):
        """Exact ELBO(q) = sum_k q_k (log p(x,k) - log q_k), by enumeration."""
        q, table = self._q_terms(x, q, "elbo")
        support = q.probs > 0
        return float(np.sum(q.probs[support] * (table[support] - np.log(q.probs[support]))))

    def kl(self, x, q):
        """Exact KL(q || p(z|x)) = sum_k q_k (log q_k - log p(k|x)), by enumeration.
        A sum that rounds below zero (q equal to the posterior up to rounding:
        91 of 200 random mixtures with q = p(k|x) gave about -1e-16) is
        returned as 0, the KL's bound, within that rounding."""
        q, table = self._q_terms(x, q, "kl")
        log_post = log_softmax(table)
        support = q.probs > 0
        return max(0.0, float(np.sum(q.probs[support] * (np.log(q.probs[support]) - log_post[support]))))

    def elbo_grad(self, x, q):
        """Exact d ELBO / d logits: q_j (f_j - sum_k q_k f_k), f = log p(x,.) - log q."""
        q, table = self._q_terms(x, q, "elbo_grad")
        support = q.probs > 0
        f = np.zeros_like(table)
        f[support] = table[support] - np.log(q.probs[support])
        mean_f = np.sum(q.probs * f)
        return q.probs * (f - mean_f)

    def wake_grad(self, x, q):
        r"""Exact wake-phi gradient :math:`\mathbb E_{p(k|x)}[\nabla_\theta \log q_\theta(k)]
        = p(\cdot|x) - q` in q's logits (the score is onehot(k) - q), by enumeration of the C components
        (:math:`= -\nabla_\theta \mathrm{KL}(p(k|x) \| q_\theta)`)."""
        q, table = self._q_terms(x, q, "wake_grad")
        return np.exp(log_softmax(table)) - q.probs

    def log_weight_moment(self, x, q, s):
        r"""Exact :math:`\log \mathbb E_q[w^s] = \log \sum_{k: q_k > 0} q_k^{1-s}\, p(x, k)^s`
        by enumeration, for real s (``renyi_bound``, ``cubo`` and ``ess_limit``
        build on it).  +inf for s < 0 when q draws a k with p(x, k) = 0."""
        s = check_power(s)
        q, table = self._q_terms(x, q, "log_weight_moment")
        support = q.probs > 0
        log_q, log_p = np.log(q.probs[support]), table[support]
        if s < 0 and np.any(log_p == -np.inf):
            return float("inf")
        with np.errstate(invalid="ignore"):
            terms = np.where(log_p == -np.inf, -np.inf, (1.0 - s) * log_q + s * log_p)
        return float(logsumexp(terms))
