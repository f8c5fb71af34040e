"""What to run: problem specifications, sweeps and their cells.

A ``Sweep`` is one cross product

    problems x q presets x estimators x K  (x method x objective for "gradient")

with R replicates per cell and a root seed.  A ``Cell`` is one point of it.
Each cell's seed is derived from the root seed and a hash of the cell's
identity (problem specification, q, estimator, K, R, method, objective), so
results do not depend on the order in which cells run, on which other cells a
sweep contains, or on the executor.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import math
import numbers
from dataclasses import dataclass, field

import numpy as np

from estimators.gradients import METHODS as _ESTIMATOR_METHODS

from . import registry as _registry
from estimators.gradients import OBJECTIVES as _ESTIMATOR_OBJECTIVES

from .families import BUILTIN_FAMILIES, resolve_family
from .presets import parse_preset

__all__ = [
    "ESTIMATORS",
    "METHODS",
    "OBJECTIVES",
    "FAMILIES",
    "ProblemSpec",
    "Cell",
    "Sweep",
    "cell_seed",
    "build_problem",
    "build_instance",
    "BuiltProblem",
    "canonical_param",
]

# The built-in estimators, as registered in bench.registry (name -> description).
# A sweep takes any registered name, an import string or a function.
ESTIMATORS = _registry.builtin_descriptions()
# Read from their source packages, not copied: the gradient methods and
# objectives estimators.gradient accepts, and the built-in problem families
# (name -> problems.families.Family).  Families outside the package (import
# strings, entry points) are resolved by bench.families.resolve_family.
METHODS = tuple(_ESTIMATOR_METHODS)
OBJECTIVES = tuple(_ESTIMATOR_OBJECTIVES)
FAMILIES = BUILTIN_FAMILIES
MIN_R = 4  # variance standard errors need four replicates
RESERVED_KEYS = ("family", "x_seed", "x")  # the keys of a problem table that are not the family's parameters


INT64_MAX = 2**63 - 1  # the kernels count samples and replicates in int64


def _check_int(key, value, minimum, maximum=None):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{key}: must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{key}: must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{key}: must be <= {maximum}, got {value}")
    return int(value)


def _str_list(key, values, allowed=None, what="value"):
    if isinstance(values, str) or not hasattr(values, "__iter__"):
        raise ValueError(f"{key}: expected a list, got {values!r}")
    values = list(values)
    if not values:
        raise ValueError(f"{key}: must not be empty")
    for i, v in enumerate(values):
        if not isinstance(v, str):
            raise ValueError(f"{key}[{i}]: expected a string, got {v!r}")
        if allowed is not None and v not in allowed:
            raise ValueError(f"{key}[{i}]: unknown {what} {v!r}; expected one of {list(allowed)}")
    if len(set(values)) != len(values):
        raise ValueError(f"{key}: contains duplicates: {values}")
    return tuple(values)


def canonical_param(key, value):
    """A problem parameter in the canonical, hashable form a cell's identity
    is hashed from: bool, int, float (finite), str, or a tuple of those
    (nested lists become nested tuples; JSON writes them back as lists)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"{key}: must be finite, got {value!r}")
        return value
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return tuple(canonical_param(f"{key}[{i}]", v) for i, v in enumerate(value))
    if isinstance(value, np.ndarray):
        return canonical_param(key, value.tolist())
    raise ValueError(
        f"{key}: a problem parameter must be a number, a string, a boolean or a list of them, "
        f"got {type(value).__name__} {value!r}"
    )


def _thaw(value):
    """Tuples back to lists, for the factory call and for JSON."""
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


@dataclass(frozen=True)
class ProblemSpec:
    """A problem instance: a family, its parameters and the observation.

    ``family`` is a built-in family name (``problems.families.FAMILIES``), an
    import string ``"package.module:attribute"`` or the name of an
    ``evidence_bench.problems`` entry point (``bench.families``).
    ``params`` are the family's parameters: for a built-in family checked
    and completed with its defaults; for any other family scalars, strings,
    booleans or lists of them, passed as keywords to ``random`` (or the
    constructor).

    The observation: ``x`` when given (a list of D numbers); else
    ``p.sample(1, seed=x_seed)[0]`` when ``x_seed`` is given; else the
    family's own fixed observation if it has one (MixturePrior's lecture
    instance, RainforthLinearGaussian); else ``p.sample(1, seed=0)[0]``.
    ``x_seed`` is then 0 for a family known to have no fixed observation and
    None otherwise.
    """

    family: str
    params: tuple = ()  # sorted (name, canonical value) pairs
    x_seed: int | None = None
    x: tuple | None = None

    def __init__(self, family, params=None, x_seed=None, x=None):
        fam = resolve_family(family)
        if params is not None and not isinstance(params, dict):
            raise ValueError(f"params: expected a mapping of {family}'s parameters, got {type(params).__name__}")
        params = dict(params or {})
        for name in params:
            if not isinstance(name, str) or not name:
                raise ValueError(f"params: parameter names must be non-empty strings, got {name!r}")
            if name in RESERVED_KEYS:
                raise ValueError(f"{name}: is not a parameter of {family}; give it as ProblemSpec's own argument")
        # the family's own check first (its messages name the parameter: "D: must be an integer"),
        # then the canonical form every value must have to be hashed into the cell's identity
        full = fam.check_params(params)
        full = {name: canonical_param(name, value) for name, value in full.items()}
        if x is not None:
            if x_seed is not None:
                raise ValueError("x: give either x (the observation itself) or x_seed (to draw it), not both")
            if isinstance(x, (str, bytes)) or not hasattr(x, "__iter__"):
                raise ValueError(f"x: expected a list of numbers (one observation), got {x!r}")
            x = canonical_param("x", list(x))
            for i, v in enumerate(x):
                if isinstance(v, (bool, str, tuple)):
                    raise ValueError(f"x[{i}]: must be a number, got {v!r}")
            x = tuple(float(v) for v in x)
            if not x:
                raise ValueError("x: must not be empty")
        elif x_seed is not None:
            x_seed = _check_int("x_seed", x_seed, 0)
        elif fam.has_fixed_x(full) is False:
            x_seed = 0  # no fixed observation: x = p.sample(1, seed=0)[0], as when x_seed = 0 is given
        object.__setattr__(self, "family", family)
        object.__setattr__(self, "params", tuple(sorted(full.items())))
        object.__setattr__(self, "x_seed", x_seed)
        object.__setattr__(self, "x", x)

    def identity(self) -> dict:
        ident = {"family": self.family, "params": {k: _thaw(v) for k, v in self.params}, "x_seed": self.x_seed}
        if self.x is not None:
            ident["x"] = list(self.x)
        return ident

    def kwargs(self) -> dict:
        """The parameters as the factory receives them (lists, not tuples)."""
        return {k: _thaw(v) for k, v in self.params}

    def build(self):
        """(p, x) -- cached per process."""
        built = build_instance(self)
        return built.problem, built.x


@dataclass(frozen=True)
class BuiltProblem:
    """A built problem: ``problem``, the observation ``x`` (read-only) and how
    x was chosen: ``x_seed`` (the seed x was drawn with, or -1 when it was
    not drawn) and ``x_source`` ("sample", "family" or "given")."""

    problem: object
    x: np.ndarray
    x_seed: int
    x_source: str


def _check_observation(p, x, what):
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"x: {what} is not an array of numbers ({exc})") from None
    D = getattr(p, "obs_dim", None)
    if arr.ndim != 1 or (D is not None and arr.shape != (D,)):
        raise ValueError(f"x: {what} has shape {arr.shape}, expected ({D},) (the problem's obs_dim)")
    if not np.isfinite(arr).all():
        raise ValueError(f"x: {what} contains non-finite values")
    own = getattr(p, "_check_x", None)
    if own is not None:
        arr = own(arr)
    arr = np.array(arr, dtype=np.float64)
    arr.setflags(write=False)
    return arr


@functools.lru_cache(maxsize=64)
def build_instance(spec: ProblemSpec) -> BuiltProblem:
    """Build the problem and choose its observation (see ``ProblemSpec``).
    ValueError (starting with the offending key) when the family cannot be
    built or no observation can be had; cached per process."""
    fam = resolve_family(spec.family)
    kwargs = spec.kwargs()
    try:
        inst = fam.build(kwargs)
    except ValueError:
        raise
    except Exception as exc:
        raise ValueError(
            f"family: building {spec.family} with {kwargs} raised {type(exc).__name__}: {exc}"
        ) from None
    p, fixed = inst.problem, inst.x
    for member in ("log_joint", "log_marginal", "prior"):
        if not callable(getattr(p, member, None)):
            raise ValueError(
                f"family: {spec.family} built a {type(p).__name__}, which has no {member}; a problem needs "
                "obs_dim, latent_dim, latent_type, log_joint, log_marginal and prior (see problems.Problem)"
            )
    if spec.x is not None:
        return BuiltProblem(p, _check_observation(p, spec.x, "the given x"), -1, "given")
    if spec.x_seed is None and fixed is not None:
        return BuiltProblem(p, _check_observation(p, fixed, f"{spec.family}'s fixed observation"), -1, "family")
    seed = 0 if spec.x_seed is None else spec.x_seed
    sample = getattr(p, "sample", None)
    if not callable(sample):
        raise ValueError(
            f"p.sample: {type(p).__name__} (family {spec.family}) has no sample(n, seed) to draw an observation "
            "with, and its family gives no fixed x; give the observation as x = [...] in the problem's table"
        )
    X = np.asarray(sample(1, seed=seed))
    if X.ndim != 2 or X.shape[0] != 1:
        raise ValueError(f"p.sample: {type(p).__name__}.sample(1, seed) returned shape {X.shape}, expected (1, D)")
    return BuiltProblem(p, _check_observation(p, X[0], f"{type(p).__name__}.sample(1, seed={seed})[0]"), seed, "sample")


def build_problem(spec: ProblemSpec):
    """(p, x) -- cached per process (``build_instance``)."""
    return spec.build()


def _canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def cell_seed(root_seed: int, identity: dict) -> int:
    """A 63-bit seed from ``SeedSequence([root_seed, *sha256(identity) words])``.

    Depends only on the root seed and the cell's identity (not on the order
    of cells or the executor)."""
    digest = hashlib.sha256(_canonical(identity).encode()).digest()
    words = np.frombuffer(digest, dtype=np.uint32).tolist()
    state = np.random.SeedSequence([int(root_seed)] + words).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) & ((1 << 63) - 1)


@dataclass(frozen=True)
class Cell:
    """One point of a sweep."""

    problem: str
    spec: ProblemSpec
    q: str
    estimator: str
    K: int
    R: int
    method: str = ""
    objective: str = ""
    root_seed: int = 0
    #: a user estimator's options, sorted (name, value) pairs (they become columns)
    options: tuple = ()
    #: the "module:attribute" that imports a user estimator in a worker process ("" for a built-in)
    estimator_ref: str = ""

    def identity(self) -> dict:
        """What the cell's random numbers depend on (not the problem's label)."""
        ident = {
            "problem": self.spec.identity(),
            "q": self.q,
            "estimator": self.estimator,
            "K": self.K,
            "R": self.R,
            "method": self.method,
            "objective": self.objective,
        }
        if self.options:  # absent for the built-ins: their cell ids (and stored results) stay as they were
            ident["options"] = dict(self.options)
        return ident

    def entry(self):
        """The cell's registered estimator (imported from ``estimator_ref`` in a
        process where it is not registered yet)."""
        try:
            return _registry.get_estimator(self.estimator)
        except ValueError:
            if not self.estimator_ref:
                raise
        return _registry.resolve_estimator(self.estimator_ref)

    @property
    def seed(self) -> int:
        return cell_seed(self.root_seed, self.identity())

    @property
    def cell_id(self) -> str:
        """File name of the cell: a hash of identity, label and root seed."""
        key = {"identity": self.identity(), "label": self.problem, "root_seed": self.root_seed}
        return hashlib.sha256(_canonical(key).encode()).hexdigest()[:24]

    def label(self) -> str:
        extra = f" {self.method}/{self.objective}" if self.estimator == "gradient" else ""
        if self.options:
            extra += " " + " ".join(f"{k}={v}" for k, v in self.options)
        return f"{self.problem} q={self.q} {self.estimator}{extra} K={self.K} R={self.R}"


@dataclass(frozen=True)
class Sweep:
    """problems x q x estimators x K (x methods x objectives for "gradient").

    ``problems`` maps a label to a ``ProblemSpec`` (or a dict with ``family``,
    ``x_seed`` and the family's parameters).  ``estimators`` are registered
    names, import strings ``"package.module:attribute"`` or functions (see
    ``bench.registry``).  ``methods``/``objectives`` are required to be absent
    unless "gradient" is among the estimators; with it they default to every
    method and to ("elbo",).  ``options`` maps an option name to a value or a
    list of values (crossed): they are passed to the sweep's *user*
    estimators as keyword arguments and become columns of the result.
    """

    problems: dict
    q: tuple
    estimators: tuple
    K: tuple
    R: int
    methods: tuple = ()
    objectives: tuple = ()
    seed: int = 0
    name: str = "sweep"
    options: tuple = ()
    _refs: tuple = field(default=(), repr=False, compare=False)
    _cells: tuple = field(default=(), repr=False, compare=False)

    def __init__(self, problems, q, estimators, K, R, methods=None, objectives=None, seed=0, name="sweep",
                 options=None):
        if not isinstance(problems, dict) or not problems:
            raise ValueError("problems: expected a non-empty mapping of label -> ProblemSpec")
        specs = {}
        for label, spec in problems.items():
            if not isinstance(label, str) or not label:
                raise ValueError(f"problems: labels must be non-empty strings, got {label!r}")
            if isinstance(spec, dict):
                spec = dict(spec)
                if "family" not in spec:
                    raise ValueError(f"problems.{label}.family: missing")
                family = spec.pop("family")
                x_seed = spec.pop("x_seed", None)
                x = spec.pop("x", None)
                try:
                    spec = ProblemSpec(family, spec, x_seed, x)
                except ValueError as exc:
                    raise ValueError(f"problems.{label}.{exc}") from None
            elif not isinstance(spec, ProblemSpec):
                raise ValueError(f"problems.{label}: expected a ProblemSpec or a dict, got {type(spec).__name__}")
            specs[label] = spec
        q = _str_list("q", q)
        for i, name_ in enumerate(q):
            parse_preset(name_, key=f"q[{i}]")
        estimators, refs = _resolve_estimators(estimators)
        options = _check_options(options, refs)
        if isinstance(K, (str, bytes)) or not hasattr(K, "__iter__"):
            raise ValueError(f"K: expected a list of integers, got {K!r}")
        K = tuple(_check_int(f"K[{i}]", k, 1, INT64_MAX) for i, k in enumerate(K))
        if not K:
            raise ValueError("K: must not be empty")
        if len(set(K)) != len(K):
            raise ValueError(f"K: contains duplicates: {list(K)}")
        R = _check_int("R", R, MIN_R, INT64_MAX)
        if "gradient" in estimators:
            methods = _str_list("methods", METHODS if methods is None else methods, METHODS, "method")
            objectives = _str_list(
                "objectives", ("elbo",) if objectives is None else objectives, OBJECTIVES, "objective"
            )
        else:
            if methods is not None:
                raise ValueError("methods: only meaningful with the 'gradient' estimator, which is not listed")
            if objectives is not None:
                raise ValueError("objectives: only meaningful with the 'gradient' estimator, which is not listed")
            methods, objectives = (), ()
        seed = _check_int("seed", seed, 0)
        if not isinstance(name, str) or not name:
            raise ValueError(f"name: expected a non-empty string, got {name!r}")
        for attr, value in [
            ("problems", specs),
            ("q", q),
            ("estimators", estimators),
            ("K", K),
            ("R", R),
            ("methods", methods),
            ("objectives", objectives),
            ("seed", seed),
            ("name", name),
            ("options", options),
            ("_refs", refs),
        ]:
            object.__setattr__(self, attr, value)
        object.__setattr__(self, "_cells", tuple(self._expand()))

    def _expand(self):
        for label, spec in self.problems.items():
            for q in self.q:
                for est in self.estimators:
                    variants = (
                        [(m, o) for o in self.objectives for m in self.methods] if est == "gradient" else [("", "")]
                    )
                    ref = dict(self._refs)[est]
                    accepted = _accepted(est, self.options)
                    for method, objective in variants:
                        # a gradient method is crossed with the options it takes (METHODS[m].options)
                        mine = _method_options(method, accepted) if est == "gradient" else accepted
                        for opts in _option_grid(mine):
                            for K in self.K:
                                yield Cell(label, spec, q, est, K, self.R, method, objective, self.seed,
                                           opts, ref or "")


    def cells(self) -> list:
        """Every cell, in a fixed order (problem, q, estimator, objective, method, K)."""
        return list(self._cells)

    def __len__(self):
        return len(self._cells)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "seed": self.seed,
            "problems": {k: v.identity() for k, v in self.problems.items()},
            "q": list(self.q),
            "estimators": list(self.estimators),
            "K": list(self.K),
            "R": self.R,
            "methods": list(self.methods),
            "objectives": list(self.objectives),
            "options": {k: list(v) for k, v in self.options},
        }


def _resolve_estimators(values):
    """(names, ((name, ref), ...)): each entry resolved through the registry;
    ref is None for a built-in, else the user estimator's import path ("" when
    it has none: it then runs only in this process)."""
    if isinstance(values, (str, bytes)) or callable(values) or not hasattr(values, "__iter__"):
        raise ValueError(f"estimators: expected a list, got {values!r}")
    values = list(values)
    if not values:
        raise ValueError("estimators: must not be empty")
    names, refs = [], []
    for i, v in enumerate(values):
        if not (isinstance(v, str) or callable(v)):
            raise ValueError(f"estimators[{i}]: expected a name, an import string or a function, got {v!r}")
        entry = _registry.resolve_estimator(v, key=f"estimators[{i}]")
        if entry.name in names:
            raise ValueError(f"estimators: contains duplicates: {entry.name!r}")
        names.append(entry.name)
        refs.append((entry.name, None if entry.builtin else (entry.import_path() or "")))
    return tuple(names), tuple(refs)


def _option_value(key, v):
    if isinstance(v, (bool, np.bool_)) or isinstance(v, str) or v is None:
        return v if not isinstance(v, np.bool_) else bool(v)
    if isinstance(v, numbers.Integral):
        return int(v)
    if isinstance(v, numbers.Real) and np.isfinite(v):
        return float(v)
    raise ValueError(f"{key}: an option value must be a string, a boolean or a finite number, got {v!r}")


def _check_options(options, refs):
    """((name, (values...)), ...) sorted by name; lists are crossed."""
    if options is None or options == {}:
        return ()
    if not isinstance(options, dict):
        raise ValueError(f"options: expected a mapping of option name -> value or list of values, got {options!r}")
    out = []
    for name, values in sorted(options.items()):
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"options: {name!r} is not a keyword-argument name")
        if name in ("p", "x", "q", "K", "R", "seed", "method", "objective"):
            raise ValueError(f"options.{name}: is an argument every estimator already takes")
        vals = list(values) if isinstance(values, (list, tuple)) else [values]
        if not vals:
            raise ValueError(f"options.{name}: must not be an empty list")
        vals = tuple(_option_value(f"options.{name}[{j}]", v) for j, v in enumerate(vals))
        if len(set(map(repr, vals))) != len(vals):
            raise ValueError(f"options.{name}: contains duplicates: {list(vals)}")
        out.append((name, vals))
    out = tuple(out)
    for name, _ in out:
        if not any(name in dict(_accepted(est, out)) for est, _ in refs):
            raise ValueError(f"options.{name}: none of this sweep's estimators takes an option {name!r}")
    return out


def _option_grid(options):
    """Every combination of the options' values, as sorted (name, value) tuples."""
    grid = [()]
    for name, vals in options:
        grid = [g + ((name, v),) for g in grid for v in vals]
    return grid


def _method_options(method, options):
    """The options a gradient method takes (``estimators.METHODS[method].options``)."""
    takes = _ESTIMATOR_METHODS[method].options
    return tuple((k, v) for k, v in options if k in takes)


def _accepted(name, options):
    """The options an estimator takes: those its function names as keyword
    parameters (all of them when it takes ``**options``, unless it is a built-in);
    for the built-in "gradient", the options of any of its methods (temperature,
    eta: each method's cells are crossed with its own, ``_method_options``)."""
    if name == "gradient":
        takes = set().union(*(spec.options for spec in _ESTIMATOR_METHODS.values()))
        return tuple((k, v) for k, v in options if k in takes)
    entry = _registry.get_estimator(name)
    try:
        params = inspect.signature(entry.fn).parameters
    except (TypeError, ValueError):
        return options
    names = set(list(params)[6:]) - {"method", "objective"}
    var_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
    return tuple((k, v) for k, v in options if k in names or (var_kw and not entry.builtin))
