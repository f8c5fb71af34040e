r"""The built-in problem families: how a sweep builds each problem from the
parameters of a config table.

A *family* is a name, a factory and the parameters it takes.  Every built-in
family builds with no parameters at all (a documented default instance) and
takes its parameters when given::

    family = "MixturePrior"                      # the lecture's instance, observed at x = 0.5
    family = "LinearGaussian"  D = 6  d = 3      # LinearGaussian.random(D=6, d=3, seed=0)

``FAMILIES`` maps the name to a ``Family``.  ``Family.build(params)`` checks
the parameters (a ValueError naming the parameter) and returns an
``Instance``: the problem and, for a family that comes with its own
observation (the lecture's x, the Rainforth model's data point), that ``x``.

=========================  ================================================  ==========================
family                     builds                                            default
=========================  ================================================  ==========================
LinearGaussian             ``LinearGaussian.random(D, d, seed)``             D=5, d=2, seed=0
GaussianMixture            ``GaussianMixture.random(C, D, seed)``            C=4, D=2, seed=0
MixturePrior               no parameters: ``MixturePrior.lecture()`` with    the lecture, x = 0.5
                           its ``lecture_x``; ``J, seed, noise``: a random
                           instance (``random_mixture_prior``);
                           ``weights, locs, scales, noise``: the constructor
MissingPixels              ``MissingPixels.digits(latent_rows, on, off)``    latent_rows=2 (16 latent
                                                                             bits: ELBO/KL enumerable)
SigmoidBeliefNet           ``SigmoidBeliefNet.random(m, D, seed,             m=8, D=16, seed=0,
                           weight_scale)``: binary latents, exact answers    weight_scale=1.0
                           by enumeration (m <= 20)
RainforthLinearGaussian    ``RainforthLinearGaussian(seed, dim, noise)``:    seed=0, dim=20, noise=0.01
                           its ``problem`` and its own ``x``
LinearGaussianStateSpace   ``LinearGaussianStateSpace.random(state_dim,      state_dim=2, obs_dim=2,
                           obs_dim, T, seed)``: stable, started stationary;  T=50, seed=0
                           exact log p(x) by the Kalman filter
HiddenMarkov               ``HiddenMarkov.random(S, obs_dim, T, seed)``:     S=3, obs_dim=2, T=50,
                           sticky, Gaussian emissions; exact log p(x) by     seed=0
                           the forward algorithm
=========================  ================================================  ==========================

For the two state-space families ``obs_dim`` is the emission dimension per
step: one observation x is the whole series, of length T * obs_dim
(``problems.state_space``).  Their q presets serve the harness's exact
columns only -- ``estimators.smc`` and ``estimators.ais`` (the sweep
estimators "smc" and "ais") ignore q.  The dense presets ("prior",
"posterior") need T * state_dim <= 2048 (``problems.state_space.MAX_DENSE_DIM``).
HiddenMarkov's latent is a path of states (latent type "categorical_path"):
importance sampling, the ELBO and the gradients refuse it; it is a problem
for SMC.

Families outside the package (a user's model named by an import string, or
registered by an installed package) are resolved by ``bench``; they follow
the same shape: a factory whose result is a problem or an ``Instance``.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple

import numpy as np

from ._validation import check_count, check_seed, plain
from .gaussian_mixture import GaussianMixture
from .glyphs import SIZE
from .linear_gaussian import LinearGaussian
from .missing_pixels import MissingPixels
from .mixture_prior import MixturePrior
from .sigmoid_belief_net import SigmoidBeliefNet
from .rainforth import RainforthLinearGaussian
from .state_space import HiddenMarkov, LinearGaussianStateSpace

__all__ = ["Instance", "Family", "FAMILIES", "random_mixture_prior"]


class Instance(NamedTuple):
    """What a family's factory may return instead of a bare problem: the
    problem and a fixed observation ``x`` of shape (obs_dim,) (or None: draw
    one with ``problem.sample``)."""

    problem: Any
    x: Any = None


@dataclass(frozen=True)
class Family:
    """A problem family.

    ``factory(**params)`` returns a problem or an ``Instance``.  ``defaults``
    are merged under the given parameters (and shown by ``python -m bench
    list``).  ``check(params) -> params`` validates the given parameters --
    ValueError naming the parameter -- and returns the full set (defaults
    filled in); None accepts whatever the factory accepts.  ``fixed_x``:
    True when the instance comes with its own observation, False when it
    does not, None when unknown until built; or a function of the (full)
    parameters.  ``source``: "built-in", "entry point ..." or "import string".
    """

    name: str
    factory: Callable
    defaults: dict = field(default_factory=dict)
    description: str = ""
    check: Callable | None = None
    fixed_x: Any = False
    source: str = "built-in"
    parameters: str = ""  # a one-line summary of the accepted parameters, for `list`

    def check_params(self, params: dict) -> dict:
        """The full parameter set (defaults filled in), or a ValueError naming the parameter."""
        params = dict(params)
        if self.check is not None:
            return dict(self.check(params))
        return {**self.defaults, **params}

    def has_fixed_x(self, params: dict):
        """True / False / None (unknown until built) for these (full) parameters."""
        return self.fixed_x(params) if callable(self.fixed_x) else self.fixed_x

    def build(self, params: dict) -> Instance:
        """``Instance(problem, x or None)`` from already-checked parameters."""
        out = self.factory(**params)
        if isinstance(out, Instance):
            return out
        return Instance(out, None)


# --------------------------------------------------------------------------- parameter checks


def _unknown(family, params, allowed):
    for name in params:
        if name not in allowed:
            raise ValueError(f"{name}: unknown parameter for {family}; expected {list(allowed)}")


def _float(name, value, low=None, high=None, low_open=True, high_open=True):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name}: must be a number, got {plain(value)}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name}: must be finite, got {plain(value)}")
    if low is not None and (value <= low if low_open else value < low):
        raise ValueError(f"{name}: must be {'>' if low_open else '>='} {low:g}, got {plain(value)}")
    if high is not None and (value >= high if high_open else value > high):
        raise ValueError(f"{name}: must be {'<' if high_open else '<='} {high:g}, got {plain(value)}")
    return value


def _float_list(name, value, positive=False):
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise ValueError(f"{name}: expected a list of numbers, got {plain(value)}")
    out = tuple(_float(f"{name}[{i}]", v, low=0.0 if positive else None) for i, v in enumerate(value))
    if not out:
        raise ValueError(f"{name}: must not be empty")
    return out


def _checker(family, spec):
    """A check for a family with a fixed parameter list: spec maps name ->
    (default, check(name, value) -> value)."""

    def check(params):
        _unknown(family, params, spec)
        return {name: fn(name, params[name]) if name in params else default for name, (default, fn) in spec.items()}

    return check


def _count(name, value):
    return check_count(name, value)


def _seed(name, value):
    return check_seed(value, name)


# --------------------------------------------------------------------------- the families

_LG_PARAMS = {"D": (5, _count), "d": (2, _count), "seed": (0, _seed)}
_GM_PARAMS = {"C": (4, _count), "D": (2, _count), "seed": (0, _seed)}


def _latent_rows(name, value):
    value = check_count(name, value)
    if value >= SIZE:
        raise ValueError(f"{name}: must be in 1..{SIZE - 1}, got {value}")
    return value


_MP_PARAMS = {
    "latent_rows": (2, _latent_rows),
    "on": (0.92, lambda n, v: _float(n, v, 0.0, 1.0)),
    "off": (0.04, lambda n, v: _float(n, v, 0.0, 1.0)),
}
_RF_PARAMS = {
    "seed": (0, _seed),
    "dim": (20, _count),
    "noise": (0.01, lambda n, v: _float(n, v, 0.0, None, low_open=False)),
}

_SBN_PARAMS = {
    "m": (8, _count),
    "D": (16, _count),
    "seed": (0, _seed),
    "weight_scale": (1.0, lambda n, v: _float(n, v, 0.0, None)),
}
_LGSS_PARAMS = {"state_dim": (2, _count), "obs_dim": (2, _count), "T": (50, _count), "seed": (0, _seed)}
_HMM_PARAMS = {"S": (3, _count), "obs_dim": (2, _count), "T": (50, _count), "seed": (0, _seed)}

_MIX_RANDOM = {"J": (2, _count), "seed": (0, _seed), "noise": (1.0, lambda n, v: _float(n, v, 0.0))}
_MIX_EXPLICIT = ("weights", "locs", "scales", "noise")


def random_mixture_prior(J=2, seed=0, noise=1.0):
    r"""A random ``MixturePrior``: weights ~ Dirichlet(2, ..., 2), locs ~ N(0, 3^2),
    scales ~ U(0.5, 1.5), the given noise sd.  (J = 2 and noise 1 make a
    posterior that is often bimodal.)"""
    J = check_count("J", J)
    rng = np.random.default_rng(check_seed(seed))
    weights = rng.dirichlet(np.full(J, 2.0))
    locs = 3.0 * rng.standard_normal(J)
    scales = rng.uniform(0.5, 1.5, size=J)
    return MixturePrior(weights, locs, scales, noise)


def _check_mixture_prior(params):
    if not params:
        return {}
    if any(k in params for k in ("weights", "locs", "scales")):
        _unknown("MixturePrior (weights, locs, scales, noise)", params, _MIX_EXPLICIT)
        for name in _MIX_EXPLICIT:
            if name not in params:
                raise ValueError(f"{name}: missing; MixturePrior with explicit components needs {list(_MIX_EXPLICIT)}")
        out = {name: _float_list(name, params[name], positive=(name == "scales")) for name in ("weights", "locs", "scales")}
        out["noise"] = _float("noise", params["noise"], 0.0)
        return out
    return _checker("MixturePrior (random: J, seed, noise)", _MIX_RANDOM)(params)


def _mixture_prior(**params):
    if not params:
        return Instance(MixturePrior.lecture(), np.array(MixturePrior.lecture_x, dtype=np.float64))
    if "weights" in params:
        return MixturePrior(params["weights"], params["locs"], params["scales"], params["noise"])
    return random_mixture_prior(**params)


def _rainforth(seed=0, dim=20, noise=0.01):
    rf = RainforthLinearGaussian(seed=seed, dim=dim, noise=noise)
    return Instance(rf.problem, rf.x)


def _summary(spec):
    return ", ".join(spec)


FAMILIES = {
    "LinearGaussian": Family(
        "LinearGaussian",
        LinearGaussian.random,
        {k: d for k, (d, _) in _LG_PARAMS.items()},
        "LinearGaussian.random(D, d, seed): z ~ N(0, I_d), x | z ~ N(Wz + b, diag psi); Gaussian posterior",
        _checker("LinearGaussian", _LG_PARAMS),
        False,
        parameters=_summary(_LG_PARAMS),
    ),
    "GaussianMixture": Family(
        "GaussianMixture",
        GaussianMixture.random,
        {k: d for k, (d, _) in _GM_PARAMS.items()},
        "GaussianMixture.random(C, D, seed): z ~ Cat(w) over C components, x | z ~ N(mu_z, Sigma_z) in D dims",
        _checker("GaussianMixture", _GM_PARAMS),
        False,
        parameters=_summary(_GM_PARAMS),
    ),
    "MixturePrior": Family(
        "MixturePrior",
        _mixture_prior,
        {},
        "1-D z ~ sum_j w_j N(m_j, s_j^2), x | z ~ N(z, noise^2); posterior a Gaussian mixture. No parameters: "
        "MixturePrior.lecture() at x = lecture_x = 0.5 (bimodal); J, seed, noise: random_mixture_prior; "
        "weights, locs, scales, noise: the constructor",
        _check_mixture_prior,
        lambda params: not params,
        parameters="none (the lecture) | J, seed, noise (random; defaults J=2, seed=0, noise=1.0) | "
        "weights, locs, scales, noise (all four)",
    ),
    "MissingPixels": Family(
        "MissingPixels",
        MissingPixels.digits,
        {k: d for k, (d, _) in _MP_PARAMS.items()},
        "MissingPixels.digits(latent_rows, on, off): 8x8 digit glyphs as Bernoulli templates, the top "
        "latent_rows rows latent (binary z, 8 * latent_rows bits; exact ELBO/KL up to 20 bits)",
        _checker("MissingPixels", _MP_PARAMS),
        False,
        parameters=_summary(_MP_PARAMS),
    ),
    "SigmoidBeliefNet": Family(
        "SigmoidBeliefNet",
        SigmoidBeliefNet.random,
        {k: d for k, (d, _) in _SBN_PARAMS.items()},
        "SigmoidBeliefNet.random(m, D, seed, weight_scale): h in {0,1}^m ~ prod Bern(sigmoid(c)), "
        "x | h ~ prod Bern(sigmoid(W h + b)); binary z, exact log p(x), ELBO and its gradient by enumeration "
        "(m <= 20); for the discrete gradient methods (arm, disarm, rebar, gumbel_softmax, straight_through)",
        _checker("SigmoidBeliefNet", _SBN_PARAMS),
        False,
        parameters=_summary(_SBN_PARAMS),
    ),
    "RainforthLinearGaussian": Family(
        "RainforthLinearGaussian",
        _rainforth,
        {k: d for k, (d, _) in _RF_PARAMS.items()},
        "RainforthLinearGaussian(seed, dim, noise) of Rainforth et al. (2018): its problem (a LinearGaussian "
        "over z - mu) and its own data point x",
        _checker("RainforthLinearGaussian", _RF_PARAMS),
        True,
        parameters=_summary(_RF_PARAMS),
    ),
    "LinearGaussianStateSpace": Family(
        "LinearGaussianStateSpace",
        LinearGaussianStateSpace.random,
        {k: d for k, (d, _) in _LGSS_PARAMS.items()},
        "LinearGaussianStateSpace.random(state_dim, obs_dim, T, seed): z_t = A z_(t-1) + N(0, Q), "
        "x_t = C z_t + N(0, R), stable and started stationary; x is the series (T * obs_dim); exact log p(x) "
        "by the Kalman filter, posterior by RTS; for smc (bootstrap, optimal) and ais",
        _checker("LinearGaussianStateSpace", _LGSS_PARAMS),
        False,
        parameters=_summary(_LGSS_PARAMS),
    ),
    "HiddenMarkov": Family(
        "HiddenMarkov",
        HiddenMarkov.random,
        {k: d for k, (d, _) in _HMM_PARAMS.items()},
        "HiddenMarkov.random(S, obs_dim, T, seed): a sticky S-state chain with diagonal Gaussian emissions; "
        "x is the series (T * obs_dim); exact log p(x) by the forward algorithm; for smc (bootstrap)",
        _checker("HiddenMarkov", _HMM_PARAMS),
        False,
        parameters=_summary(_HMM_PARAMS),
    ),
}
