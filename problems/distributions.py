r"""Proposal distributions q(z): frozen, validated at construction.

These classes live in ``problems`` because the problems return them (their
priors and exact posteriors); ``estimators`` re-exports every one, so
``from estimators import Gaussian`` is the usual spelling.

The protocol every proposal follows (a user's own included) is documented on
``Proposal`` (``help(estimators.Proposal)``).
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import solve_triangular
from scipy.special import expit, log_expit, logsumexp, softmax

from ._validation import (
    as_category_indices,
    as_float_array,
    check_count,
    check_probabilities,
    check_seed,
    cholesky_or_raise,
)

__all__ = ["Proposal", "Gaussian", "MultivariateGaussian", "Categorical", "Bernoulli", "Uniform"]

_LOG_2PI = float(np.log(2.0 * np.pi))


def as_generator(seed, name="seed"):
    """A ``numpy.random.Generator``: ``seed`` itself if it is one, else
    ``default_rng(seed)`` for a non-negative integer seed."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(check_seed(seed, name))


class Proposal:
    r"""Base class of the proposals: a frozen distribution over the latent z.

    The protocol -- what any q must offer, a user's own included
    -------------------------------------------------------------
    Required (importance sampling, the ELBO, ``weight_stats``):

    * ``dim`` -- the latent dimension d (1 for a categorical latent);
    * ``latent_type`` -- "continuous" (z in R^d, the default), "categorical"
      (z in {0..C-1}) or "binary" (z in {0,1}^m); it must match the problem's;
    * ``sample(n, seed)`` -- n independent draws, shape (n, d); ``seed`` is a
      non-negative integer *or* a ``numpy.random.Generator`` (the estimators pass
      a Generator of their own per (replicate, chunk) unit);
    * ``log_prob(z)`` -- log q(z), vectorised over the rows of z: shape (n,);
    * ``params`` -- an unconstrained parameter vector (what gradients are taken
      with respect to) and ``with_params(theta)`` to build q at another point.

    A categorical q (``latent_type = "categorical"``) samples integer indices,
    shape (n,) or (n, 1), and its ``log_prob``/``grad_log_prob`` take indices of
    shape (n,), as ``Categorical`` does; the problem's ``log_joint`` receives
    them as (n, 1).  A binary q samples 0/1 arrays of shape (n, m).

    For the score-function gradients ("score", "score_loo"):

    * ``grad_log_prob(z)`` -- the score :math:`\nabla_\theta \log q_\theta(z)` at
      fixed z, shape (n, len(params)).

    For the pathwise gradients ("reparam", "stl", "dreg"), ``reparameterizable =
    True`` and a noise draw with its transform :math:`z = T_\theta(\varepsilon)`:

    * ``sample_noise(n, seed)`` -- (n, e) draws of the parameter-free noise;
    * ``transform(eps)`` -- z = T_theta(eps), shape (n, d);
    * ``transform_vjp(eps, v)`` -- row k is :math:`v_k^T\, \partial z_k/\partial\theta`,
      shape (n, len(params));
    * ``grad_z_log_prob(z)`` -- :math:`\nabla_z \log q(z)`, shape (n, d).

    A q with ``sample_noise`` and ``transform`` is sampled through them by the
    estimators (so value and gradient calls see the same draws).  The continuous
    proposals here also expose ``mean``, ``cov`` and ``entropy`` in closed form,
    which is what the exact ELBO/KL of a linear-Gaussian model needs.

    Subclassing ``Proposal`` is optional -- any object with these members is a
    proposal -- but it gives ``_rng`` (an integer seed or a Generator) and the
    checks of ``theta`` and ``z``.
    """

    reparameterizable = False
    discrete = False
    #: "continuous", "categorical" or "binary": the kind of latent q is a distribution over
    latent_type = "continuous"

    @property
    def params(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def with_params(self, theta):  # pragma: no cover - abstract
        raise NotImplementedError

    def _rng(self, n, seed):
        return check_count("n", n), as_generator(seed)

    def _check_theta(self, theta):
        theta = as_float_array("theta", theta, ndim=1, allow_inf=self.discrete)
        if theta.shape != self.params.shape:
            raise ValueError(
                f"theta: expected shape {self.params.shape} for {type(self).__name__}, "
                f"got {theta.shape}"
            )
        return theta

    def _check_z(self, z):
        z = np.asarray(z)
        if z.ndim == 0 or z.shape[-1] != self.dim:
            raise ValueError(f"z: expected trailing dimension {self.dim}, got shape {z.shape}")
        z = as_float_array("z", z, allow_inf=False)
        return z


# --------------------------------------------------------------------------- continuous


class Gaussian(Proposal):
    r"""Diagonal Gaussian q(z) = N(z; loc, diag(scale^2)).

    ``params = concat(loc, log(scale))``.  Reparameterizable:
    :math:`z = loc + scale \odot \varepsilon,\ \varepsilon \sim N(0, I)`.

    .. math:: \log q(z) = -\tfrac{d}{2}\log 2\pi - \sum_i \log \sigma_i
              - \tfrac12 \sum_i \big((z_i - \mu_i)/\sigma_i\big)^2
    r"""

    reparameterizable = True

    def __init__(self, loc, scale):
        loc = np.atleast_1d(as_float_array("loc", loc))
        if loc.ndim != 1:
            raise ValueError(f"loc: expected a vector of shape (d,), got {loc.shape}")
        scale = as_float_array("scale", scale, positive=True)
        try:
            scale = np.ascontiguousarray(np.broadcast_to(scale, loc.shape), dtype=np.float64)
        except ValueError:
            raise ValueError(f"scale: shape {np.shape(scale)} does not match loc {loc.shape}") from None
        self.loc, self.scale = loc, scale
        self.dim = loc.shape[0]

    def __repr__(self):
        return f"Gaussian(loc={self.loc!r}, scale={self.scale!r})"

    @property
    def params(self):
        return np.concatenate([self.loc, np.log(self.scale)])

    def with_params(self, theta):
        theta = self._check_theta(theta)
        return Gaussian(theta[: self.dim], np.exp(theta[self.dim :]))

    @property
    def mean(self):
        return self.loc.copy()

    @property
    def cov(self):
        return np.diag(self.scale**2)

    @property
    def entropy(self):
        return 0.5 * self.dim * (1.0 + _LOG_2PI) + float(np.sum(np.log(self.scale)))

    def sample(self, n, seed=0):
        n, rng = self._rng(n, seed)
        return self.loc + self.scale * rng.standard_normal((n, self.dim))

    def log_prob(self, z):
        z = self._check_z(z)
        eps = (z - self.loc) / self.scale
        return -0.5 * np.sum(eps**2, axis=-1) - np.sum(np.log(self.scale)) - 0.5 * self.dim * _LOG_2PI

    def grad_log_prob(self, z):
        r"""Score at fixed z: :math:`\partial/\partial\mu_i = (z_i-\mu_i)/\sigma_i^2`,
        :math:`\partial/\partial\log\sigma_i = ((z_i-\mu_i)/\sigma_i)^2 - 1`; (n, 2d)."""
        eps = (self._check_z(z) - self.loc) / self.scale
        return np.concatenate([eps / self.scale, eps**2 - 1.0], axis=-1)

    def grad_z_log_prob(self, z):
        r""":math:`\nabla_z \log q(z) = -(z - \mu)/\sigma^2`; (n, d)."""
        return -(self._check_z(z) - self.loc) / self.scale**2

    def sample_noise(self, n, seed=0):
        """eps ~ N(0, I_d), shape (n, d)."""
        n, rng = self._rng(n, seed)
        return rng.standard_normal((n, self.dim))

    def transform(self, eps):
        """z = loc + scale * eps."""
        return self.loc + self.scale * np.asarray(eps, dtype=np.float64)

    def transform_vjp(self, eps, v):
        r"""Rows :math:`v^T \partial z/\partial(\mu, \log\sigma) = (v,\ v \odot \sigma \odot \varepsilon)`."""
        v = np.asarray(v, dtype=np.float64)
        return np.concatenate([v, v * self.scale * np.asarray(eps, dtype=np.float64)], axis=-1)

    def _affine(self):
        """(loc, T, diagonal, base): z = loc + T u, u ~ N(0, I)."""
        return self.loc, np.diag(self.scale), True, "normal"


class MultivariateGaussian(Proposal):
    r"""Full-covariance Gaussian q(z) = N(z; loc, cov).

    ``params = concat(loc, vech(L~))`` where ``cov = L L^T`` (Cholesky) and
    ``L~`` is ``L`` with its diagonal replaced by ``log(diag(L))``; ``vech``
    lists the lower triangle row by row (``numpy.tril_indices`` order).
    Reparameterizable: :math:`z = loc + L \varepsilon`.
    r"""

    reparameterizable = True

    def __init__(self, loc, cov):
        loc = np.atleast_1d(as_float_array("loc", loc))
        if loc.ndim != 1:
            raise ValueError(f"loc: expected a vector of shape (d,), got {loc.shape}")
        d = loc.shape[0]
        cov = as_float_array("cov", cov, shape=(d, d))
        self.loc, self.cov = loc, cov
        self.chol = cholesky_or_raise("cov", cov)
        # L^{-1} once: a block's whitening is then one product (u = (z - loc) L^{-T}),
        # not a triangular solve per call
        self._chol_inv = solve_triangular(self.chol, np.eye(d), lower=True)
        self.dim = d
        self._tril = np.tril_indices(d)

    def __repr__(self):
        return f"MultivariateGaussian(loc={self.loc!r}, cov={self.cov!r})"

    @property
    def params(self):
        L = self.chol.copy()
        L[np.diag_indices(self.dim)] = np.log(np.diag(L))
        return np.concatenate([self.loc, L[self._tril]])

    def with_params(self, theta):
        theta = self._check_theta(theta)
        d = self.dim
        L = np.zeros((d, d))
        L[self._tril] = theta[d:]
        L[np.diag_indices(d)] = np.exp(np.diag(L))
        return MultivariateGaussian(theta[:d], L @ L.T)

    @property
    def mean(self):
        return self.loc.copy()

    @property
    def entropy(self):
        return 0.5 * self.dim * (1.0 + _LOG_2PI) + float(np.sum(np.log(np.diag(self.chol))))

    def sample(self, n, seed=0):
        n, rng = self._rng(n, seed)
        return self.loc + rng.standard_normal((n, self.dim)) @ self.chol.T

    def log_prob(self, z):
        z = self._check_z(z)
        flat = (z - self.loc).reshape(-1, self.dim)
        eps = flat @ self._chol_inv.T
        out = (
            -0.5 * np.sum(eps**2, axis=-1)
            - np.sum(np.log(np.diag(self.chol)))
            - 0.5 * self.dim * _LOG_2PI
        )
        return out.reshape(z.shape[:-1])

    def grad_log_prob(self, z):
        r"""Score at fixed z, with :math:`u = L^{-1}(z - \mu)`:
        :math:`\partial/\partial\mu = L^{-T}u` and
        :math:`\partial/\partial L = \operatorname{tril}(L^{-T}u\,u^T - L^{-T})`, its
        diagonal chained through :math:`L_{ii} = e^{\tilde L_{ii}}`; (n, d + d(d+1)/2)."""
        z = self._check_z(z)
        flat = (z - self.loc).reshape(-1, self.dim)
        u = flat @ self._chol_inv.T  # (n, d): L^{-1}(z - loc)
        g_loc = u @ self._chol_inv  # (n, d): L^{-T} u
        linv_t = self._chol_inv.T
        G = g_loc[:, :, None] * u[:, None, :] - linv_t[None, :, :]
        G[:, np.arange(self.dim), np.arange(self.dim)] *= np.diag(self.chol)
        out = np.concatenate([g_loc, G[:, self._tril[0], self._tril[1]]], axis=-1)
        return out.reshape(z.shape[:-1] + (out.shape[-1],))

    def grad_z_log_prob(self, z):
        r""":math:`\nabla_z \log q(z) = -\Sigma^{-1}(z - \mu)`; (n, d)."""
        z = self._check_z(z)
        flat = (z - self.loc).reshape(-1, self.dim)
        return -((flat @ self._chol_inv.T) @ self._chol_inv).reshape(z.shape)

    def sample_noise(self, n, seed=0):
        """eps ~ N(0, I_d), shape (n, d)."""
        n, rng = self._rng(n, seed)
        return rng.standard_normal((n, self.dim))

    def transform(self, eps):
        """z = loc + L eps."""
        return self.loc + np.asarray(eps, dtype=np.float64) @ self.chol.T

    def transform_vjp(self, eps, v):
        r"""Rows :math:`v^T \partial z/\partial\theta`: v for the mean and
        :math:`v_i \varepsilon_j` for :math:`L_{ij}` (i >= j), times :math:`L_{ii}` on the diagonal."""
        eps = np.asarray(eps, dtype=np.float64)
        v = np.asarray(v, dtype=np.float64)
        G = v[:, :, None] * eps[:, None, :]
        G[:, np.arange(self.dim), np.arange(self.dim)] *= np.diag(self.chol)
        return np.concatenate([v, G[:, self._tril[0], self._tril[1]]], axis=-1)

    def _affine(self):
        return self.loc, self.chol, False, "normal"


class Uniform(Proposal):
    r"""Uniform on the box [low, high] (product of intervals): the uniform
    Monte Carlo proposal for a continuous latent.

    :math:`\log q(z) = -\sum_i \log(high_i - low_i)` inside the box,
    :math:`-\infty` outside.  ``params = concat(low, high)``.

    Not reparameterizable here: its support moves with ``params``, so the
    pathwise gradient misses the boundary terms.
    """

    reparameterizable = False

    def __init__(self, low, high):
        low = np.atleast_1d(as_float_array("low", low))
        if low.ndim != 1:
            raise ValueError(f"low: expected a vector of shape (d,), got {low.shape}")
        high = np.atleast_1d(as_float_array("high", high))
        if high.shape != low.shape:
            raise ValueError(f"high: shape {high.shape} does not match low {low.shape}")
        if not (high > low).all():
            raise ValueError("high: every entry must exceed the matching entry of low")
        self.low, self.high = low, high
        self.dim = low.shape[0]

    def __repr__(self):
        return f"Uniform(low={self.low!r}, high={self.high!r})"

    @property
    def params(self):
        return np.concatenate([self.low, self.high])

    def with_params(self, theta):
        theta = self._check_theta(theta)
        return Uniform(theta[: self.dim], theta[self.dim :])

    @property
    def width(self):
        return self.high - self.low

    @property
    def mean(self):
        return 0.5 * (self.low + self.high)

    @property
    def cov(self):
        return np.diag(self.width**2 / 12.0)

    @property
    def entropy(self):
        return float(np.sum(np.log(self.width)))

    def sample(self, n, seed=0):
        n, rng = self._rng(n, seed)
        return self.low + self.width * rng.random((n, self.dim))

    def log_prob(self, z):
        z = self._check_z(z)
        inside = np.all((z >= self.low) & (z <= self.high), axis=-1)
        return np.where(inside, -self.entropy, -np.inf)

    def _affine(self):
        return self.low, np.diag(self.width), True, "uniform"


# --------------------------------------------------------------------------- discrete


class Categorical(Proposal):
    r"""Categorical q(z = k) = probs[k], k in {0, ..., C-1}.

    ``params = log(probs)`` (logits; -inf for a zero probability), and
    ``with_params(theta)`` normalises with a softmax.  Not reparameterizable.
    """

    discrete = True
    latent_type = "categorical"

    def __init__(self, probs):
        probs = check_probabilities("probs", probs)
        if probs.ndim != 1:
            raise ValueError(f"probs: expected a vector of shape (C,), got {probs.shape}")
        self.probs = probs / probs.sum()
        self.num_categories = probs.shape[0]
        self.dim = 1

    def __repr__(self):
        return f"Categorical(probs={self.probs!r})"

    @property
    def params(self):
        with np.errstate(divide="ignore"):
            return np.log(self.probs)

    @property
    def log_probs(self):
        return self.params

    def with_params(self, theta):
        theta = self._check_theta(theta)
        if np.isposinf(theta).any() or np.isneginf(theta).all():
            raise ValueError("theta: logits must be < +inf and not all -inf")
        return Categorical(softmax(theta))

    @property
    def entropy(self):
        p = self.probs[self.probs > 0]
        return float(-np.sum(p * np.log(p)))

    def sample(self, n, seed=0):
        n, rng = self._rng(n, seed)
        return rng.choice(self.num_categories, size=n, p=self.probs)

    def log_prob(self, z):
        return self.log_probs[as_category_indices("z", z, self.num_categories)]

    def grad_log_prob(self, z):
        """Score in the logits at fixed z: onehot(z) - probs; shape z.shape + (C,)."""
        k = as_category_indices("z", z, self.num_categories)
        out = np.broadcast_to(-self.probs, k.shape + (self.num_categories,)).copy()
        np.put_along_axis(out, k[..., None], np.take_along_axis(out, k[..., None], -1) + 1.0, -1)
        return out


class Bernoulli(Proposal):
    r"""Independent bits: q(z) = prod_j probs_j^{z_j} (1 - probs_j)^{1 - z_j}.

    ``params = logit(probs)`` (+-inf for a probability of exactly 1 or 0).
    ``sample`` returns an ``int8`` array of shape (n, m).  Not
    reparameterizable.
    """

    discrete = True
    latent_type = "binary"

    def __init__(self, probs):
        probs = np.atleast_1d(check_probabilities("probs", probs, sum_to_one=False))
        if probs.ndim != 1:
            raise ValueError(f"probs: expected a vector of shape (m,), got {probs.shape}")
        self.probs = probs
        self.dim = probs.shape[0]

    def __repr__(self):
        return f"Bernoulli(probs={self.probs!r})"

    @property
    def params(self):
        with np.errstate(divide="ignore"):
            return np.log(self.probs) - np.log1p(-self.probs)

    def with_params(self, theta):
        theta = self._check_theta(theta)
        return Bernoulli(expit(theta))

    @property
    def entropy(self):
        p = self.probs
        with np.errstate(divide="ignore", invalid="ignore"):
            h = -(np.where(p > 0, p * np.log(p), 0.0) + np.where(p < 1, (1 - p) * np.log1p(-p), 0.0))
        return float(np.sum(h))

    def sample(self, n, seed=0):
        n, rng = self._rng(n, seed)
        return (rng.random((n, self.dim)) < self.probs).astype(np.int8)

    def log_prob(self, z):
        z = np.asarray(z)
        if z.ndim == 0 or z.shape[-1] != self.dim:
            raise ValueError(f"z: expected trailing dimension {self.dim}, got shape {z.shape}")
        if not np.isin(z, (0, 1)).all():
            raise ValueError("z: entries must be 0 or 1")
        z = z.astype(np.float64)
        theta = self.params
        # log q = z log p + (1 - z) log(1 - p), written stably in the logits,
        # with 0 * (-inf) taken as 0 for probabilities of exactly 0 or 1.
        with np.errstate(invalid="ignore"):
            on = np.where(z > 0, log_expit(theta), 0.0)
            off = np.where(z < 1, log_expit(-theta), 0.0)
        return np.sum(on + off, axis=-1)

    def grad_log_prob(self, z):
        """Score in the logits at fixed z: z - probs; (n, m)."""
        z = _check_bits("z", z, self.dim)
        return z - self.probs



class MixtureOfGaussians(Proposal):
    r"""A one-dimensional Gaussian mixture q(z) = sum_c w_c N(z; loc_c, scale_c^2).

    The exact posterior of ``problems.MixturePrior`` has this form.
    ``params = concat(log(weights), locs, log(scales))``.  Not
    reparameterizable (the component draw is discrete).
    """

    def __init__(self, weights, locs, scales):
        weights = check_probabilities("weights", weights)
        if weights.ndim != 1:
            raise ValueError(f"weights: expected a vector of shape (C,), got {weights.shape}")
        C = weights.shape[0]
        self.weights = weights / weights.sum()
        self.locs = as_float_array("locs", locs, shape=(C,))
        self.scales = as_float_array("scales", scales, shape=(C,), positive=True)
        self.num_components = C
        self.dim = 1

    def __repr__(self):
        return f"MixtureOfGaussians(weights={self.weights!r}, locs={self.locs!r}, scales={self.scales!r})"

    @property
    def params(self):
        with np.errstate(divide="ignore"):
            return np.concatenate([np.log(self.weights), self.locs, np.log(self.scales)])

    def _check_theta(self, theta):
        theta = as_float_array("theta", theta, ndim=1, allow_inf=True)
        if theta.shape != self.params.shape:
            raise ValueError(f"theta: expected shape {self.params.shape}, got {theta.shape}")
        if not np.isfinite(theta[self.num_components :]).all():
            raise ValueError("theta: locs and log-scales must be finite")
        return theta

    def with_params(self, theta):
        theta = self._check_theta(theta)
        C = self.num_components
        return MixtureOfGaussians(softmax(theta[:C]), theta[C : 2 * C], np.exp(theta[2 * C :]))

    @property
    def mean(self):
        return np.array([np.sum(self.weights * self.locs)])

    @property
    def cov(self):
        m = self.mean[0]
        return np.array([[np.sum(self.weights * (self.scales**2 + (self.locs - m) ** 2))]])

    def sample(self, n, seed=0):
        n, rng = self._rng(n, seed)
        c = rng.choice(self.num_components, size=n, p=self.weights)
        return (self.locs[c] + self.scales[c] * rng.standard_normal(n))[:, None]

    def log_prob(self, z):
        z = self._check_z(z)[..., 0]
        with np.errstate(divide="ignore"):
            log_w = np.log(self.weights)
        comp = (
            log_w
            - np.log(self.scales)
            - 0.5 * _LOG_2PI
            - 0.5 * ((z[..., None] - self.locs) / self.scales) ** 2
        )
        return logsumexp(comp, axis=-1)

    def grad_log_prob(self, z):
        r"""Score at fixed z, with responsibilities :math:`r_c = w_c N_c(z)/q(z)`:
        :math:`r_c - w_c` (logits), :math:`r_c (z-\mu_c)/s_c^2` (locs),
        :math:`r_c(((z-\mu_c)/s_c)^2 - 1)` (log scales); (n, 3C)."""
        z = self._check_z(z)[..., 0]
        with np.errstate(divide="ignore"):
            log_w = np.log(self.weights)
        t = (z[..., None] - self.locs) / self.scales
        comp = log_w - np.log(self.scales) - 0.5 * _LOG_2PI - 0.5 * t**2
        r = np.exp(comp - logsumexp(comp, axis=-1, keepdims=True))
        return np.concatenate([r - self.weights, r * t / self.scales, r * (t**2 - 1.0)], axis=-1)


__all__ += ["MixtureOfGaussians"]


class BernoulliMixture(Proposal):
    r"""A mixture of independent-bit distributions:
    q(z) = sum_c w_c prod_j probs[c, j]^{z_j} (1 - probs[c, j])^{1 - z_j}.

    The exact posterior of ``problems.MissingPixels`` has this form.
    ``params = concat(log(weights), logit(probs).ravel())``.  Not reparameterizable.
    """

    discrete = True
    latent_type = "binary"

    def __init__(self, weights, probs):
        weights = check_probabilities("weights", weights)
        if weights.ndim != 1:
            raise ValueError(f"weights: expected a vector of shape (C,), got {weights.shape}")
        probs = check_probabilities("probs", probs, sum_to_one=False)
        if probs.ndim != 2 or probs.shape[0] != weights.shape[0]:
            raise ValueError(f"probs: expected shape ({weights.shape[0]}, m), got {probs.shape}")
        self.weights = weights / weights.sum()
        self.probs = probs
        self.num_components, self.dim = probs.shape

    def __repr__(self):
        return f"BernoulliMixture(C={self.num_components}, m={self.dim})"

    @property
    def params(self):
        with np.errstate(divide="ignore"):
            logits = np.log(self.probs) - np.log1p(-self.probs)
            return np.concatenate([np.log(self.weights), logits.ravel()])

    def with_params(self, theta):
        theta = self._check_theta(theta)
        C = self.num_components
        return BernoulliMixture(softmax(theta[:C]), expit(theta[C:]).reshape(C, self.dim))

    @property
    def marginals(self):
        """P(z_j = 1) = sum_c w_c probs[c, j]."""
        return self.weights @ self.probs

    def sample(self, n, seed=0):
        n, rng = self._rng(n, seed)
        c = rng.choice(self.num_components, size=n, p=self.weights)
        return (rng.random((n, self.dim)) < self.probs[c]).astype(np.int8)

    def log_prob(self, z):
        z = np.asarray(z)
        if z.ndim == 0 or z.shape[-1] != self.dim:
            raise ValueError(f"z: expected trailing dimension {self.dim}, got shape {z.shape}")
        if not np.isin(z, (0, 1)).all():
            raise ValueError("z: entries must be 0 or 1")
        zf = z.astype(np.float64)
        with np.errstate(divide="ignore"):
            log_on, log_off = np.log(self.probs), np.log1p(-self.probs)
            log_w = np.log(self.weights)
        # 0 * (-inf) -> 0: a bit that is off never pays log(p) and vice versa
        on = np.where(zf[..., None, :] > 0, log_on, 0.0)
        off = np.where(zf[..., None, :] < 1, log_off, 0.0)
        return logsumexp(log_w + np.sum(on + off, axis=-1), axis=-1)

    def grad_log_prob(self, z):
        r"""Score at fixed z, with responsibilities :math:`r_c`: :math:`r_c - w_c`
        (weight logits) and :math:`r_c (z_j - \pi_{cj})` (bit logits); (n, C + C m)."""
        zf = _check_bits("z", z, self.dim)
        with np.errstate(divide="ignore"):
            log_on, log_off = np.log(self.probs), np.log1p(-self.probs)
            log_w = np.log(self.weights)
        on = np.where(zf[..., None, :] > 0, log_on, 0.0)
        off = np.where(zf[..., None, :] < 1, log_off, 0.0)
        comp = log_w + np.sum(on + off, axis=-1)
        r = np.exp(comp - logsumexp(comp, axis=-1, keepdims=True))  # (n, C)
        bits = r[..., :, None] * (zf[..., None, :] - self.probs)  # (n, C, m)
        return np.concatenate([r - self.weights, bits.reshape(bits.shape[:-2] + (-1,))], axis=-1)


def _check_bits(name, z, m):
    z = np.asarray(z)
    if z.ndim == 0 or z.shape[-1] != m:
        raise ValueError(f"{name}: expected trailing dimension {m}, got shape {z.shape}")
    if not np.isin(z, (0, 1)).all():
        raise ValueError(f"{name}: entries must be 0 or 1")
    return z.astype(np.float64)


__all__ += ["BernoulliMixture", "as_generator"]
