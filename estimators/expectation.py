r"""Gradients of a general expectation :math:`\nabla_\theta \mathbb E_{q_\theta}[f(z)]`
(the setting of DeepMind's mc_gradients, Mohamed, Rosca, Figurnov & Mnih 2020).

``expectation_gradient(f, q, K, R, method, seed=0, grad_f=None, hess_f=None)``
returns (R, len(q.params)) replicate estimates, each the average of K
per-sample terms.  The implementation is vectorised NumPy (not compiled):
the K draws of a replicate are taken in units of at most ``CHUNK`` samples,
unit (r, c) from ``Generator(PCG64(SeedSequence(key(seed), spawn_key=(r, c))))``,
so memory is flat in K and the result depends only on the seed.

======================  =====================================================================
method (q)              per-sample term (s = grad_theta log q(z) at fixed z)
======================  =====================================================================
score (any q)           f(z) s
score_loo (any q)       (f(z_k) - mean_{j != k} f(z_j)) s_k                  (K >= 2)
reparam (pathwise q)    grad_f(z)^T dz/dtheta,  z = T_theta(eps)             (needs grad_f)
measure_valued          mean:      (f(z^{+i}) - f(z^{-i})) / (sigma_i sqrt(2 pi)),
(Gaussian)                         z^{+-i}_i = mu_i +- sigma_i W,  W ~ Rayleigh(1) = Weibull(sqrt 2, 2)
                        log scale: f(z^{Mi}) - f(z^{Ni}),  z^{Mi}_i = mu_i + sigma_i M,
                                   z^{Ni}_i = mu_i + sigma_i M U,  M ~ double-sided Maxwell,
                                   U ~ U(0, 1) (so M U ~ N(0, 1): the coupling);
                        the other coordinates shared, from q
score_cv (Gaussian)     (f(z) - h(z)) s + grad_theta E_q[h],  h the second-order Taylor
                        expansion of f about mu (needs grad_f and hess_f)
arm (Bernoulli)         (f(1[u > sigma(-theta)]) - f(1[u < sigma(theta)])) (u - 1/2)
disarm (Bernoulli)      1/2 (f(b) - f(b~)) (-1)^{b~_i} 1[b_i != b~_i] sigma(|theta_i|),
                        b = 1[u < sigma(theta)], b~ = 1[1 - u < sigma(theta)]
gumbel_softmax          grad_f(zeta) * zeta (1 - zeta) / tau,  zeta = sigma((theta - logit u)/tau)
(Bernoulli)             (BIASED; grad_f is the gradient of f extended to [0,1]^m)
straight_through        grad_f(b) * sigma(theta)(1 - sigma(theta)),  b = 1[u < sigma(theta)]   (BIASED)
======================  =====================================================================

For the measure-valued derivative the weak derivative of the Gaussian in its mean,
:math:`\partial_\mu N(z; \mu, \sigma^2) = \frac{1}{\sigma\sqrt{2\pi}}
[\mathrm{Rayleigh}^{+} - \mathrm{Rayleigh}^{-}]`, and in its scale,
:math:`\partial_\sigma N = \frac1\sigma[\mathrm{DSMaxwell}(\mu, \sigma) - N(\mu, \sigma^2)]`;
in the log-scale parameter the factor 1/sigma cancels.  Each parameter costs
two evaluations of f per sample (4 d per sample in all).

The delta-method control variate: with g = grad_f(mu), H = hess_f(mu),
:math:`h(z) = f(\mu) + g^T(z-\mu) + \tfrac12 (z-\mu)^T H (z-\mu)`,
:math:`\mathbb E_q[h] = f(\mu) + \tfrac12\sum_i H_{ii}\sigma_i^2` (g, H held at the
expansion point), so :math:`\nabla_\mu \mathbb E_q[h] = g` and
:math:`\nabla_{\log\sigma_i}\mathbb E_q[h] = H_{ii}\sigma_i^2`; the coefficient of
the control variate is 1.  Unbiased, zero variance for a quadratic f.

ARM (Yin & Zhou 2019) and DisARM (Dong, Mnih & Tucker 2020) are for a
``Bernoulli`` q in its logits; each of the K samples is one antithetic pair,
two evaluations of f.  All methods are unbiased.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from problems.distributions import Bernoulli, Gaussian

from ._kernels.driver import CHUNK
from ._validation import check_choice, check_count, check_seed, plain

__all__ = ["expectation_gradient", "EXPECTATION_METHODS", "arm_terms", "disarm_terms"]

#: method -> which proposals it applies to
EXPECTATION_METHODS = {
    "score": "any q with grad_log_prob",
    "score_loo": "any q with grad_log_prob (K >= 2)",
    "reparam": "a reparameterizable q (sample_noise, transform, transform_vjp); needs grad_f",
    "measure_valued": "Gaussian",
    "score_cv": "Gaussian; needs grad_f and hess_f",
    "arm": "Bernoulli",
    "disarm": "Bernoulli",
    "gumbel_softmax": "Bernoulli; needs grad_f of the relaxed f on [0,1]^m and temperature (biased)",
    "straight_through": "Bernoulli; needs grad_f of the relaxed f on [0,1]^m (biased)",
}
_GAUSSIAN_ONLY = ("measure_valued", "score_cv")
_BERNOULLI_ONLY = ("arm", "disarm", "gumbel_softmax", "straight_through")
_PATHWISE = ("sample_noise", "transform", "transform_vjp")


def unit_generator(key, r, c):
    """The Generator of unit (replicate r, chunk c) of a call keyed by ``key``."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(int(key), spawn_key=(int(r), int(c)))))


def units(K, R):
    """(r, c, n) of every unit, in the fixed order."""
    n_chunks = (K + CHUNK - 1) // CHUNK
    for u in range(R * n_chunks):
        r, c = divmod(u, n_chunks)
        yield r, c, min(K, (c + 1) * CHUNK) - c * CHUNK


def _values(name, fn, z, n):
    try:
        out = np.asarray(fn(z), dtype=np.float64)
    except Exception as exc:  # a user's function: name it
        raise ValueError(f"{name}: raised {type(exc).__name__}: {exc}") from exc
    if out.shape != (n,):
        raise ValueError(f"{name}: returned shape {out.shape}, expected ({n},)")
    if not np.isfinite(out).all():
        raise ValueError(f"{name}: returned a non-finite value")
    return out


def _matrix(name, fn, z, shape):
    try:
        out = np.asarray(fn(z), dtype=np.float64)
    except Exception as exc:
        raise ValueError(f"{name}: raised {type(exc).__name__}: {exc}") from exc
    if out.shape != shape:
        raise ValueError(f"{name}: returned shape {out.shape}, expected {shape}")
    if not np.isfinite(out).all():
        raise ValueError(f"{name}: returned a non-finite value")
    return out


# --------------------------------------------------------------------------- discrete cores


def arm_terms(f, theta, u):
    r"""(n, m) ARM terms :math:`(f(b^1) - f(b^2))(u - \tfrac12)`,
    :math:`b^1 = 1[u > \sigma(-\theta)]`, :math:`b^2 = 1[u < \sigma(\theta)]`;
    ``f`` maps (n, m) int8 bits to (n,)."""
    b1 = (u > expit(-theta)).astype(np.int8)
    b2 = (u < expit(theta)).astype(np.int8)
    return (f(b1) - f(b2))[:, None] * (u - 0.5)


def disarm_terms(f, theta, u):
    r"""(n, m) DisARM terms
    :math:`\tfrac12 (f(b) - f(\tilde b)) (-1)^{\tilde b_i} 1[b_i \ne \tilde b_i] \sigma(|\theta_i|)`,
    :math:`b = 1[u < \sigma(\theta)]`, :math:`\tilde b = 1[1 - u < \sigma(\theta)]`."""
    pi = expit(theta)
    b = (u < pi).astype(np.int8)
    bt = ((1.0 - u) < pi).astype(np.int8)
    sign = np.where(bt > 0, -1.0, 1.0) * (b != bt)
    return 0.5 * (f(b) - f(bt))[:, None] * sign * expit(np.abs(theta))


# --------------------------------------------------------------------------- public


def _check_q(q, method, grad_f, hess_f):
    if not hasattr(q, "params") or not hasattr(q, "sample"):
        raise ValueError(f"q: expected a proposal with params and sample(n, seed), got {type(q).__name__}")
    if method in _GAUSSIAN_ONLY and type(q) is not Gaussian:
        raise ValueError(f'q: method "{method}" needs a diagonal Gaussian q, got {type(q).__name__}')
    if method in _BERNOULLI_ONLY and type(q) is not Bernoulli:
        raise ValueError(f'q: method "{method}" is for a Bernoulli q (binary latents), got {type(q).__name__}')
    if method in ("score", "score_loo") and not hasattr(q, "grad_log_prob"):
        raise ValueError(f'q.grad_log_prob: missing; method "{method}" needs the score of q')
    if method == "reparam" and not (
        getattr(q, "reparameterizable", False) and all(hasattr(q, m) for m in _PATHWISE)
    ):
        raise ValueError(f'q: method "reparam" needs a reparameterizable q, got {type(q).__name__}')
    if method in ("reparam", "score_cv", "gumbel_softmax", "straight_through") and grad_f is None:
        raise ValueError(f'grad_f: method "{method}" needs grad_f (z (n, d) -> (n, d)), got None')
    if method == "score_cv" and hess_f is None:
        raise ValueError('hess_f: method "score_cv" needs hess_f (z (n, d) -> (n, d, d)), got None')
    for name, fn in (("grad_f", grad_f), ("hess_f", hess_f)):
        if fn is not None and not callable(fn):
            raise ValueError(f"{name}: must be callable, got {type(fn).__name__}")


def expectation_gradient(f, q, K, R, method, seed=0, grad_f=None, hess_f=None, temperature=None):
    r"""(R, len(q.params)) estimates of :math:`\nabla_{\theta} \mathbb E_{q_\theta}[f(z)]`,
    :math:`\theta` = ``q.params``.

    f : vectorised, z (n, d) -> (n,).  grad_f : z (n, d) -> (n, d), for "reparam"
    and "score_cv".  hess_f : z (n, d) -> (n, d, d), for "score_cv" (called at
    the mean only).  temperature : > 0, for "gumbel_softmax" only.  K : samples per replicate (antithetic pairs for arm/disarm);
    R : replicates; method : see ``EXPECTATION_METHODS`` and the module docstring
    for each equation.  Reproducible from ``seed``.
    """
    if not callable(f):
        raise ValueError(f"f: must be callable as f(z) -> (n,), got {type(f).__name__}")
    method = check_choice("method", method, EXPECTATION_METHODS)
    K, R = check_count("K", K), check_count("R", R)
    if method == "score_loo" and K < 2:
        raise ValueError(f'K: method "score_loo" needs K >= 2 (a leave-one-out baseline), got {K}')
    key = np.random.SeedSequence(check_seed(seed)).generate_state(1, dtype=np.uint64)[0]
    _check_q(q, method, grad_f, hess_f)
    if method == "gumbel_softmax":
        if temperature is None or not np.isfinite(float(temperature)) or float(temperature) <= 0:
            raise ValueError(f'temperature: method "gumbel_softmax" needs a temperature > 0, got {plain(temperature)}')
        tau = float(temperature)
    elif temperature is not None:
        raise ValueError(f'temperature: only "gumbel_softmax" takes a temperature, not "{method}"')
    theta = np.asarray(q.params, dtype=np.float64)
    P, d = theta.shape[0], q.dim
    fz = lambda z, n: _values("f", f, z, n)  # noqa: E731
    extra = None
    if method == "score_cv":
        mu = q.loc
        f0 = _values("f", f, mu[None, :], 1)[0]
        g0 = _matrix("grad_f", grad_f, mu[None, :], (1, d))[0]
        H0 = _matrix("hess_f", hess_f, mu[None, :], (1, d, d))[0]
        extra = (mu, f0, g0, H0, np.concatenate([g0, np.diag(H0) * q.scale**2]))

    out = np.zeros((R, P))
    loo = np.zeros((R, 2 + 2 * P)) if method == "score_loo" else None  # sum f, (unused), sum s, sum f s
    for r, c, n in units(K, R):
        rng = unit_generator(key, r, c)
        if method in ("score", "score_loo"):
            z = np.asarray(q.sample(n, rng))
            fv = fz(z, n)
            s = _matrix("q.grad_log_prob", q.grad_log_prob, z, (n, P))
            if method == "score":
                out[r] += fv @ s
            else:
                loo[r, 0] += fv.sum()
                loo[r, 2 : 2 + P] += s.sum(axis=0)
                loo[r, 2 + P :] += fv @ s
        elif method == "reparam":
            eps = q.sample_noise(n, rng)
            z = q.transform(eps)
            g = _matrix("grad_f", grad_f, z, (n, d))
            out[r] += q.transform_vjp(eps, g).sum(axis=0)
        elif method == "measure_valued":
            out[r] += _measure_valued_unit(fz, q, n, rng).sum(axis=0)
        elif method == "score_cv":
            mu, f0, g0, H0, grad_h = extra
            z = q.sample(n, rng)
            dz = z - mu
            h = f0 + dz @ g0 + 0.5 * np.einsum("ni,ij,nj->n", dz, H0, dz)
            s = q.grad_log_prob(z)
            out[r] += (fz(z, n) - h) @ s + n * grad_h
        elif method in ("gumbel_softmax", "straight_through"):
            u = rng.random((n, d))
            pi = expit(theta)
            if method == "straight_through":
                out[r] += (_matrix("grad_f", grad_f, (u < pi).astype(np.float64), (n, d)) * (pi * (1 - pi))).sum(0)
            else:
                with np.errstate(divide="ignore", over="ignore"):
                    zeta = expit((theta - np.log(u) + np.log1p(-u)) / tau)
                out[r] += (_matrix("grad_f", grad_f, zeta, (n, d)) * (zeta * (1 - zeta) / tau)).sum(0)
        else:  # arm, disarm
            u = rng.random((n, d))
            terms = arm_terms if method == "arm" else disarm_terms
            out[r] += terms(lambda b: fz(b, n), theta, u).sum(axis=0)
    if method == "score_loo":
        fbar = loo[:, :1] / K
        return (loo[:, 2 + P :] - fbar * loo[:, 2 : 2 + P]) / (K - 1)
    return out / K


def _measure_valued_unit(fz, q, n, rng):
    """(n, 2d) measure-valued terms of a diagonal Gaussian (see the module docstring)."""
    mu, sigma = q.loc, q.scale
    d = mu.shape[0]
    base = mu + sigma * rng.standard_normal((n, d))
    W = rng.rayleigh(1.0, size=(n, d))
    M = np.sqrt(rng.chisquare(3, size=(n, d))) * np.where(rng.random((n, d)) < 0.5, -1.0, 1.0)
    U = rng.random((n, d))
    out = np.empty((n, 2 * d))
    for i in range(d):
        zs = np.repeat(base[None], 4, axis=0)  # (4, n, d): +W, -W, Maxwell, Maxwell * U
        zs[0, :, i] = mu[i] + sigma[i] * W[:, i]
        zs[1, :, i] = mu[i] - sigma[i] * W[:, i]
        zs[2, :, i] = mu[i] + sigma[i] * M[:, i]
        zs[3, :, i] = mu[i] + sigma[i] * M[:, i] * U[:, i]
        fv = fz(zs.reshape(4 * n, d), 4 * n).reshape(4, n)
        out[:, i] = (fv[0] - fv[1]) / (sigma[i] * np.sqrt(2.0 * np.pi))
        out[:, d + i] = fv[2] - fv[3]
    return out
