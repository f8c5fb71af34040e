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
import json
import numbers
from dataclasses import dataclass, field

import numpy as np

import problems as _problems

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
]

ESTIMATORS = {
    "importance_sampling": "log p_hat(x) = log (1/K) sum_k w_k  (estimators.importance_sampling; "
    "uniform Monte Carlo is this with q = 'uniform')",
    "elbo": "(1/K) sum_k log w_k  (estimators.elbo)",
    "gradient": "d objective / d q.params  (estimators.gradient; crossed with methods x objectives)",
}
METHODS = ("score", "score_loo", "reparam", "stl", "dreg")
OBJECTIVES = ("elbo", "iwae")
MIN_R = 4  # variance standard errors need four replicates

# family -> (constructor, required parameters, optional parameters with defaults, description)
FAMILIES = {
    "LinearGaussian": (
        _problems.LinearGaussian.random,
        ("D", "d"),
        {"seed": 0},
        "LinearGaussian.random(D, d, seed): z ~ N(0, I_d), x | z ~ N(Wz + b, diag psi); Gaussian posterior",
    ),
    "GaussianMixture": (
        _problems.GaussianMixture.random,
        ("C", "D"),
        {"seed": 0},
        "GaussianMixture.random(C, D, seed): z ~ Cat(w) over C components, x | z ~ N(mu_z, Sigma_z) in D dims",
    ),
}


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


@dataclass(frozen=True)
class ProblemSpec:
    """A problem instance: ``family.random(**params)`` and the observation
    ``x = p.sample(1, seed=x_seed)[0]``."""

    family: str
    params: tuple = ()  # sorted (name, value) pairs
    x_seed: int = 0

    def __init__(self, family, params=None, x_seed=0):
        if family not in FAMILIES:
            raise ValueError(f"family: unknown problem {family!r}; expected one of {sorted(FAMILIES)}")
        _, required, optional, _ = FAMILIES[family]
        if params is not None and not isinstance(params, dict):
            raise ValueError(f"params: expected a mapping of {family}'s parameters, got {type(params).__name__}")
        params = dict(params or {})
        for name in params:
            if name not in required and name not in optional:
                raise ValueError(
                    f"{name}: unknown parameter for {family}; expected {list(required) + list(optional)}"
                )
        for name in required:
            if name not in params:
                raise ValueError(f"{name}: missing; {family} needs {list(required)}")
        full = {**optional, **params}
        for name, value in full.items():
            full[name] = _check_int(name, value, 0 if name == "seed" else 1)
        object.__setattr__(self, "family", family)
        object.__setattr__(self, "params", tuple(sorted(full.items())))
        object.__setattr__(self, "x_seed", _check_int("x_seed", x_seed, 0))

    def identity(self) -> dict:
        return {"family": self.family, "params": dict(self.params), "x_seed": self.x_seed}

    def build(self):
        """(p, x) -- cached per process."""
        return build_problem(self)


@functools.lru_cache(maxsize=64)
def build_problem(spec: ProblemSpec):
    factory = FAMILIES[spec.family][0]
    p = factory(**dict(spec.params))
    x = p.sample(1, seed=spec.x_seed)[0]
    return p, x


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

    def identity(self) -> dict:
        """What the cell's random numbers depend on (not the problem's label)."""
        return {
            "problem": self.spec.identity(),
            "q": self.q,
            "estimator": self.estimator,
            "K": self.K,
            "R": self.R,
            "method": self.method,
            "objective": self.objective,
        }

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
        return f"{self.problem} q={self.q} {self.estimator}{extra} K={self.K} R={self.R}"


@dataclass(frozen=True)
class Sweep:
    """problems x q x estimators x K (x methods x objectives for "gradient").

    ``problems`` maps a label to a ``ProblemSpec`` (or a dict with ``family``,
    ``x_seed`` and the family's parameters).  ``methods``/``objectives`` are
    required to be absent unless "gradient" is among the estimators; with it
    they default to every method and to ("elbo",).
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
    _cells: tuple = field(default=(), repr=False, compare=False)

    def __init__(self, problems, q, estimators, K, R, methods=None, objectives=None, seed=0, name="sweep"):
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
                x_seed = spec.pop("x_seed", 0)
                try:
                    spec = ProblemSpec(family, spec, x_seed)
                except ValueError as exc:
                    raise ValueError(f"problems.{label}.{exc}") from None
            elif not isinstance(spec, ProblemSpec):
                raise ValueError(f"problems.{label}: expected a ProblemSpec or a dict, got {type(spec).__name__}")
            specs[label] = spec
        q = _str_list("q", q)
        for i, name_ in enumerate(q):
            parse_preset(name_, key=f"q[{i}]")
        estimators = _str_list("estimators", estimators, ESTIMATORS, "estimator")
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
                    for method, objective in variants:
                        for K in self.K:
                            yield Cell(label, spec, q, est, K, self.R, method, objective, self.seed)

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
        }
