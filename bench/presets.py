r"""Named proposals q relative to the exact posterior: "as q varies" in one word.

A preset is a *base* optionally followed by *modifiers*, joined with ``+``::

    posterior | prior | meanfield | uniform          (bases)
    shift:<s> | scale:<f>                            (modifiers, applied left to right)

A preset that starts with a modifier starts from ``posterior``, so
``"shift:1"`` means ``"posterior+shift:1"``; ``"meanfield+shift:1"`` shifts
the best diagonal Gaussian instead (useful because pathwise gradient
estimators want a diagonal Gaussian).

Continuous latent (LinearGaussian, exact posterior N(mu, Sigma), posterior
marginal sds :math:`\sigma_i = \sqrt{\Sigma_{ii}}`):

* ``posterior`` -- MultivariateGaussian(mu, Sigma): KL = 0, every weight equals p(x).
* ``prior`` -- p(z) (the problem's own prior, a diagonal Gaussian).
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
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import log_softmax

from estimators import Categorical, Gaussian, MultivariateGaussian, Uniform

__all__ = ["BASES", "MODIFIERS", "PRESET_HELP", "Preset", "parse_preset", "make_q", "UNIFORM_HALF_WIDTH"]

BASES = ("posterior", "prior", "meanfield", "uniform")
MODIFIERS = ("shift", "scale")
UNIFORM_HALF_WIDTH = 6.0  # posterior sds either side of the mean, for the "uniform" box

PRESET_HELP = {
    "posterior": "the exact posterior p(z|x) (KL = 0)",
    "prior": "the prior p(z)",
    "meanfield": "best diagonal Gaussian: mean mu, variances 1/(Sigma^-1)_ii (discrete latent: = posterior)",
    "uniform": f"box mu +- {UNIFORM_HALF_WIDTH:g} posterior sd (discrete latent: uniform over the support)",
    "shift:<s>": "mean moved by s posterior sds per coordinate (discrete: mix with uniform, lambda = 1 - exp(-s))",
    "scale:<f>": "scales times f (discrete: tempering q^(1/f), renormalised)",
}


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


# --------------------------------------------------------------------------- continuous latent
def _posterior_moments(p, x):
    post = p.posterior(x)
    if not isinstance(post, MultivariateGaussian):  # pragma: no cover - a new family
        raise ValueError(f"p: q presets need a Gaussian posterior, {type(p).__name__} gives {type(post).__name__}")
    return post


def _continuous_base(p, x, base, post):
    if base == "posterior":
        return post
    if base == "prior":
        return p.prior()
    sd = np.sqrt(np.diag(post.cov))
    if base == "meanfield":
        precision = np.linalg.inv(post.cov)
        return Gaussian(post.loc, 1.0 / np.sqrt(np.diag(precision)))
    if base == "uniform":
        return Uniform(post.loc - UNIFORM_HALF_WIDTH * sd, post.loc + UNIFORM_HALF_WIDTH * sd)
    raise AssertionError(base)  # pragma: no cover - parse_preset rejects it


def _continuous_modify(q, kind, v, post_sd):
    if kind == "shift":
        delta = v * post_sd
        if isinstance(q, Gaussian):
            return Gaussian(q.loc + delta, q.scale)
        if isinstance(q, MultivariateGaussian):
            return MultivariateGaussian(q.loc + delta, q.cov)
        if isinstance(q, Uniform):
            return Uniform(q.low + delta, q.high + delta)
    elif kind == "scale":
        if isinstance(q, Gaussian):
            return Gaussian(q.loc, q.scale * v)
        if isinstance(q, MultivariateGaussian):
            return MultivariateGaussian(q.loc, q.cov * v * v)
        if isinstance(q, Uniform):
            centre, half = 0.5 * (q.low + q.high), 0.5 * (q.high - q.low) * v
            return Uniform(centre - half, centre + half)
    raise ValueError(f"q: cannot apply {kind} to a {type(q).__name__}")  # pragma: no cover


# --------------------------------------------------------------------------- discrete latent
def _discrete_base(p, x, base, post):
    if base in ("posterior", "meanfield"):
        return post
    if base == "prior":
        return p.prior()
    if base == "uniform":
        C = post.num_categories
        return Categorical(np.full(C, 1.0 / C))
    raise AssertionError(base)  # pragma: no cover


def _discrete_modify(q, kind, v, name):
    C = q.num_categories
    if kind == "shift":
        if v < 0:
            raise ValueError(
                f"q: preset {name!r}: for a discrete latent shift:<s> mixes with uniform "
                f"(lambda = 1 - exp(-s)) and needs s >= 0, got {v:g}"
            )
        lam = -math.expm1(-v)
        return Categorical((1.0 - lam) * q.probs + lam / C)
    if kind == "scale":
        with np.errstate(divide="ignore"):
            logits = np.log(q.probs) / v
        return Categorical(np.exp(log_softmax(logits)))
    raise AssertionError(kind)  # pragma: no cover


def make_q(p, x, preset):
    """The proposal named by ``preset`` for problem ``p`` at observation ``x``.

    ``preset`` is a string (see the module docstring) or a parsed ``Preset``.
    """
    if not isinstance(preset, Preset):
        preset = parse_preset(preset)
    post = p.posterior(x)
    if isinstance(post, Categorical):
        q = _discrete_base(p, x, preset.base, post)
        for kind, v in preset.modifiers:
            q = _discrete_modify(q, kind, v, preset.name)
        return q
    post = _posterior_moments(p, x)
    post_sd = np.sqrt(np.diag(post.cov))
    q = _continuous_base(p, x, preset.base, post)
    for kind, v in preset.modifiers:
        q = _continuous_modify(q, kind, v, post_sd)
    return q
