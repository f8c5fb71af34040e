r"""ELBO gradient estimators for binary latents under a ``Bernoulli`` q (logits theta).

Rows of ``estimators.gradients.METHODS``.  On ``SigmoidBeliefNet`` and
``MissingPixels`` they run compiled (``estimators._kernels.discrete``: parallel
over (replicate, chunk) units, memory flat in K, bit-identical for any
NUMBA_NUM_THREADS); on any other binary problem (a user's, with ``log_joint``
and, for the relaxations, ``grad_log_joint_relaxed``) they run on the
vectorised NumPy implementation below, which ``numpy_gradient`` also exposes
for either (it is the peer of ``python -m bench peers --sections discrete``).  With :math:`\pi = \sigma(\theta)`,
:math:`f_\theta(b) = \log p(x, b) - \log q_\theta(b)` and the ELBO
:math:`\mathcal L = \mathbb E_q[f_\theta(b)]`.  Since
:math:`\mathbb E_q[\partial_\theta f_\theta(b)|_b] = -\mathbb E_q[s] = 0`, an
unbiased gradient of :math:`\mathbb E_q[f(b)]` for f held at the current
theta is unbiased for the ELBO gradient.

Draws (NumPy path): replicate r's K samples are cut into units (r, c) of at most CHUNK,
each with ``Generator(PCG64(SeedSequence(key, spawn_key=(r, c))))`` -- the
generator the generic path hands ``Bernoulli.sample`` -- and one uniform
matrix u (n, m) per unit; :math:`b = 1[u < \pi]` is then exactly the draw of
"score" at the same seed.  Memory is flat in K.  The compiled path draws the
same layout from the suite's counter-seeded xoshiro streams instead (so its
numbers differ from the NumPy path's, its distribution does not).

================  ==================================================================  =========
method            per-sample term (averaged over the K samples)                       bias
================  ==================================================================  =========
arm               :math:`(f(1[u > \sigma(-\theta)]) - f(1[u < \pi]))\,(u - \tfrac12)`   unbiased
disarm            :math:`\tfrac12 (f(b) - f(\tilde b))\,(-1)^{\tilde b_i}
                  1[b_i \ne \tilde b_i]\,\sigma(|\theta_i|)`, :math:`\tilde b = 1[1-u < \pi]`  unbiased
rebar             see ``_rebar_elbo``                                                 unbiased
gumbel_softmax    :math:`\nabla_z \log p(x, \zeta)\odot \zeta(1-\zeta)/\tau + \nabla_\theta H(q)`,
                  :math:`\zeta = \sigma((\theta - \mathrm{logit}\,u)/\tau)`            biased
straight_through  :math:`\nabla_z \log p(x, b)\odot \pi(1-\pi) + \nabla_\theta H(q)`    biased
================  ==================================================================  =========

ARM/DisARM/REBAR use two evaluations of ``p.log_joint`` per sample (an
antithetic pair, or a hard sample and its relaxation).  The relaxations
estimate :math:`\nabla_\theta \mathbb E_q[\log p(x, b)]` through the relaxed
sample and add the entropy gradient in closed form,
:math:`\nabla_{\theta_i} H(q) = -\theta_i \pi_i (1 - \pi_i)`; they need the
problem's **relaxed log-joint**: ``p.grad_log_joint_relaxed(x, z)`` -> (n, m),
:math:`\nabla_z \log p(x, z)` of the problem's formula extended to
z in [0, 1]^m (REBAR also needs its value, ``p.log_joint_relaxed(x, z)`` -> (n,)).
SigmoidBeliefNet and MissingPixels define both.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, log_expit, logit

from problems import MissingPixels, SigmoidBeliefNet
from problems.distributions import Bernoulli

from ._generic import log_weights_unit
from ._validation import plain
from ._kernels.discrete import bernoulli as kernel
from ._kernels.driver import CHUNK
from .weights import check_call
from .expectation import arm_terms, disarm_terms, unit_generator, units

__all__ = ["check_temperature", "arm_elbo", "disarm_elbo", "gumbel_softmax_elbo", "straight_through_elbo",
           "rebar_elbo", "numpy_gradient", "compiled_model"]


def check_temperature(name, value):
    """A finite float > 0 (temperature, eta: finite)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: must be a number, got {plain(value)}") from None
    if not np.isfinite(v) or (name == "temperature" and v <= 0):
        raise ValueError(f"{name}: must be {'> 0' if name == 'temperature' else 'finite'}, got {plain(value)}")
    return v


def _check(p, q, method, relaxed=False, value=False):
    if type(q) is not Bernoulli or getattr(p, "latent_type", "continuous") != "binary":
        raise ValueError(
            f'q: method "{method}" is for binary latents under a Bernoulli q, got {type(q).__name__} on '
            f"{type(p).__name__} (latent_type {getattr(p, 'latent_type', 'continuous')!r})"
        )
    if relaxed and not hasattr(p, "grad_log_joint_relaxed"):
        raise ValueError(
            f'p.grad_log_joint_relaxed: missing; method "{method}" needs the gradient of log p(x, z) in a '
            f"relaxed z in [0,1]^m, and {type(p).__name__} does not define it"
        )
    if value and not hasattr(p, "log_joint_relaxed"):
        raise ValueError(
            f'p.log_joint_relaxed: missing; method "{method}" needs log p(x, z) at a relaxed z in [0,1]^m, '
            f"and {type(p).__name__} does not define it"
        )


def _f(p, x, q):
    """b -> log p(x, b) - log q(b), the user's log_joint checked."""
    return lambda b: log_weights_unit(p, x, b, q.log_prob(b))


def _relaxed_grad(p, x, z):
    n, m = z.shape
    g = np.asarray(p.grad_log_joint_relaxed(x, z), dtype=np.float64)
    if g.shape != (n, m):
        raise ValueError(f"p.grad_log_joint_relaxed: returned shape {g.shape}, expected ({n}, {m})")
    if not np.isfinite(g).all():
        raise ValueError("p.grad_log_joint_relaxed: returned a non-finite value")
    return g


def _entropy_grad(q):
    pi = q.probs
    v = pi * (1.0 - pi)
    return np.where(v > 0, -q.params * np.where(v > 0, v, 1.0), 0.0)


def _same_model(p, cls, members):
    """p is a cls whose model members are cls's own (a subclass redefining one is another model)."""
    return isinstance(p, cls) and all(getattr(type(p), n) is getattr(cls, n) for n in members)


def compiled_model(p, x, q):
    r"""The compiled kernel's model arguments (``_kernels.discrete.bernoulli.SBNModel`` /
    ``MPModel``) for a Bernoulli q on a ``SigmoidBeliefNet`` or ``MissingPixels`` p
    at a validated x, or None (the NumPy path then serves the call).  A subclass
    that redefines ``log_joint`` or the relaxed log-joint is another model: None."""
    if type(q) is not Bernoulli:
        return None
    members = ("log_joint", "log_joint_relaxed", "grad_log_joint_relaxed")
    if _same_model(p, SigmoidBeliefNet, members):
        c = np.ascontiguousarray(p.c, dtype=np.float64)
        WT = np.ascontiguousarray(p.W.T, dtype=np.float64)
        bias = np.ascontiguousarray(p.b, dtype=np.float64)
        bounded = bool(np.max(np.abs(bias) + np.abs(WT).sum(axis=0)) < 600.0)
        return kernel.SBNModel(WT, bias, c, np.ascontiguousarray(x, dtype=np.float64), float(np.sum(log_expit(-c))),
                               np.exp(-WT) if bounded else np.ones((1, 1)), np.exp(-bias), bounded)
    if _same_model(p, MissingPixels, members + ("observed_log_likelihoods",)):
        lat_on, lat_off = p.latent_log_templates
        base = p.observed_log_likelihoods(x) + lat_off.sum(axis=1)
        return kernel.MPModel(np.ascontiguousarray(base, dtype=np.float64),
                              np.ascontiguousarray((lat_on - lat_off).T, dtype=np.float64))
    return None


def _kernel_q(q):
    theta = np.ascontiguousarray(q.params, dtype=np.float64)
    pi = np.ascontiguousarray(q.probs, dtype=np.float64)
    with np.errstate(divide="ignore"):
        parts = (theta, pi, expit(-theta), log_expit(theta), log_expit(-theta), pi * expit(-theta), expit(np.abs(theta)))
    return kernel.BernoulliQ(*(np.ascontiguousarray(a, dtype=np.float64) for a in parts))


_NUMPY = {}


def numpy_gradient(p, x, q, K, R, method, seed=0, **options):
    """(R, m) estimates of ``method`` ("arm", "disarm", "rebar", "gumbel_softmax",
    "straight_through") on the vectorised NumPy path whatever p is: the same
    estimator as ``estimators.gradient(p, x, q, K, R, method, seed=seed, **options)``
    (which runs compiled on SigmoidBeliefNet / MissingPixels), other draws.  The
    peer the compiled kernels are checked and timed against."""
    if method not in _NUMPY:
        raise ValueError(f"method: expected one of {sorted(_NUMPY)}, got {method!r}")
    x, K, R, key = check_call(p, x, K, R, seed)
    fn, defaults = _NUMPY[method]
    for name in options:
        if name not in defaults:
            raise ValueError(f'{name}: not an option of method "{method}"')
    return np.ascontiguousarray(fn(p, x, q, K, R, key, **{**defaults, **options}, numpy=True))


def _loop(K, R, m, key, per_unit, draws=1):
    """(R, m) averages over each replicate's K samples of ``per_unit(*uniforms)``
    (row-wise terms).  Unit (r, c) draws ``draws`` uniform (n, m) matrices, in
    order, from its own generator; the rows of consecutive units are batched
    (up to CHUNK rows) into one call -- the terms are row-wise, so each unit's
    sum is the same whatever the batching -- and summed unit by unit."""
    out = np.zeros((R, m))
    batch, owners = [], []

    def flush():
        if not batch:
            return
        terms = per_unit(*[np.concatenate([b[i] for b in batch]) for i in range(draws)])
        start = 0
        for r, b in zip(owners, batch):
            n = b[0].shape[0]
            out[r] += terms[start : start + n].sum(axis=0)
            start += n
        batch.clear()
        owners.clear()

    rows = 0
    for r, c, n in units(K, R):
        rng = unit_generator(key, r, c)
        batch.append([rng.random((n, m)) for _ in range(draws)])
        owners.append(r)
        rows += n
        if rows >= CHUNK:
            flush()
            rows = 0
    flush()
    return out / K


def arm_elbo(p, x, q, K, R, key, *, numpy=False):
    r"""ARM, augment-REINFORCE-merge (Yin & Zhou 2019): per sample, u ~ U(0,1)^m,

    .. math:: \hat g = \big(f(1[u > \sigma(-\theta)]) - f(1[u < \sigma(\theta)])\big)\,(u - \tfrac12).

    Unbiased; two evaluations of f per sample."""
    _check(p, q, "arm")
    model = None if numpy else compiled_model(p, x, q)
    if model is not None:
        return kernel.means(model, _kernel_q(q), "arm", 1.0, 0.0, key, K, R)
    f, theta = _f(p, x, q), q.params
    return _loop(K, R, q.dim, key, lambda u: arm_terms(f, theta, u))


def disarm_elbo(p, x, q, K, R, key, *, numpy=False):
    r"""DisARM (Dong, Mnih & Tucker 2020), ARM with the augmentation integrated out:
    :math:`b = 1[u < \sigma(\theta)]`, :math:`\tilde b = 1[1 - u < \sigma(\theta)]` (antithetic),

    .. math:: \hat g_i = \tfrac12 \big(f(b) - f(\tilde b)\big)\, (-1)^{\tilde b_i}\,
              1[b_i \ne \tilde b_i]\, \sigma(|\theta_i|).

    Unbiased; never more variance than ARM per pair."""
    _check(p, q, "disarm")
    model = None if numpy else compiled_model(p, x, q)
    if model is not None:
        return kernel.means(model, _kernel_q(q), "disarm", 1.0, 0.0, key, K, R)
    f, theta = _f(p, x, q), q.params
    return _loop(K, R, q.dim, key, lambda u: disarm_terms(f, theta, u))


def gumbel_softmax_elbo(p, x, q, K, R, key, temperature, *, numpy=False):
    r"""Binary Concrete / Gumbel-softmax (Maddison et al. 2017; Jang et al. 2017):
    :math:`\zeta = \sigma((\theta + L)/\tau)` with logistic noise
    :math:`L = -\mathrm{logit}(u)`, term :math:`\nabla_z \log p(x, \zeta) \odot
    \zeta (1 - \zeta)/\tau`, plus the exact entropy gradient.  Biased; the bias
    vanishes as :math:`\tau \to 0` (where the variance grows)."""
    _check(p, q, "gumbel_softmax", relaxed=True)
    tau, theta = check_temperature("temperature", temperature), q.params
    model = None if numpy else compiled_model(p, x, q)
    if model is not None:
        return kernel.means(model, _kernel_q(q), "gumbel_softmax", tau, 0.0, key, K, R) + _entropy_grad(q)

    def terms(u):
        with np.errstate(divide="ignore", over="ignore"):
            zeta = expit((theta - logit(u)) / tau)
        return _relaxed_grad(p, x, zeta) * (zeta * (1.0 - zeta) / tau)

    return _loop(K, R, q.dim, key, terms) + _entropy_grad(q)


def straight_through_elbo(p, x, q, K, R, key, *, numpy=False):
    r"""Straight-through (Bengio et al. 2013): the hard sample :math:`b = 1[u < \pi]`
    forward, :math:`\partial b/\partial\theta := \pi(1-\pi)` backward:
    term :math:`\nabla_z \log p(x, b) \odot \pi (1-\pi)`, plus the exact entropy
    gradient.  Biased (its expectation is an enumerable sum over b)."""
    _check(p, q, "straight_through", relaxed=True)
    model = None if numpy else compiled_model(p, x, q)
    if model is not None:
        return kernel.means(model, _kernel_q(q), "straight_through", 1.0, 0.0, key, K, R) + _entropy_grad(q)
    pi = q.probs
    return _loop(K, R, q.dim, key, lambda u: _relaxed_grad(p, x, (u < pi).astype(np.float64)) * (pi * (1 - pi))) + (
        _entropy_grad(q)
    )


def rebar_elbo(p, x, q, K, R, key, temperature, eta, *, numpy=False):
    r"""REBAR (Tucker et al. 2017), with :math:`z = \theta + L`, :math:`L = -\mathrm{logit}(u)`,
    :math:`b = H(z) = 1[u < \pi]`, the conditional sample :math:`\tilde z = \theta +
    \mathrm{logit}(u')` with :math:`u' = 1 - \pi + v\pi` (b = 1) or :math:`u' = v(1-\pi)`
    (b = 0), v a second uniform, and the relaxed control variate
    :math:`\tilde f(z) = \log p(x, \sigma(z/\tau)) - \theta\cdot\sigma(z/\tau) - \sum_j \log(1 - \pi_j)`
    (theta held fixed; it relaxes :math:`f_\theta(b) = \log p(x, b) - \log q(b) = \log p(x, b) - \theta\cdot b
    - \sum_j \log(1 - \pi_j)` term by term -- the constant changes no expectation, and leaving it out
    of the control variate would add :math:`(\sum_j \log(1-\pi_j))^2 \pi_i(1-\pi_i)` to each coordinate's variance):

    .. math:: \hat g = [f(b) - \eta \tilde f(\tilde z)](b - \pi)
              + \eta\, \partial_\theta \tilde f(z) - \eta\, \partial_\theta \tilde f(\tilde z).

    Unbiased for any temperature and eta (the control variate's expectation is
    restored by its two reparameterized terms)."""
    _check(p, q, "rebar", relaxed=True, value=True)
    tau = check_temperature("temperature", temperature)
    eta = check_temperature("eta", eta)
    model = None if numpy else compiled_model(p, x, q)
    if model is not None:
        return kernel.means(model, _kernel_q(q), "rebar", tau, eta, key, K, R)
    theta, pi = q.params, q.probs
    f = _f(p, x, q)
    m = q.dim
    log_off_sum = float(np.sum(log_expit(-theta)))  # sum_j log(1 - pi_j)

    def ftilde(zeta):
        n = zeta.shape[0]
        v = np.asarray(p.log_joint_relaxed(x, zeta), dtype=np.float64)
        if v.shape != (n,) or not np.isfinite(v).all():
            raise ValueError(f"p.log_joint_relaxed: returned shape {v.shape} or non-finite values, expected ({n},)")
        return v - zeta @ theta - log_off_sum, _relaxed_grad(p, x, zeta) - theta

    def terms(u, v):
        b = (u < pi).astype(np.int8)
        with np.errstate(divide="ignore", over="ignore"):
            z = theta - logit(u)
            up = np.where(b > 0, 1.0 - pi + v * pi, v * (1.0 - pi))
            zt = theta + logit(up)
            dup = np.where(b > 0, -(1.0 - v), -v) * pi * (1.0 - pi)
            dzt = 1.0 + dup / (up * (1.0 - up))
            zeta, zeta_t = expit(z / tau), expit(zt / tau)
        _, g = ftilde(zeta)
        ft, gt = ftilde(zeta_t)
        dzeta, dzeta_t = zeta * (1 - zeta) / tau, zeta_t * (1 - zeta_t) / tau * dzt
        return (f(b) - eta * ft)[:, None] * (b - pi) + eta * (g * dzeta - gt * dzeta_t)

    # u first, so b = 1[u < pi] is the draw of the other methods; then v
    return _loop(K, R, m, key, terms, draws=2)


_NUMPY.update({
    "arm": (arm_elbo, {}),
    "disarm": (disarm_elbo, {}),
    "rebar": (rebar_elbo, {"temperature": 0.5, "eta": 1.0}),
    "gumbel_softmax": (gumbel_softmax_elbo, {"temperature": 0.5}),
    "straight_through": (straight_through_elbo, {}),
})
