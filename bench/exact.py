r"""Exact quantities of (p, x, q) that the problems do not provide
themselves, from their public exact members (posterior, log-joint, log
marginal).  They give a sweep its truth columns and the suite's checks exact
standard errors; where no formula applies the answer is NaN (with the reason,
for ``truths``), never an estimate.

``truths(p, x, q, q_is_posterior=False)`` -> (columns, reasons): the exact
ELBO and KL of q, each from the first source that applies --

1. the problem's own ``p.elbo(x, q)`` / ``p.kl(x, q)`` (a ValueError,
   ArithmeticError or NotImplementedError from it means "not for this q");
2. enumeration, for a discrete latent: every category, or every one of the
   :math:`2^m` bit vectors when m <= ``MAX_ENUMERATION_BITS`` (20),
   :math:`\mathrm{ELBO} = \sum_z q(z)[\log p(x,z) - \log q(z)]`,
   :math:`\mathrm{KL} = \sum_z q(z)[\log q(z) - \log p(z|x)]` with
   :math:`\log p(z|x) = \log p(x,z) - \operatorname{logsumexp}_{z'} \log p(x,z')`
   (the enumerated normaliser, not ``p.log_marginal``);
3. a Gaussian posterior :math:`N(\mu, \Sigma)` and a Gaussian or box q
   (mean m, covariance S): :math:`\mathrm{KL} = -H(q) + \tfrac12[d\log 2\pi
   + \log|\Sigma| + \operatorname{tr}(PS) + (m-\mu)^TP(m-\mu)]`,
   :math:`P = \Sigma^{-1}`, and ELBO = log p(x) - KL;
4. q *is* the exact posterior (the unmodified "posterior" preset): KL = 0 and
   ELBO = log p(x), by definition;

and the moments below.  ``elbo_gradient(p, x, q)`` likewise: ``p.elbo_grad``,
else by enumeration (the score identity
:math:`\nabla_\theta \mathrm{ELBO} = \sum_z q(z)\,[\log p(x,z) - \log q(z)]\,\nabla_\theta \log q(z)`,
for a q with ``grad_log_prob``), else None with the reason.

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

*Discrete latent* (any problem with a categorical latent, or a binary one of
at most 20 bits; any q with ``log_prob``): enumeration over the support S of
q, :math:`f_z = \log p(x,z) - \log q(z)`,
:math:`\mathrm{E}[g(\log w)] = \sum_{z\in S} q(z)\, g(f_z)`, and
:math:`\mathrm{Var}_q[w]/p(x)^2 = \sum_{z\in S} \pi_z^2/q(z) - (\sum_{z \in S}\pi_z)^2`.

*Gaussian q* (mean m, covariance :math:`S = LL^T`) against a Gaussian
posterior (the problem's ``posterior`` must be a Gaussian; for any other
continuous posterior -- MixturePrior's mixture -- these moments are NaN) :math:`N(\mu, \Sigma)`, :math:`P = \Sigma^{-1}`: with
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
from scipy.special import logsumexp

from estimators import Gaussian, MixtureOfGaussians, MultivariateGaussian, Uniform

__all__ = [
    "MAX_ENUMERATION_BITS",
    "log_weight_moments",
    "relative_weight_variance",
    "elbo_mean_moments",
    "enumerate_latent",
    "truths",
    "elbo_gradient",
]

MAX_ENUMERATION_BITS = 20
_CHUNK = 1 << 15
_REFUSALS = (ValueError, ArithmeticError, NotImplementedError)  # "not for this q" from a problem's exact member


# --------------------------------------------------------------------------- enumeration
def _latent_values(p, q):
    """Every value of a discrete latent, in chunks; None when the latent is
    continuous or too large to enumerate."""
    kind = getattr(p, "latent_type", "continuous")
    if kind == "categorical":
        C = getattr(q, "num_categories", None) or getattr(p, "num_categories", None)
        if C is None:
            return None
        return [np.arange(int(C), dtype=np.int64)[:, None]]
    if kind == "binary":
        m = int(p.latent_dim)
        if m > MAX_ENUMERATION_BITS:
            return None
        powers = 1 << np.arange(m)
        chunks = []
        for start in range(0, 1 << m, _CHUNK):
            idx = np.arange(start, min(1 << m, start + _CHUNK))
            chunks.append(((idx[:, None] & powers) > 0).astype(np.int8))
        return chunks
    return None


def enumerate_latent(p, x, q, grad=False):
    """(log q(z), log p(x, z)[, grad log q(z)]) over every value z of a
    discrete latent (categorical, or binary of at most ``MAX_ENUMERATION_BITS``
    bits); None for a continuous or larger latent."""
    chunks = _latent_values(p, q)
    if chunks is None:
        return None
    table = getattr(p, "log_joint_table", None)
    log_q, log_joint, scores = [], [], []
    for z in chunks:
        log_q.append(np.asarray(q.log_prob(z), dtype=np.float64).reshape(len(z)))
        if table is not None and getattr(p, "latent_type", "") == "categorical":
            log_joint.append(np.asarray(table(x), dtype=np.float64)[z[:, 0]])
        else:
            log_joint.append(np.asarray(p.log_joint(x, z), dtype=np.float64).reshape(len(z)))
        if grad:
            scores.append(np.asarray(q.grad_log_prob(z), dtype=np.float64))
    out = (np.concatenate(log_q), np.concatenate(log_joint))
    return out + (np.concatenate(scores),) if grad else out


def _enumerated(p, x, q):
    """The exact ELBO, KL and log-weight moments by enumeration, or None."""
    table = enumerate_latent(p, x, q)
    if table is None:
        return None
    log_q, log_joint = table
    log_z = float(logsumexp(log_joint))  # the enumerated log p(x)
    s = np.isfinite(log_q)
    qs = np.exp(log_q[s])
    f = log_joint[s] - log_q[s]
    with np.errstate(invalid="ignore"):
        elbo = float(np.sum(qs * f))
        d = f - elbo
        var, mu4 = float(np.sum(qs * d**2)), float(np.sum(qs * d**4))
    log_post = log_joint - log_z
    kl = float(np.sum(qs * (log_q[s] - log_post[s])))
    post = np.exp(log_post)
    with np.errstate(over="ignore"):
        rel_var = float(max(np.sum(post[s] ** 2 / qs) - np.sum(post[s]) ** 2, 0.0))
    return {"elbo": elbo, "kl": kl, "var": var, "mu4": mu4, "rel_var": rel_var}


# --------------------------------------------------------------------------- Gaussian posterior
def _gaussian_posterior(p, x):
    """(mu, P = Sigma^-1, log|Sigma|) of a Gaussian posterior, else None."""
    fn = getattr(p, "posterior", None)
    if not callable(fn):
        return None
    post = fn(x)
    if not isinstance(post, (Gaussian, MultivariateGaussian)):
        return None
    cov = np.asarray(post.cov, dtype=np.float64)
    sign, logdet = np.linalg.slogdet(cov)
    return np.asarray(post.loc, dtype=np.float64), np.linalg.inv(cov), float(logdet)


def _gaussian_kl(p, x, q):
    """KL(q || N(mu, Sigma)) in closed form for a Gaussian or box q, else None."""
    if not isinstance(q, (Gaussian, MultivariateGaussian, Uniform)):
        return None
    g = _gaussian_posterior(p, x)
    if g is None:
        return None
    mu, P, logdet = g
    m, S = np.asarray(q.mean, dtype=np.float64), np.asarray(q.cov, dtype=np.float64)
    r = m - mu
    d = len(mu)
    cross = 0.5 * (d * math.log(2.0 * math.pi) + logdet + float(np.sum(P * S)) + float(r @ P @ r))
    return cross - float(q.entropy)


# --------------------------------------------------------------------------- moments
def _problem_elbo(p, x, q):
    fn = getattr(p, "elbo", None)
    if not callable(fn):
        return math.nan
    try:
        return float(fn(x, q))
    except _REFUSALS:
        return math.nan


def log_weight_moments(p, x, q):
    """(mean, variance, fourth central moment) of log w under q, exactly
    (see the module docstring); NaN for a moment with no formula here."""
    enum = _enumerated(p, x, q)
    if enum is not None:
        return enum["elbo"], enum["var"], enum["mu4"]
    mean = _problem_elbo(p, x, q)
    if math.isnan(mean):
        kl = _gaussian_kl(p, x, q)
        if kl is not None:
            mean = float(p.log_marginal(x)) - kl
    if not isinstance(q, (Gaussian, MultivariateGaussian, Uniform)):
        return mean, math.nan, math.nan
    g = _gaussian_posterior(p, x)
    if g is None:  # no formula for a non-Gaussian posterior (e.g. MixturePrior's mixture)
        return mean, math.nan, math.nan
    mu, P, _ = g
    if isinstance(q, (Gaussian, MultivariateGaussian)):
        L = np.diag(q.scale) if isinstance(q, Gaussian) else q.chol
        a = -L.T @ P @ (q.loc - mu)
        C = np.eye(len(mu)) - L.T @ P @ L
        C2 = C @ C
        k2 = float(a @ a + 0.5 * np.trace(C2))
        k4 = float(3.0 * np.trace(C2 @ C2) + 12.0 * a @ C2 @ a)
        return mean, max(k2, 0.0), max(k4 + 3.0 * k2 * k2, 0.0)
    m = 0.5 * (q.low + q.high)
    width = q.high - q.low
    v = width**2 / 12.0
    nu = width**4 / 80.0
    gvec = -P @ (m - mu)
    off = P**2 * np.outer(v, v)
    np.fill_diagonal(off, 0.0)
    var = float(np.sum(gvec**2 * v) + 0.25 * (np.sum(np.diag(P) ** 2 * (nu - v**2)) + 2.0 * np.sum(off)))
    return mean, var, math.nan


def elbo_mean_moments(var, mu4, K):
    r"""Variance and fourth central moment of the mean of K i.i.d. log-weights:
    :math:`\sigma^2/K` and :math:`(\mu_4 + 3(K-1)\sigma^4)/K^3`."""
    return var / K, (mu4 + 3.0 * (K - 1) * var * var) / K**3


def _log_gaussian_ratio_integral(mu, Sigma, m, S):
    r""":math:`\log \int N(z;\mu,\Sigma)^2 / N(z; m, S)\,dz` (+inf where it diverges):
    :math:`\log|S| - \tfrac12\log|\Sigma| - \tfrac12\log|2S - \Sigma| + \delta^T(2S - \Sigma)^{-1}\delta`,
    :math:`\delta = \mu - m`, finite iff :math:`2S - \Sigma` is positive definite
    (the derivation is that of ``LinearGaussian.log_weight_second_moment``)."""
    M = 2.0 * S - Sigma
    M = 0.5 * (M + M.T)
    try:
        L = np.linalg.cholesky(M)
    except np.linalg.LinAlgError:
        return math.inf
    delta = mu - m
    y = np.linalg.solve(L, delta)
    return float(np.linalg.slogdet(S)[1] - 0.5 * np.linalg.slogdet(Sigma)[1] - np.sum(np.log(np.diag(L))) + y @ y)


def _log_mixture_ratio_integral(post, m, s2):
    r""":math:`\log \int \pi(z)^2 / N(z; m, s^2)\,dz` for a 1-D Gaussian mixture
    :math:`\pi = \sum_i w_i N(\mu_i, v_i)` (+inf where it diverges): the sum over
    pairs (i, j) of :math:`w_i w_j \int N_i N_j / N(m, s^2)`, each a Gaussian
    integral of precision :math:`P = 1/v_i + 1/v_j - 1/s^2` (finite iff P > 0)
    and linear coefficient :math:`L = \mu_i/v_i + \mu_j/v_j - m/s^2`:
    :math:`\tfrac12\log(s^2/(v_i v_j P)) - \tfrac12(\mu_i^2/v_i + \mu_j^2/v_j - m^2/s^2) + L^2/(2P)`."""
    w, mu, v = post.weights, post.locs, post.scales**2
    keep = w > 0
    w, mu, v = w[keep], mu[keep], v[keep]
    P = 1.0 / v[:, None] + 1.0 / v[None, :] - 1.0 / s2
    if not (P > 0).all():
        return math.inf
    L = mu[:, None] / v[:, None] + mu[None, :] / v[None, :] - m / s2
    c = mu[:, None] ** 2 / v[:, None] + mu[None, :] ** 2 / v[None, :] - m * m / s2
    log_i = 0.5 * np.log(s2 / (v[:, None] * v[None, :] * P)) - 0.5 * c + L * L / (2.0 * P)
    return float(logsumexp(np.log(w)[:, None] + np.log(w)[None, :] + log_i))


def relative_weight_variance(p, x, q):
    r""":math:`\mathrm{Var}_q[w]/p(x)^2 = \int \pi^2/q - 1` (:math:`\pi = p(z|x)`):
    by enumeration for a discrete latent (see the module docstring), the
    problem's own closed form when it has one
    (``LinearGaussian.relative_weight_variance``), else for a Gaussian q the
    closed forms against a Gaussian posterior or a 1-D Gaussian-mixture
    posterior (``_log_gaussian_ratio_integral``,
    ``_log_mixture_ratio_integral``; inf when infinite), else NaN (e.g. a
    uniform box)."""
    enum = _enumerated(p, x, q)
    if enum is not None:
        return enum["rel_var"]
    if not isinstance(q, (Gaussian, MultivariateGaussian)):
        return math.nan
    fn = getattr(p, "relative_weight_variance", None)
    if callable(fn):
        try:
            # a variance: clip the round-off of expm1(~1e-16) at q = posterior
            return max(float(fn(x, q)), 0.0)
        except _REFUSALS:
            pass
    post_fn = getattr(p, "posterior", None)
    post = post_fn(x) if callable(post_fn) else None
    m, S = np.asarray(q.mean, dtype=np.float64), np.asarray(q.cov, dtype=np.float64)
    if isinstance(post, (Gaussian, MultivariateGaussian)):
        log_e2 = _log_gaussian_ratio_integral(np.asarray(post.loc, dtype=np.float64),
                                              np.asarray(post.cov, dtype=np.float64), m, S)
    elif isinstance(post, MixtureOfGaussians) and q.dim == 1:
        log_e2 = _log_mixture_ratio_integral(post, float(m[0]), float(S[0, 0]))
    else:
        return math.nan
    return max(0.0, float(np.expm1(log_e2)))


# --------------------------------------------------------------------------- truth columns
def _member(p, name, x, q, reasons, key):
    fn = getattr(p, name, None)
    if fn is None:
        reasons.append(f"p.{name}: {type(p).__name__} has no {name}")
        return None
    try:
        return fn(x, q)
    except _REFUSALS as exc:
        reasons.append(f"p.{name}: {exc}")
        return None


def truths(p, x, q, q_is_posterior=False):
    """The exact columns of (p, x, q) and why any is NaN.

    Returns ``(cols, reasons)``: ``cols`` holds ``log_marginal``,
    ``elbo_exact``, ``kl``, ``rel_weight_var``, ``var_log_w``, ``mu4_log_w``
    (floats, NaN where unknown); ``reasons`` maps ``elbo_exact`` / ``kl`` to a
    message when they are NaN.  ``q_is_posterior``: q is the problem's exact
    posterior (source 4 of the module docstring)."""
    log_marginal = getattr(p, "log_marginal", None)
    if not callable(log_marginal):
        raise ValueError(f"p.log_marginal: missing; a problem needs the exact log p(x), {type(p).__name__} has none")
    log_px = float(log_marginal(x))
    enum = _enumerated(p, x, q)
    gauss_kl = None if enum is not None else _gaussian_kl(p, x, q)
    cols, reasons = {"log_marginal": log_px}, {}
    for col, member in (("elbo_exact", "elbo"), ("kl", "kl")):
        why = []
        value = _member(p, member, x, q, why, col)
        if value is None and enum is not None:
            value = enum[member]
        if value is None and gauss_kl is not None:
            value = gauss_kl if member == "kl" else log_px - gauss_kl
        if value is None and q_is_posterior:
            value = 0.0 if member == "kl" else log_px
        if value is None:
            reasons[col] = "; ".join(why) + " (and no enumeration, Gaussian-posterior formula or identity applies)"
            value = math.nan
        cols[col] = float(value)
    cols["rel_weight_var"] = enum["rel_var"] if enum is not None else relative_weight_variance(p, x, q)
    if enum is not None:
        cols["var_log_w"], cols["mu4_log_w"] = enum["var"], enum["mu4"]
    else:
        _, cols["var_log_w"], cols["mu4_log_w"] = log_weight_moments(p, x, q)
    return cols, reasons


def elbo_gradient(p, x, q):
    """(exact d ELBO / d q.params, None) or (None, reason): ``p.elbo_grad``,
    else enumeration with the score identity (see the module docstring)."""
    why = []
    g = _member(p, "elbo_grad", x, q, why, "elbo_grad")
    if g is not None:
        return np.asarray(g, dtype=np.float64), None
    if callable(getattr(q, "grad_log_prob", None)):
        table = enumerate_latent(p, x, q, grad=True)
        if table is not None:
            log_q, log_joint, scores = table
            s = np.isfinite(log_q)
            coef = np.exp(log_q[s]) * (log_joint[s] - log_q[s])
            return coef @ scores[s], None
    return None, "; ".join(why) + " (and no enumeration applies)"
