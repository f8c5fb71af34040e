r"""A one-layer sigmoid belief net (Neal 1992): binary latents, binary observations.

.. math::
    h \in \{0,1\}^m,\quad p(h) = \prod_j \mathrm{Bern}(h_j; \sigma(c_j)), \qquad
    x \mid h \sim \prod_i \mathrm{Bern}(x_i; \sigma(a_i)),\ a = W h + b,

with W (D, m), b (D,), c (m,).  So

.. math::
    \log p(x, h) = \sum_j [h_j \log\sigma(c_j) + (1-h_j)\log\sigma(-c_j)]
                 + \sum_i [x_i \log\sigma(a_i) + (1-x_i)\log\sigma(-a_i)],

and :math:`\log p(x) = \operatorname{logsumexp}_h \log p(x, h)` over all
:math:`2^m` states.  The exact posterior is not a product of Bernoullis (the
units are coupled through the likelihood); ``posterior(x)`` returns it as a
``BernoulliMixture`` of :math:`2^m` point masses (m <= 16), and
``posterior_marginals`` / ``elbo`` / ``kl`` / ``elbo_grad`` / ``wake_grad``
enumerate the states in chunks (m <= 20; above that a ValueError).

The relaxed log-joint (the same formula for h in [0,1]^m, used by the
relaxation gradient estimators "gumbel_softmax" and "straight_through") and
its gradient are ``log_joint_relaxed`` and ``grad_log_joint_relaxed``:
:math:`\nabla_h \log p(x, h) = c + W^T (x - \sigma(W h + b))`
(using :math:`\log\sigma(c) - \log\sigma(-c) = c`).
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, log_expit, logsumexp

from ._validation import as_float_array, check_count, check_seed
from .base import Problem
from .distributions import Bernoulli, BernoulliMixture

__all__ = ["SigmoidBeliefNet"]

MAX_ENUMERATION_BITS = 20
MAX_POSTERIOR_BITS = 16
_ENUM_CHUNK = 1 << 14


def _bits(name, value, length):
    arr = np.asarray(value)
    if arr.ndim == 0 or arr.shape[-1] != length:
        raise ValueError(f"{name}: expected trailing dimension {length}, got shape {arr.shape}")
    if not np.isin(arr, (0, 1)).all():
        raise ValueError(f"{name}: entries must be 0 or 1")
    return arr.astype(np.float64)


class SigmoidBeliefNet(Problem):
    """p(h) = prod Bern(sigmoid(c)); x | h ~ prod Bern(sigmoid(W h + b)).  W (D, m), b (D,), c (m,)."""

    discrete = True
    latent_type = "binary"

    def __init__(self, W, b, c):
        W = as_float_array("W", W, ndim=2)
        D, m = W.shape
        if D < 1 or m < 1:
            raise ValueError(f"W: expected shape (D, m) with D, m >= 1, got {W.shape}")
        if m > MAX_ENUMERATION_BITS:
            raise ValueError(
                f"W: has m = {m} latent units; the exact log p(x) enumerates 2^m states, so m <= "
                f"{MAX_ENUMERATION_BITS}"
            )
        self.W = np.ascontiguousarray(W)
        self.b = as_float_array("b", b, shape=(D,))
        self.c = as_float_array("c", c, shape=(m,))
        self.obs_dim, self.latent_dim = D, m

    def __repr__(self):
        return f"SigmoidBeliefNet(D={self.obs_dim}, m={self.latent_dim})"

    @classmethod
    def random(cls, m, D, seed=0, weight_scale=1.0):
        """W ~ N(0, weight_scale^2), b ~ N(0, 0.5^2), c ~ N(0, 1); m <= 20."""
        m, D = check_count("m", m), check_count("D", D)
        if m > MAX_ENUMERATION_BITS:
            raise ValueError(f"m: must be <= {MAX_ENUMERATION_BITS} (exact answers enumerate 2^m states), got {m}")
        rng = np.random.default_rng(check_seed(seed))
        return cls(weight_scale * rng.standard_normal((D, m)), 0.5 * rng.standard_normal(D), rng.standard_normal(m))

    # ---- sampling and densities --------------------------------------------
    def sample(self, n, seed=0):
        """n observations x (n, D)."""
        n, rng = self._check_sample_args(n, seed)
        h = rng.random((n, self.latent_dim)) < expit(self.c)
        return (rng.random((n, self.obs_dim)) < expit(h @ self.W.T + self.b)).astype(np.float64)

    def _check_x(self, x, allow_batch=False):
        x = super()._check_x(x, allow_batch)
        if not np.isin(x, (0.0, 1.0)).all():
            raise ValueError("x: observations must be 0 or 1")
        return x

    def _log_joint_rows(self, X, H):
        """log p(x, h) for X (n_x, D) and H (n_h, m) in [0,1]: (n_x, n_h)."""
        a = H @ self.W.T + self.b  # (n_h, D)
        prior = H @ log_expit(self.c) + (1.0 - H) @ log_expit(-self.c)
        lik = X @ log_expit(a).T + (1.0 - X) @ log_expit(-a).T
        return prior[None, :] + lik

    def log_joint(self, x, z):
        """log p(x, h) for h of shape (n, m) (or (m,)): (n,) (or a float)."""
        x = self._check_x(x)
        h = _bits("z", z, self.latent_dim)
        out = self._log_joint_rows(x[None, :], h.reshape(-1, self.latent_dim))[0]
        return out.reshape(h.shape[:-1]) if h.ndim > 1 else float(out[0])

    def log_joint_relaxed(self, x, z):
        """The same formula for z in [0, 1]^m: (n,)."""
        x = self._check_x(x)
        z = as_float_array("z", z, shape=(None, self.latent_dim))
        return self._log_joint_rows(x[None, :], z)[0]

    def grad_log_joint_relaxed(self, x, z):
        r""":math:`\nabla_z \log p(x, z) = c + W^T(x - \sigma(W z + b))` for z in [0,1]^m: (n, m)."""
        x = self._check_x(x)
        z = as_float_array("z", z, shape=(None, self.latent_dim))
        return self.c + (x - expit(z @ self.W.T + self.b)) @ self.W

    def _states(self):
        m = self.latent_dim
        powers = 1 << np.arange(m)
        for start in range(0, 1 << m, _ENUM_CHUNK):
            idx = np.arange(start, min(1 << m, start + _ENUM_CHUNK))
            yield ((idx[:, None] & powers) > 0).astype(np.float64)

    def _log_marginal_rows(self, X):
        if not np.isin(X, (0.0, 1.0)).all():
            raise ValueError("x: observations must be 0 or 1")
        parts = [logsumexp(self._log_joint_rows(X, H), axis=1) for H in self._states()]
        return logsumexp(np.stack(parts, axis=1), axis=1)

    def prior(self):
        return Bernoulli(expit(self.c))

    # ---- exact posterior ---------------------------------------------------
    def _posterior_table(self, x):
        """(H (2^m, m), log p(h | x) (2^m,)) by enumeration."""
        x = self._check_x(x)
        H = np.concatenate(list(self._states()))
        lj = self._log_joint_rows(x[None, :], H)[0]
        return H, lj - logsumexp(lj)

    def posterior(self, x):
        """Exact p(h | x): a BernoulliMixture of the 2^m point masses with weights p(h | x) (m <= 16)."""
        if self.latent_dim > MAX_POSTERIOR_BITS:
            raise ValueError(
                f"m: posterior(x) lists all 2^m states as a mixture, so m <= {MAX_POSTERIOR_BITS}; "
                f"got m = {self.latent_dim} (posterior_marginals works up to m = {MAX_ENUMERATION_BITS})"
            )
        H, log_post = self._posterior_table(x)
        return BernoulliMixture(np.exp(log_post), H)

    def posterior_marginals(self, x):
        """P(h_j = 1 | x): (m,)."""
        H, log_post = self._posterior_table(x)
        return np.exp(log_post) @ H

    # ---- exact variational quantities by enumeration ------------------------
    def _q_table(self, q, what):
        q = self._check_q(q, (Bernoulli,), what)
        theta = q.params
        with np.errstate(invalid="ignore"):
            q_on, q_off = log_expit(theta), log_expit(-theta)
        for H in self._states():
            log_q = np.sum(np.where(H > 0, q_on, 0.0) + np.where(H < 1, q_off, 0.0), axis=1)
            keep = np.isfinite(log_q)
            if keep.any():
                yield H[keep], log_q[keep]

    def elbo(self, x, q):
        """Exact ELBO = sum_h q(h) [log p(x, h) - log q(h)] over the 2^m states."""
        x = self._check_x(x)
        total = 0.0
        for H, log_q in self._q_table(q, "elbo"):
            total += float(np.sum(np.exp(log_q) * (self._log_joint_rows(x[None, :], H)[0] - log_q)))
        return total

    def kl(self, x, q):
        """Exact KL(q || p(h|x)) = sum_h q(h) [log q(h) - log p(h|x)], log p(h|x) from
        the enumerated posterior table (a softmax of the log-joints).
        A sum that rounds below zero (q equal to the posterior up to rounding:
        as with the Gaussian mixture, about -1e-16) is
        returned as 0, the KL's bound, within that rounding."""
        self._check_q(q, (Bernoulli,), "kl")
        _, log_post = self._posterior_table(x)
        powers = 1 << np.arange(self.latent_dim)
        total = 0.0
        for H, log_q in self._q_table(q, "kl"):
            idx = H.astype(np.int64) @ powers
            total += float(np.sum(np.exp(log_q) * (log_q - log_post[idx])))
        return max(0.0, total)

    def elbo_grad(self, x, q):
        r"""Exact d ELBO / d logits of a Bernoulli q:
        :math:`\sum_h q(h) [\log p(x,h) - \log q(h)] (h - \pi)`."""
        x = self._check_x(x)
        grad = np.zeros(self.latent_dim)
        for H, log_q in self._q_table(q, "elbo_grad"):
            grad += (np.exp(log_q) * (self._log_joint_rows(x[None, :], H)[0] - log_q)) @ (H - q.probs)
        return grad

    def wake_grad(self, x, q):
        r"""Exact wake-phi gradient :math:`\mathbb E_{p(h|x)}[\nabla_\phi \log q_\phi(h)]
        = \mathbb E_{p(h|x)}[h] - \pi` for a Bernoulli q in its logits."""
        q = self._check_q(q, (Bernoulli,), "wake_grad")
        return self.posterior_marginals(x) - q.probs
