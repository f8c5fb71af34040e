r"""Named proposals q relative to the exact posterior: "as q varies" in one word.

A preset is a *base* optionally followed by *modifiers*, joined with ``+``::

    posterior | prior | meanfield | uniform          (bases)
    shift:<s> | scale:<f>                            (modifiers, applied left to right)

A preset that starts with a modifier starts from ``posterior``, so
``"shift:1"`` means ``"posterior+shift:1"``; ``"meanfield+shift:1"`` shifts
the best diagonal Gaussian instead (useful because pathwise gradient
estimators want a diagonal Gaussian).

A problem serves the presets its members allow.  One it cannot serve raises
``PresetUnavailable`` (a ValueError whose message starts with ``q:`` and says
why); the harness records such cells as skipped, with the reason.

Continuous latent, Gaussian posterior N(mu, Sigma) (LinearGaussian,
RainforthLinearGaussian, a user's conjugate model), posterior marginal sds
:math:`\sigma_i = \sqrt{\Sigma_{ii}}`:

* ``posterior`` -- the problem's own posterior object: KL = 0, every weight equals p(x).
* ``prior`` -- p(z), the problem's ``prior()``.
* ``meanfield`` -- the KL(q||p)-optimal diagonal Gaussian: mean mu, variances
  :math:`1/(\Sigma^{-1})_{ii}`.
* ``uniform`` -- the box :math:`\mu \pm 6\sigma` (a Uniform proposal): it holds
  all but at most :math:`d \cdot 2\times10^{-9}` of the posterior mass, so
  importance sampling with it estimates p(x) to a relative bias far below any
  standard error here; the ELBO and KL of a box are exact in closed form.
* ``shift:<s>`` -- the mean (box centre) moves by :math:`s\,\sigma_i` in every
  coordinate (s may be negative).
* ``scale:<f>`` -- scales multiply by f > 0 (covariance by f^2; a box's
  half-widths by f about its centre).

Continuous 1-D latent, Gaussian-mixture posterior
:math:`\sum_c \pi_c N(\mu_c, v_c)` (MixturePrior), mixture mean m and sd
:math:`\sigma`:

* ``posterior`` -- the MixtureOfGaussians itself; ``prior`` -- ``p.prior()``.
* ``meanfield`` -- for one latent coordinate the mean-field family is every
  Gaussian, and this is the KL(q||p)-optimal one,
  :math:`\arg\min_{m,s} \mathrm{KL}(N(m, s^2)\,\|\,p(z|x))` -- *not* the
  moment-matched N(m, sigma^2) (that minimises KL(p||q)).  The posterior may
  be multimodal and so may the KL: it is minimised from a grid of starts
  (the KL and its gradient by a fine trapezoid rule, then BFGS), the best
  local minimum is kept, and the result is certified by adaptive quadrature
  (``scipy.integrate.quad``): the KL gradient below ``MEANFIELD_GRAD_TOL`` and
  the trapezoid-rule KL within 1e-9 of the adaptive one; otherwise the preset
  is unavailable, with the reason.
* ``uniform`` -- the box :math:`m \pm 6\sigma`, served only if the posterior
  mass outside it (computed exactly from the normal CDFs) is at most
  ``UNIFORM_MAX_OUTSIDE`` = 1e-8 (then p-hat's relative bias is below 1e-8).
* ``shift:<s>`` -- every component's mean moves by :math:`s\sigma`;
  ``scale:<f>`` -- the affine map :math:`z \mapsto m_q + f (z - m_q)` about
  the mixture's own mean (component means spread and sds scale by f).
  On a Gaussian base (``meanfield+shift:1``) they act as above.

Discrete latent (GaussianMixture, Categorical q over the C components,
posterior probabilities :math:`\pi`):

* ``posterior`` -- Categorical(pi); ``prior`` -- Categorical(mixture weights);
  ``uniform`` -- uniform over the C components.
* ``meanfield`` -- the latent is a single categorical variable, so the
  mean-field family *is* the full family: meanfield = posterior.
* ``shift:<s>`` (s >= 0) -- moves mass towards uniform:
  :math:`q \leftarrow (1-\lambda) q + \lambda / C` with
  :math:`\lambda = 1 - e^{-s}` (s = 0 leaves q alone, s -> inf gives uniform).
  Component labels are unordered, so there is no direction to shift a mean in.
* ``scale:<t>`` (t > 0) -- tempering: :math:`q_k \propto q_k^{1/t}`; t > 1
  flattens (a "wider" q), t < 1 sharpens.

Binary latent (MissingPixels, z in {0,1}^m; posterior a BernoulliMixture):

* ``posterior`` -- the BernoulliMixture; ``prior`` -- ``p.prior()``;
  ``uniform`` -- Bernoulli(1/2) on every bit.
* ``meanfield`` -- Bernoulli(posterior marginals
  :math:`P(z_j = 1 \mid x)`): these are the *marginals*, not the
  KL(q||p)-optimal mean field (which for a multimodal posterior sits on one
  mode).  A Bernoulli posterior is its own mean field.
* ``shift:<s>`` (s >= 0) -- every bit's probability (every component's, for a
  mixture) moves towards 1/2: :math:`\phi \leftarrow (1-\lambda)\phi + \lambda/2`,
  :math:`\lambda = 1 - e^{-s}`; ``scale:<t>`` -- tempering per bit, the
  logits divided by t.

A problem without ``posterior`` (a user's model) serves ``prior`` only, and
``uniform`` when it is discrete or declares a bounded ``support()`` (the box
it returns); ``scale`` applies to those, ``shift`` of a continuous q needs the
posterior sds and is unavailable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize
from scipy.integrate import quad
from scipy.special import expit, log_softmax, logsumexp
from scipy.stats import norm

from estimators import Bernoulli, BernoulliMixture, Categorical, Gaussian, MixtureOfGaussians, MultivariateGaussian, Uniform

__all__ = [
    "BASES",
    "MODIFIERS",
    "PRESET_HELP",
    "Preset",
    "PresetUnavailable",
    "parse_preset",
    "make_q",
    "best_gaussian",
    "UNIFORM_HALF_WIDTH",
    "UNIFORM_MAX_OUTSIDE",
    "MEANFIELD_GRAD_TOL",
]

BASES = ("posterior", "prior", "meanfield", "uniform")
MODIFIERS = ("shift", "scale")
UNIFORM_HALF_WIDTH = 6.0  # posterior sds either side of the mean, for the "uniform" box
UNIFORM_MAX_OUTSIDE = 1e-8  # most posterior mass a mixture's "uniform" box may leave out
MEANFIELD_GRAD_TOL = 1e-7  # certified |d KL / d (m, log s)| of a mixture's meanfield Gaussian

PRESET_HELP = {
    "posterior": "the exact posterior p(z|x) (KL = 0); needs p.posterior",
    "prior": "the prior p(z)",
    "meanfield": "KL(q||p)-optimal diagonal Gaussian (Gaussian mixture posterior: the best Gaussian); "
    "categorical: = posterior; binary: Bernoulli(posterior marginals)",
    "uniform": f"box mu +- {UNIFORM_HALF_WIDTH:g} posterior sd (no posterior: p.support()); "
    "discrete: uniform over the support",
    "shift:<s>": "mean moved by s posterior sds per coordinate (discrete: towards uniform, lambda = 1 - exp(-s))",
    "scale:<f>": "scales times f (discrete: tempering q^(1/f); binary: logits / f)",
}


class PresetUnavailable(ValueError):
    """A q preset this problem cannot serve (the message says why); a sweep
    skips the cell and records the reason."""


@dataclass(frozen=True)
class Preset:
    """A parsed preset: a base name and a tuple of (modifier, value) pairs."""

    name: str
    base: str
    modifiers: tuple


def parse_preset(name, key="q"):
    """Parse a preset string; ValueError naming ``key`` when it is malformed."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{key}: a q preset must be a non-empty string, got {name!r}")
    tokens = [t.strip() for t in name.split("+")]
    if tokens[0] in BASES:
        base, rest = tokens[0], tokens[1:]
    else:
        base, rest = "posterior", tokens
    modifiers = []
    for tok in rest:
        kind, sep, value = tok.partition(":")
        if kind in BASES:
            raise ValueError(f"{key}: unknown q preset {name!r}: the base {kind!r} must come first")
        if kind not in MODIFIERS or not sep:
            raise ValueError(
                f"{key}: unknown q preset {name!r}; expected a base ({', '.join(BASES)}) "
                f"optionally followed by '+shift:<s>' / '+scale:<f>' modifiers"
            )
        try:
            v = float(value)
        except ValueError:
            raise ValueError(f"{key}: q preset {name!r}: {kind} needs a number, got {value!r}") from None
        if not math.isfinite(v):
            raise ValueError(f"{key}: q preset {name!r}: {kind} must be finite, got {value!r}")
        if kind == "scale" and v <= 0:
            raise ValueError(f"{key}: q preset {name!r}: scale must be > 0, got {v:g}")
        modifiers.append((kind, v))
    return Preset(name, base, tuple(modifiers))



def _unavailable(p, preset, why):
    return PresetUnavailable(f"q: preset {preset.name!r} is not available for {type(p).__name__}: {why}")


def _posterior(p, x, preset=None):
    """p.posterior(x), or None when the problem has no posterior; a problem
    that refuses to build it (a ValueError: e.g. a dense Gaussian too large
    to factorise) makes the preset unavailable, with the problem's message."""
    fn = getattr(p, "posterior", None)
    if fn is None:
        return None
    if not callable(fn):
        raise ValueError(f"p.posterior: must be a method posterior(x), got {type(fn).__name__}")
    if preset is None:
        return fn(x)
    try:
        return fn(x)
    except ValueError as exc:
        raise _unavailable(p, preset, f"p.posterior(x) refused: {exc}") from exc


def _prior(p, preset=None):
    """p.prior(); with ``preset``, a ValueError from it (a problem refusing a
    prior too large to build) makes the preset unavailable, with its message."""
    fn = getattr(p, "prior", None)
    if not callable(fn):
        raise ValueError(f"p.prior: missing; a problem needs prior() (see problems.Problem), {type(p).__name__} has none")
    if preset is None:
        return fn()
    try:
        return fn()
    except ValueError as exc:
        raise _unavailable(p, preset, f"p.prior() refused: {exc}") from exc


# --------------------------------------------------------------------------- continuous latent
# E_{t ~ N(0,1)} f(t) ~= sum_i w_i f(t_i): the trapezoid rule on [-14, 14] with step 1/100 (spectrally
# accurate for the smooth integrands here; the mass beyond 14 sd is < 1e-43).  Gauss-Hermite converges
# too slowly where log p(z|x) turns from one mixture component to another.
_T_NODES = np.linspace(-14.0, 14.0, 2801)
_T_WEIGHTS = norm.pdf(_T_NODES) * (_T_NODES[1] - _T_NODES[0])
_T_WEIGHTS[[0, -1]] *= 0.5


def _mixture_logpdf_and_score(mix, z):
    """log pi(z) and d/dz log pi(z) of a 1-D Gaussian mixture, for an array z."""
    with np.errstate(divide="ignore"):
        log_w = np.log(mix.weights)
    t = (z[..., None] - mix.locs) / mix.scales
    comp = (log_w - np.log(mix.scales) - 0.5 * math.log(2.0 * math.pi)) - 0.5 * t * t
    top = np.max(comp, axis=-1, keepdims=True)
    e = np.exp(comp - top)
    total = np.sum(e, axis=-1)
    lp = top[..., 0] + np.log(total)
    return lp, np.sum(e * (-t / mix.scales), axis=-1) / total


def _kl_gaussian_mixture(theta, mix):
    r"""KL(N(m, s^2) || mix) and its gradient in (m, log s), by the trapezoid rule in t:
    :math:`\mathrm{KL} = -\tfrac12\log(2\pi e s^2) - E\log\pi(m + s t)`,
    :math:`\partial_m = -E[g]`, :math:`\partial_{\log s} = -1 - s E[t g]`."""
    m, log_s = theta
    s = math.exp(log_s)
    lp, g = _mixture_logpdf_and_score(mix, m + s * _T_NODES)
    kl = -0.5 * math.log(2.0 * math.pi * math.e) - log_s - float(_T_WEIGHTS @ lp)
    grad = np.array([-float(_T_WEIGHTS @ g), -1.0 - s * float(_T_WEIGHTS @ (_T_NODES * g))])
    return kl, grad


def _adaptive(fn):
    """E_{t ~ N(0,1)} fn(t) by adaptive quadrature on [-14, 14]: (value, error bound)."""
    c = 1.0 / math.sqrt(2.0 * math.pi)
    return quad(lambda t: c * math.exp(-0.5 * t * t) * fn(t), -14.0, 14.0, epsabs=1e-13, epsrel=1e-13, limit=1000)


def _scalar_mixture(mix):
    """(log pi(z), d/dz log pi(z)) for one float z, in plain Python (fast inside quad)."""
    with np.errstate(divide="ignore"):
        consts = [float(v) for v in np.log(mix.weights) - np.log(mix.scales) - 0.5 * math.log(2.0 * math.pi)]
    locs, scales = [float(v) for v in mix.locs], [float(v) for v in mix.scales]

    def f(z):
        comps = [c - 0.5 * ((z - m) / s) ** 2 for c, m, s in zip(consts, locs, scales)]
        top = max(comps)
        es = [math.exp(v - top) for v in comps]
        total = sum(es)
        score = sum(e * (-(z - m) / (s * s)) for e, m, s in zip(es, locs, scales)) / total
        return top + math.log(total), score

    return f


def best_gaussian(mix):
    r"""The KL(q||p)-optimal Gaussian q = N(m, s^2) for a 1-D Gaussian mixture
    p (see the module docstring): a grid of starts, BFGS on the trapezoid-rule
    KL, and a certificate by adaptive quadrature.  Returns
    ``(Gaussian, info)`` with ``info`` = {"kl", "grad_norm", "kl_quad_err"};
    raises ``ArithmeticError`` when the certificate fails."""
    locs, scales = mix.locs, mix.scales
    sd = math.sqrt(float(mix.cov[0, 0]))
    ms = np.linspace(float(np.min(locs - 3 * scales)), float(np.max(locs + 3 * scales)), 41)
    log_ss = np.linspace(math.log(float(scales.min())) - 1.0, math.log(sd) + 0.5, 21)
    grid = []
    t, w = _T_NODES[200:-200:10], _T_WEIGHTS[200:-200:10] * 10  # a coarse rule (step 0.1 on [-12, 12]) to rank starts
    for ls in log_ss:  # the KL on the grid, one log-scale at a time (vectorised over m and t)
        lp, _ = _mixture_logpdf_and_score(mix, ms[:, None] + math.exp(ls) * t)
        kl = -0.5 * math.log(2.0 * math.pi * math.e) - ls - lp @ w
        grid.extend(zip(kl.tolist(), ms.tolist(), [float(ls)] * len(ms)))
    grid.sort()
    best = None
    for _, m, ls in grid[:8]:
        res = optimize.minimize(_kl_gaussian_mixture, np.array([m, ls]), args=(mix,), jac=True, method="BFGS",
                                options={"gtol": 1e-12, "maxiter": 500})
        if best is None or res.fun < best.fun:
            best = res
    m, log_s = best.x
    s = math.exp(log_s)

    # the certificate: gradient and KL by adaptive quadrature, independent of the trapezoid rule
    f = _scalar_mixture(mix)

    def lp(t):
        return f(m + s * t)[0]

    def g(t):
        return f(m + s * t)[1]

    e_lp, err1 = _adaptive(lp)
    e_g, err2 = _adaptive(g)
    e_tg, err3 = _adaptive(lambda t: t * g(t))
    kl_quad = -0.5 * math.log(2.0 * math.pi * math.e) - log_s - e_lp
    grad = np.array([-e_g, -1.0 - s * e_tg])
    grad_norm = float(np.max(np.abs(grad)))
    kl_err = abs(kl_quad - best.fun)
    if grad_norm > MEANFIELD_GRAD_TOL or kl_err > 1e-9 or max(err1, err2, err3) > 1e-10:
        raise ArithmeticError(
            f"the KL-optimal Gaussian could not be certified (|grad| = {grad_norm:.2g} > {MEANFIELD_GRAD_TOL:g} "
            f"or |KL_trapezoid - KL_quad| = {kl_err:.2g} > 1e-9)"
        )
    return Gaussian([m], [s]), {"kl": kl_quad, "grad_norm": grad_norm, "kl_quad_err": kl_err}


def _gaussian_moments(post):
    return np.asarray(post.loc, dtype=np.float64), np.asarray(post.cov, dtype=np.float64)


def _mixture_box(p, preset, post):
    m, sd = float(post.mean[0]), math.sqrt(float(post.cov[0, 0]))
    low, high = m - UNIFORM_HALF_WIDTH * sd, m + UNIFORM_HALF_WIDTH * sd
    outside = float(np.sum(post.weights * (norm.cdf((low - post.locs) / post.scales)
                                           + norm.sf((high - post.locs) / post.scales))))
    if outside > UNIFORM_MAX_OUTSIDE:
        raise _unavailable(
            p, preset, f"the box mean +- {UNIFORM_HALF_WIDTH:g} sd leaves {outside:.3g} of the posterior mass "
            f"outside (> {UNIFORM_MAX_OUTSIDE:g})"
        )
    return Uniform([low], [high])


def _support_box(p, preset):
    fn = getattr(p, "support", None)
    if not callable(fn):
        raise _unavailable(p, preset, "it has no posterior, and no support() box to be uniform on")
    box = fn()
    try:
        low, high = box
        return Uniform(low, high)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"p.support: must return a bounded box (low, high), got {box!r} ({exc})") from None


def _continuous_base(p, x, preset, post):
    base = preset.base
    if base == "prior":
        return _prior(p, preset)
    if post is None:
        if base == "uniform":
            return _support_box(p, preset)
        raise _unavailable(p, preset, f"{base!r} needs the exact posterior, and the problem has no posterior(x)")
    if base == "posterior":
        return post
    if isinstance(post, (Gaussian, MultivariateGaussian)):
        mu, cov = _gaussian_moments(post)
        if base == "meanfield":
            precision = np.linalg.inv(cov)
            return Gaussian(mu, 1.0 / np.sqrt(np.diag(precision)))
        sd = np.sqrt(np.diag(cov))
        return Uniform(mu - UNIFORM_HALF_WIDTH * sd, mu + UNIFORM_HALF_WIDTH * sd)
    if isinstance(post, MixtureOfGaussians):
        if base == "meanfield":
            try:
                return best_gaussian(post)[0]
            except ArithmeticError as exc:
                raise _unavailable(p, preset, str(exc)) from None
        return _mixture_box(p, preset, post)
    raise _unavailable(
        p, preset, f"{base!r} is defined for a Gaussian or a Gaussian-mixture posterior, "
        f"and {type(p).__name__}.posterior gives a {type(post).__name__}"
    )


def _continuous_sd(post):
    if isinstance(post, (Gaussian, MultivariateGaussian, MixtureOfGaussians)):
        return np.sqrt(np.diag(np.asarray(post.cov, dtype=np.float64)))
    return None


def _continuous_modify(p, preset, q, kind, v, post_sd):
    if kind == "shift":
        if post_sd is None:
            raise _unavailable(p, preset, "shift:<s> moves q by s posterior sds, and the problem has no "
                               "Gaussian or Gaussian-mixture posterior to take them from")
        delta = v * post_sd
        if isinstance(q, Gaussian):
            return Gaussian(q.loc + delta, q.scale)
        if isinstance(q, MultivariateGaussian):
            return MultivariateGaussian(q.loc + delta, q.cov)
        if isinstance(q, Uniform):
            return Uniform(q.low + delta, q.high + delta)
        if isinstance(q, MixtureOfGaussians):
            return MixtureOfGaussians(q.weights, q.locs + delta[0], q.scales)
    elif kind == "scale":
        if isinstance(q, Gaussian):
            return Gaussian(q.loc, q.scale * v)
        if isinstance(q, MultivariateGaussian):
            return MultivariateGaussian(q.loc, q.cov * v * v)
        if isinstance(q, Uniform):
            centre, half = 0.5 * (q.low + q.high), 0.5 * (q.high - q.low) * v
            return Uniform(centre - half, centre + half)
        if isinstance(q, MixtureOfGaussians):
            m = float(q.mean[0])
            return MixtureOfGaussians(q.weights, m + v * (q.locs - m), q.scales * v)
    raise _unavailable(p, preset, f"{kind} is not defined for a {type(q).__name__}")


# --------------------------------------------------------------------------- categorical latent
def _num_categories(p, post):
    for obj in (post, p):
        C = getattr(obj, "num_categories", None)
        if C is not None:
            return int(C)
    return None


def _categorical_base(p, x, preset, post):
    base = preset.base
    if base == "prior":
        return _prior(p, preset)
    if base == "uniform":
        C = _num_categories(p, post)
        if C is None:
            C = _num_categories(p, _prior(p))
        if C is None:
            raise _unavailable(p, preset, "the number of categories is unknown (no p.num_categories)")
        return Categorical(np.full(C, 1.0 / C))
    if post is None:
        raise _unavailable(p, preset, f"{base!r} needs the exact posterior, and the problem has no posterior(x)")
    if base == "posterior" or (base == "meanfield" and isinstance(post, Categorical)):
        return post
    raise _unavailable(p, preset, f"meanfield is defined for a Categorical posterior, got {type(post).__name__}")


def _categorical_modify(p, preset, q, kind, v):
    if not isinstance(q, Categorical):
        raise _unavailable(p, preset, f"{kind} is not defined for a {type(q).__name__}")
    C = q.num_categories
    if kind == "shift":
        if v < 0:
            raise _unavailable(
                p, preset, "for a discrete latent shift:<s> mixes with uniform "
                f"(lambda = 1 - exp(-s)) and needs s >= 0, got {v:g}"
            )
        lam = -math.expm1(-v)
        return Categorical((1.0 - lam) * q.probs + lam / C)
    with np.errstate(divide="ignore"):
        logits = np.log(q.probs) / v
    return Categorical(np.exp(log_softmax(logits)))


# --------------------------------------------------------------------------- binary latent
def _binary_base(p, x, preset, post):
    base = preset.base
    if base == "prior":
        return _prior(p, preset)
    if base == "uniform":
        return Bernoulli(np.full(int(p.latent_dim), 0.5))
    if post is None:
        raise _unavailable(p, preset, f"{base!r} needs the exact posterior, and the problem has no posterior(x)")
    if base == "posterior":
        return post
    if isinstance(post, Bernoulli):
        return post  # independent bits: the posterior is its own mean field
    if isinstance(post, BernoulliMixture):
        return Bernoulli(post.marginals)  # the marginals, not the KL(q||p)-optimal mean field
    raise _unavailable(p, preset, f"meanfield is defined for a Bernoulli or BernoulliMixture posterior, "
                       f"got {type(post).__name__}")


def _binary_modify(p, preset, q, kind, v):
    if not isinstance(q, (Bernoulli, BernoulliMixture)):
        raise _unavailable(p, preset, f"{kind} is not defined for a {type(q).__name__}")
    if kind == "shift":
        if v < 0:
            raise _unavailable(
                p, preset, "for a binary latent shift:<s> moves every bit towards 1/2 "
                f"(lambda = 1 - exp(-s)) and needs s >= 0, got {v:g}"
            )
        lam = -math.expm1(-v)
        probs = (1.0 - lam) * q.probs + 0.5 * lam
    else:
        with np.errstate(divide="ignore"):
            logits = np.log(q.probs) - np.log1p(-q.probs)
        probs = expit(logits / v)
    if isinstance(q, Bernoulli):
        return Bernoulli(probs)
    return BernoulliMixture(q.weights, probs)


def make_q(p, x, preset):
    """The proposal named by ``preset`` for problem ``p`` at observation ``x``.

    ``preset`` is a string (see the module docstring) or a parsed ``Preset``.
    ``PresetUnavailable`` (a ValueError starting with ``q:``) when the
    problem cannot serve it.
    """
    if not isinstance(preset, Preset):
        preset = parse_preset(preset)
    post = _posterior(p, x, preset) if preset.base != "prior" or preset.modifiers else None
    kind = getattr(p, "latent_type", "continuous")
    if kind == "categorical":
        q = _categorical_base(p, x, preset, post)
        for k, v in preset.modifiers:
            q = _categorical_modify(p, preset, q, k, v)
        return q
    if kind == "binary":
        q = _binary_base(p, x, preset, post)
        for k, v in preset.modifiers:
            q = _binary_modify(p, preset, q, k, v)
        return q
    q = _continuous_base(p, x, preset, post)
    post_sd = _continuous_sd(post)
    for k, v in preset.modifiers:
        q = _continuous_modify(p, preset, q, k, v, post_sd)
    return q
