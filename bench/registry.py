r"""The estimator registry: what a sweep can measure, the built-ins and yours.

Every estimator, built-in or a user's, is one entry with the same shape::

    fn(p, x, q, K, R, seed, **options) -> (R,) values | (R, len(q.params)) gradients

and a **target**, which decides its truth and its metrics:

=============  ==========================================  ===========================================
target         truth                                        metrics beyond bias / variance / MSE
=============  ==========================================  ===========================================
log_marginal   exact log p(x)                               bias of p_hat/p (``ratio_bias``) and the
                                                            delta-method prediction -Var[w]/(2K p^2)
elbo           exact ELBO(q) = p.elbo(x, q)                 --
elbo_grad      exact d ELBO / d q.params = p.elbo_grad      per-coordinate SNR, bias t-statistics
iwae_grad      the IWAE gradient reference at K             per-coordinate SNR, bias t-statistics
               (``estimators.iwae_gradient_reference``)     against a reference with an SE
=============  ==========================================  ===========================================

Register with ``bench.register_estimator(name, fn, target)`` or the decorator
``@bench.estimator(name, target=...)``.  The function may be written in NumPy,
JAX or PyTorch: its result goes through ``np.asarray``.  Extra keyword options
come from the config table (or ``bench.Sweep(options=...)``) and become columns
of the result.  Config files name outside code by import string,
``"package.module:attribute"``, and installed packages register through the
entry-point group ``evidence_bench.estimators`` (each entry point's value is
an import string of a registered function or of a function to register with
its ``target`` attribute).

The built-in estimators are registered here in the same way, so a user's
estimator takes the same path through the harness as ``importance_sampling``.
The sequential and annealed built-ins ``smc`` (K = the number of particles N;
options proposal, resampling, ess_threshold) and ``ais`` (K = the number of
chains; options steps, kernel, schedule, reverse) ignore the cell's q; an
``ais`` row with reverse=True is the BDMC upper bound, biased high by design.

An entry may declare three more things (``register_estimator`` keywords, or
attributes of the function for the decorator and entry points):
``applies(p, x, q, K, options) -> None | reason`` -- a cell the estimator
cannot serve is *skipped* with that reason when the sweep is planned, not
failed when it runs (smc on a model that is not a state-space model, reverse
AIS without an exact posterior sampler); ``uses_q=False`` -- the estimator
ignores q, so the q-derived columns of its rows are NaN; ``samples(p, K,
options)`` -- the work of one replicate that ``samples_per_s`` counts
(default K).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import inspect
from dataclasses import dataclass, field

import numpy as np

import estimators
from estimators.ais import check_ais
from estimators.smc import check_smc

__all__ = [
    "TARGETS",
    "Estimator",
    "EstimatorFailure",
    "register_estimator",
    "estimator",
    "get_estimator",
    "resolve_estimator",
    "registered",
    "resolve_import",
    "ENTRY_POINT_GROUP",
]

TARGETS = {
    "log_marginal": "log p_hat(x), truth exact log p(x); also the bias of p_hat/p",
    "elbo": "an ELBO estimate, truth the exact p.elbo(x, q)",
    "elbo_grad": "d ELBO / d q.params, truth the exact p.elbo_grad(x, q)",
    "iwae_grad": "d IWAE_K / d q.params, truth the IWAE gradient reference at K",
    "renyi_bound": "an estimate of the Renyi bound L_alpha, truth the exact p.renyi_bound(x, q, alpha)",
    "cubo": "an estimate of CUBO_n = (1/n) log E_q[w^n], truth the exact p.cubo(x, q, n)",
}
GRADIENT_TARGETS = ("elbo_grad", "iwae_grad")
ENTRY_POINT_GROUP = "evidence_bench.estimators"


class EstimatorFailure(ValueError):
    """A user's estimator failed its cell: it raised, or returned the wrong
    shape, NaN or inf.  ``kind`` is one of "raised", "shape", "nonfinite"."""

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Estimator:
    """One registered estimator.

    ``target`` is one of ``TARGETS``, or ``"objective"`` for an estimator
    whose target follows its ``objective`` option (the built-in "gradient":
    "elbo" -> elbo_grad, "iwae" -> iwae_grad).  ``origin`` is "built-in",
    "user" (registered in this process) or "entry point <distribution>";
    ``import_path()`` the "module:attribute" that re-imports ``fn`` in another
    process, or None when none does (a lambda, a closure, a function defined
    in ``__main__`` or renamed after its definition).
    """

    name: str
    fn: object = field(compare=False)
    target: str
    description: str = ""
    origin: str = "user"
    #: ``applies(p, x, q, K, options) -> None | reason``: None when the estimator can run the
    #: cell, else a message saying why not (the sweep skips the cell with it); None = always
    applies: object = field(default=None, compare=False)
    #: False for an estimator that ignores the cell's q (smc, ais): its q-derived columns are NaN
    uses_q: bool = True
    #: ``samples(p, K, options) -> int``: the units of work of one replicate that
    #: ``samples_per_s`` counts (None = K: draws; smc: particle-steps N T; ais: chain-steps K steps)
    samples: object = field(default=None, compare=False)

    def import_path(self):
        """"module:qualname" if importing it gives back this very function, else None."""
        module, qualname = getattr(self.fn, "__module__", None), getattr(self.fn, "__qualname__", "")
        if not module or module == "__main__" or "<" in qualname:
            return None
        path = f"{module}:{qualname}"
        try:
            return path if resolve_import(path, key="fn") is self.fn else None
        except ValueError:
            return None

    @property
    def builtin(self):
        return self.origin == "built-in"

    def target_for(self, options):
        """The target of a call with these options."""
        if self.target != "objective":
            return self.target
        return "iwae_grad" if options.get("objective", "elbo") == "iwae" else "elbo_grad"

    def is_gradient(self, options=None):
        return self.target_for(options or {}) in GRADIENT_TARGETS

    def skip_reason(self, p, x, q, K, options=None):
        """None if the estimator can run (p, x, q, K, options), else its reason
        (``applies``; a non-empty string), prefixed with the estimator's name."""
        if self.applies is None:
            return None
        reason = self.applies(p, x, q, K, dict(options or {}))
        if reason is None:
            return None
        if not isinstance(reason, str) or not reason:
            raise ValueError(f"applies: {self.name!r}'s check must return None or a non-empty reason, got {reason!r}")
        return reason if reason.startswith(f"{self.name}: ") else f"{self.name}: {reason}"

    def samples_per_replicate(self, p, K, options=None):
        """The work of one replicate that ``samples_per_s`` counts: ``samples(p, K, options)``, else K."""
        if self.samples is None:
            return int(K)
        n = self.samples(p, K, dict(options or {}))
        if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"samples: {self.name!r}'s count must be a positive integer, got {n!r}")
        return int(n)

    def call(self, p, x, q, K, R, seed, options=None):
        """fn(p, x, q, K, R, seed, **options) as a float64 array of the target's
        shape; an ``EstimatorFailure`` naming the estimator when it raises or
        returns something of the wrong shape or non-finite."""
        options = dict(options or {})
        try:
            out = self.fn(p, x, q, K, R, seed, **options)
        except Exception as exc:  # a user's code: it fails its own cell, not the run
            raise EstimatorFailure("raised", f"{self.name}: raised {type(exc).__name__}: {exc}") from exc
        try:
            out = np.asarray(out, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise EstimatorFailure("shape", f"{self.name}: returned something that is not an array of floats ({exc})")
        want = (R, len(q.params)) if self.is_gradient(options) else (R,)
        if out.shape != want:
            raise EstimatorFailure("shape", f"{self.name}: returned shape {out.shape}, expected {want}")
        bad = ~np.isfinite(out)
        if bad.any():
            what = "NaN" if np.isnan(out).any() else "inf"
            raise EstimatorFailure(
                "nonfinite", f"{self.name}: returned {what} ({int(bad.sum())} of {out.size} entries are not finite)"
            )
        return out


_REGISTRY: dict[str, Estimator] = {}


def _check_fn(name, fn):
    if not callable(fn):
        raise ValueError(f"fn: expected a callable fn(p, x, q, K, R, seed, **options), got {fn!r}")
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin or a C function: trust it
        return
    params = list(sig.parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) < 6 and not any(p.kind == p.VAR_POSITIONAL for p in params):
        raise ValueError(
            f"fn: {name!r} must take (p, x, q, K, R, seed, **options); its signature is {sig}"
        )


def register_estimator(name, fn, target, description=None, *, origin="user", replace=False, applies=None,
                       uses_q=True, samples=None):
    """Register ``fn(p, x, q, K, R, seed, **options)`` under ``name`` with a
    ``target`` from ``TARGETS``; returns ``fn``.  A duplicate name is a
    ValueError unless ``replace=True`` (or it is the same function again).

    ``applies(p, x, q, K, options) -> None | reason``: a check run when a
    sweep is planned; a reason (a string) makes the cell *skipped* with it
    (``skipped.json``), not failed.  ``uses_q=False``: the estimator ignores
    q, so the q-derived columns (kl, elbo_exact, rel_weight_var, ess_limit,
    bias_pred, ...) of its rows are NaN.  ``samples(p, K, options)``: the
    work of one replicate that ``samples_per_s`` counts (default K)."""
    for key, value in (("applies", applies), ("samples", samples)):
        if value is not None and not callable(value):
            raise ValueError(f"{key}: expected None or a callable, got {value!r}")
    if not isinstance(uses_q, (bool, np.bool_)):
        raise ValueError(f"uses_q: expected True or False, got {uses_q!r}")
    if not isinstance(name, str) or not name or ":" in name or name.strip() != name:
        raise ValueError(f"name: expected a non-empty name without ':' or surrounding spaces, got {name!r}")
    if target not in TARGETS and not (origin == "built-in" and target == "objective"):
        raise ValueError(f"target: unknown target {target!r} for {name!r}; expected one of {list(TARGETS)}")
    _check_fn(name, fn)
    existing = _REGISTRY.get(name)
    if existing is not None and existing.fn is not fn and not replace:
        raise ValueError(
            f"name: an estimator {name!r} is already registered ({existing.origin}); "
            "choose another name or pass replace=True"
        )
    if description is None:
        doc = inspect.getdoc(fn) or ""
        description = doc.strip().splitlines()[0] if doc.strip() else ""
    _REGISTRY[name] = Estimator(name, fn, target, description, origin, applies, bool(uses_q), samples)
    return fn


def estimator(name, target, description=None, *, applies=None, uses_q=True, samples=None):
    """Decorator form of ``register_estimator``::

        @bench.estimator("defensive_is", target="log_marginal")
        def defensive_is(p, x, q, K, R, seed): ...
    """

    def wrap(fn):
        register_estimator(name, fn, target, description, applies=applies, uses_q=uses_q, samples=samples)
        fn.target = target
        fn.estimator_name = name
        fn.applies, fn.uses_q, fn.samples = applies, uses_q, samples
        return fn

    return wrap


def resolve_import(spec, key="estimator"):
    """The object an import string ``"package.module:attribute"`` names
    (attribute may be dotted); a ValueError naming ``key`` when it does not resolve."""
    if not isinstance(spec, str) or spec.count(":") != 1:
        raise ValueError(f"{key}: expected an import string 'package.module:attribute', got {spec!r}")
    module_name, attr = spec.split(":")
    if not module_name or not attr:
        raise ValueError(f"{key}: expected an import string 'package.module:attribute', got {spec!r}")
    try:
        obj = importlib.import_module(module_name)
    except Exception as exc:
        raise ValueError(f"{key}: cannot import module {module_name!r} of {spec!r} ({type(exc).__name__}: {exc})") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ValueError(f"{key}: module {module_name!r} has no attribute {attr!r} ({spec!r})") from None
    return obj


_ENTRY_POINTS_LOADED = False


def _declared(fn):
    """The ``applies``, ``uses_q`` and ``samples`` a function declares as attributes."""
    return dict(applies=getattr(fn, "applies", None), uses_q=getattr(fn, "uses_q", True),
                samples=getattr(fn, "samples", None))


def _load_entry_points():
    global _ENTRY_POINTS_LOADED
    if _ENTRY_POINTS_LOADED:
        return
    _ENTRY_POINTS_LOADED = True
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(getattr(ep, "dist", None), "name", "?")
        try:
            obj = ep.load()
        except Exception as exc:
            raise ValueError(
                f"entry point {ep.name!r} ({ENTRY_POINT_GROUP}, from {dist}): cannot load {ep.value!r} "
                f"({type(exc).__name__}: {exc})"
            ) from None
        if ep.name in _REGISTRY and _REGISTRY[ep.name].fn is obj:
            # importing it registered it (the decorator): say where it came from
            _REGISTRY[ep.name] = dataclasses.replace(_REGISTRY[ep.name], origin=f"entry point {dist}")
            continue
        target = getattr(obj, "target", None)
        if target is None:
            raise ValueError(
                f"entry point {ep.name!r} ({ENTRY_POINT_GROUP}, from {dist}): {ep.value!r} has no target; "
                "decorate it with @bench.estimator(name, target=...) or give it a .target attribute"
            )
        register_estimator(ep.name, obj, target, origin=f"entry point {dist}", **_declared(obj))


def registered():
    """{name: Estimator} of every registered estimator (entry points loaded)."""
    _load_entry_points()
    return dict(_REGISTRY)


def builtin_descriptions():
    """{name: description} of the built-in estimators -- without loading entry
    points, so it is safe while ``bench`` itself is being imported."""
    return {name: e.description for name, e in _REGISTRY.items() if e.builtin}


def get_estimator(name, key="estimator"):
    """The registered Estimator ``name``; a ValueError naming ``key`` otherwise."""
    _load_entry_points()
    if name not in _REGISTRY:
        raise ValueError(f"{key}: unknown estimator {name!r}; registered: {sorted(_REGISTRY)}")
    return _REGISTRY[name]


def resolve_estimator(spec, key="estimator", target=None):
    """An Estimator from a registered name, an import string
    ``"module:attribute"`` (a registered function, or one with a ``target``
    attribute, or ``target`` given), or a function object.  Unregistered
    functions are registered under their ``estimator_name`` or ``__name__``."""
    if isinstance(spec, Estimator):
        return spec
    if isinstance(spec, str):
        if ":" not in spec:
            return get_estimator(spec, key)
        fn = resolve_import(spec, key)
    elif callable(spec):
        fn = spec
    else:
        raise ValueError(f"{key}: expected an estimator name, an import string or a function, got {spec!r}")
    _load_entry_points()
    for entry in _REGISTRY.values():
        if entry.fn is fn:
            return entry
    target = target or getattr(fn, "target", None)
    if target is None:
        raise ValueError(
            f"{key}: {getattr(fn, '__name__', spec)!r} is not registered and has no target; register it with "
            "bench.register_estimator(name, fn, target) or @bench.estimator(name, target=...)"
        )
    name = getattr(fn, "estimator_name", None) or getattr(fn, "__name__", None)
    if not name or name == "<lambda>":
        raise ValueError(f"{key}: a lambda needs a name: use bench.register_estimator(name, fn, target)")
    register_estimator(name, fn, target, **_declared(fn))
    return _REGISTRY[name]


# --------------------------------------------------------------------------- the built-ins


def _importance_sampling(p, x, q, K, R, seed):
    """log p_hat(x) = log (1/K) sum_k w_k  (estimators.importance_sampling; uniform MC is q = 'uniform')."""
    return estimators.importance_sampling(p, x, q, K, R, seed=seed)


def _elbo(p, x, q, K, R, seed):
    """(1/K) sum_k log w_k  (estimators.elbo)."""
    return estimators.elbo(p, x, q, K, R, seed=seed)


def _gradient(p, x, q, K, R, seed, method="score", objective="elbo", **options):
    """d objective / d q.params  (estimators.gradient; crossed with methods x objectives, and
    each method with its own options: temperature, eta)."""
    return estimators.gradient(p, x, q, K, R, method, objective, seed=seed, **options)


register_estimator("importance_sampling", _importance_sampling, "log_marginal", origin="built-in")
register_estimator("elbo", _elbo, "elbo", origin="built-in")
register_estimator("gradient", _gradient, "objective", origin="built-in")


def _smc(p, x, q, K, R, seed, proposal="bootstrap", resampling="systematic", ess_threshold=0.5):
    r"""log Z_hat of a particle filter with N = K particles (estimators.smc); q is ignored.

    :math:`\hat Z = \prod_j \frac1N \sum_i \prod_{t \in \text{stretch } j} \omega_t^i` over the
    stretches between resampling times; :math:`E[\hat Z] = p(x)` for every N, ``proposal``
    ("bootstrap", "optimal") and ``resampling`` ("multinomial", "stratified", "systematic",
    "residual"; when ESS < ess_threshold * N).  The sweep's K column is the number of particles
    N, and the cell's q is not used (a particle filter draws from the model's transitions or its
    locally optimal proposal): its q-derived columns (``kl``, ``rel_weight_var``, ``ess_limit``,
    ``bias_pred``, ...) are NaN, and ``samples_per_s`` counts particle-steps, N T R / seconds.
    p must follow the state-space protocol (problems.state_space); a cell whose problem does not,
    or whose options smc refuses ("optimal" without its closed form), is skipped with smc's
    message."""
    return estimators.smc(p, x, K, R, seed=seed, proposal=proposal, resampling=resampling,
                          ess_threshold=ess_threshold)


def _ais(p, x, q, K, R, seed, steps=10, kernel="hmc", schedule="geometric", reverse=False):
    r"""log p_hat(x) by annealed importance sampling with K chains (estimators.ais); q is ignored.

    Forward (``reverse=False``): chains from the prior along
    :math:`f_\beta = p(z) L(z)^\beta` over ``steps`` temperatures,
    :math:`\log\hat p = \log\frac1K\sum_k w_k` with :math:`E[w] = p(x)`: a stochastic lower
    bound, biased low like importance sampling.  Reverse (``reverse=True``): chains from exact
    posterior draws back to the prior, :math:`E[w] = 1/p(x)`, returning
    :math:`-\log\frac1K\sum_k w_k`, the BDMC stochastic *upper* bound (Grosse et al. 2015).
    Both are registered against the same truth, log p(x) (target "log_marginal"), but a reverse
    row's bias is positive by design (about +Var/2 for large K) and its ``ratio_bias`` (the
    mean of p_hat/p - 1) is not expected to be 0: it is 1/p_hat that is unbiased for 1/p(x).
    K is the number of chains; the cell's q is not used (the chains start from the prior, or
    the exact posterior): its q-derived columns are NaN, and ``samples_per_s`` counts
    chain-steps, K steps R / seconds.  A cell ais refuses (reverse=True without an exact
    posterior sampler, "hmc" without grad_log_joint, ...) is skipped with ais's message."""
    return estimators.ais(p, x, K, R, steps, seed=seed, kernel=kernel, schedule=schedule, reverse=reverse)


def _jackknife(p, x, q, K, R, seed, order=1):
    r"""Jackknife variational inference (Nowozin 2018): the IS estimate of log p(x) with its
    1/K (order 1) or 1/K and 1/K^2 (order 2) bias terms removed (estimators.jackknife)."""
    return estimators.jackknife(p, x, q, K, R, order=order, seed=seed)


def _renyi_bound(p, x, q, K, R, seed, alpha=0.5):
    r""":math:`\frac1{1-\alpha}\log\frac1K\sum_k w_k^{1-\alpha}` (Li & Turner 2016; estimators.renyi_bound)."""
    return estimators.renyi_bound(p, x, q, K, R, alpha, seed=seed)


def _cubo(p, x, q, K, R, seed, n=2):
    r""":math:`\frac1n\log\frac1K\sum_k w_k^n`, the chi upper bound (Dieng et al. 2017; estimators.cubo)."""
    return estimators.cubo(p, x, q, K, R, n=n, seed=seed)


def _jackknife_applies(p, x, q, K, options):
    """A cell with fewer draws than the order-m jackknife leaves out plus one is skipped
    (K < order + 1); a bad order is left to estimators.jackknife's ValueError."""
    order = options.get("order", 1)
    if order in (1, 2) and K < order + 1:
        return f"the order-{order} jackknife leaves {order} of the K draws out, so it needs K >= {order + 1}, got {K}"
    return None


register_estimator("jackknife", _jackknife, "log_marginal", origin="built-in", applies=_jackknife_applies)
register_estimator("renyi_bound", _renyi_bound, "renyi_bound", origin="built-in")
register_estimator("cubo", _cubo, "cubo", origin="built-in")


def _smc_applies(p, x, q, K, options):
    """estimators.smc's own refusal of (p, N = K, options), or None."""
    try:
        check_smc(p, x, K, 1, 0, **options)
    except ValueError as exc:
        return str(exc)
    return None


def _ais_applies(p, x, q, K, options):
    """estimators.ais's own refusal of (p, K, options), or None (reverse=True builds p.posterior(x))."""
    options = dict(options)
    steps = options.pop("steps", 10)
    try:
        check_ais(p, x, K, 1, steps, 0, **options)
    except ValueError as exc:
        return str(exc)
    return None


def _smc_samples(p, K, options):
    """Particle-steps of one replicate: N T."""
    return int(K) * int(p.T)


def _ais_samples(p, K, options):
    """Chain-steps of one replicate: K steps."""
    return int(K) * int(options.get("steps", 10))


register_estimator("smc", _smc, "log_marginal", origin="built-in", applies=_smc_applies, uses_q=False,
                   samples=_smc_samples)
register_estimator("ais", _ais, "log_marginal", origin="built-in", applies=_ais_applies, uses_q=False,
                   samples=_ais_samples)
