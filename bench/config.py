"""Sweep configurations in TOML.

::

    name = "small"          # labels the run; default results dir results/<name>
    seed = 0                # root seed of every cell's SeedSequence

    [problems.lg]           # a label of your choice
    family = "LinearGaussian"   # see `python -m bench list`
    D = 5                   # the family's parameters (LinearGaussian: D, d, seed; all optional)
    d = 2
    seed = 1                # seed of the random problem instance
    x_seed = 2              # x = p.sample(1, seed=x_seed)[0]

    [problems.lecture]
    family = "MixturePrior" # no parameters: the lecture's instance at its own x = 0.5

    [problems.mine]         # a model of your own, by import string (module on sys.path)
    family = "mypkg.models:MyModel"   # MyModel.random(**params) if it has random, else MyModel(**params)
    scale = 0.5             # its parameters: numbers, strings, booleans or lists of them
    weights = [0.3, 0.7]
    x = [0.4, 1.2]          # the observation itself (instead of x_seed), e.g. for a model without sample

    [[sweep]]               # one cross product; several blocks are concatenated
    problems = ["lg"]       # optional: default every problem
    q = ["posterior", "prior", "shift:1", "scale:2", "meanfield"]
    estimators = ["importance_sampling", "elbo"]
    K = [1, 10, 100]
    R = 200

    [[sweep]]
    estimators = ["gradient"]
    methods = ["score", "score_loo", "reparam", "stl", "dreg"]   # default: all
    objectives = ["elbo", "iwae"]                                # default: ["elbo"]
    q = ["meanfield+shift:1"]
    K = [2, 10, 100]
    R = 100

    [[sweep]]               # your own estimators beside the built-ins
    estimators = ["importance_sampling", "mypkg.estimators:defensive_is"]   # names or import strings
    q = ["prior", "shift:1"]
    K = [10, 100]
    R = 200
    [sweep.options]         # keyword options of the block's user estimators, crossed; they become columns
    alpha = [0.1, 0.3]

``estimators`` are names registered with ``bench.register_estimator`` /
``@bench.estimator`` (the built-ins, an installed package's entry points in
the group ``evidence_bench.estimators``) or import strings; an import string
names a registered function or one with a ``target`` attribute.

``family`` is a built-in family, an import string, or the name of an entry
point of the group ``evidence_bench.problems`` (``bench.families``).  The
reserved keys of a problem table are ``family``, ``x_seed`` and ``x``; every
other key is a parameter of the family.  Without ``x`` or ``x_seed`` the
observation is the family's own when it has one (MixturePrior's lecture
instance, RainforthLinearGaussian), else ``p.sample(1, seed=0)[0]``.

Every mistake is a ValueError naming the key, e.g. ``sweep[0].K[2]: must be
>= 1, got 0``, ``problems.lg.family: unknown problem 'Foo'`` or
``problems.mine.family: cannot import module 'mypkg.models' ...``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from .sweep import ProblemSpec, Sweep

__all__ = ["load_config", "parse_config"]

_TOP = {"name", "seed", "problems", "sweep"}
_BLOCK = {"problems", "q", "estimators", "K", "R", "methods", "objectives", "options"}


def load_config(path):
    """Read a TOML sweep configuration: a list of ``Sweep`` (one per ``[[sweep]]``)."""
    if isinstance(path, bytes) or not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"config: expected a file path (str or os.PathLike), got {path!r}")
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config: no such file {str(path)!r}")
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"config: {path} is not valid TOML ({exc})") from None
    return parse_config(data, default_name=path.stem)


def parse_config(data: dict, default_name="sweep"):
    """The list of ``Sweep`` described by an already-parsed TOML mapping."""
    if not isinstance(data, dict):
        raise ValueError("config: expected a TOML table")
    for key in data:
        if key not in _TOP:
            raise ValueError(f"{key}: unknown key; expected one of {sorted(_TOP)}")
    name = data.get("name", default_name)
    if not isinstance(name, str) or not name or "/" in name:
        raise ValueError(f"name: expected a non-empty string without '/', got {name!r}")
    seed = data.get("seed", 0)

    problems_raw = data.get("problems")
    if not isinstance(problems_raw, dict) or not problems_raw:
        raise ValueError("problems: expected at least one [problems.<label>] table")
    problems = {}
    for label, table in problems_raw.items():
        if not isinstance(table, dict):
            raise ValueError(f"problems.{label}: expected a table")
        table = dict(table)
        if "family" not in table:
            raise ValueError(f"problems.{label}.family: missing")
        family = table.pop("family")
        x_seed = table.pop("x_seed", None)
        x = table.pop("x", None)
        try:
            problems[label] = ProblemSpec(family, table, x_seed, x)
        except ValueError as exc:
            raise ValueError(f"problems.{label}.{exc}") from None

    blocks = data.get("sweep")
    if not isinstance(blocks, list) or not blocks:
        raise ValueError("sweep: expected at least one [[sweep]] block")
    sweeps = []
    for i, block in enumerate(blocks):
        key = f"sweep[{i}]"
        if not isinstance(block, dict):
            raise ValueError(f"{key}: expected a table")
        for k in block:
            if k not in _BLOCK:
                raise ValueError(f"{key}.{k}: unknown key; expected one of {sorted(_BLOCK)}")
        for k in ("q", "estimators", "K", "R"):
            if k not in block:
                raise ValueError(f"{key}.{k}: missing")
        labels = block.get("problems", list(problems))
        if isinstance(labels, str) or not isinstance(labels, list) or not labels:
            raise ValueError(f"{key}.problems: expected a non-empty list of problem labels")
        for j, label in enumerate(labels):
            if label not in problems:
                raise ValueError(f"{key}.problems[{j}]: unknown problem {label!r}; defined: {sorted(problems)}")
        try:
            sweeps.append(
                Sweep(
                    problems={label: problems[label] for label in labels},
                    q=block["q"],
                    estimators=block["estimators"],
                    K=block["K"],
                    R=block["R"],
                    methods=block.get("methods"),
                    objectives=block.get("objectives"),
                    seed=seed,
                    name=name,
                    options=block.get("options"),
                )
            )
        except ValueError as exc:
            msg = str(exc)
            if msg.startswith("seed:") or msg.startswith("name:"):
                raise
            raise ValueError(f"{key}.{msg}") from None
    return sweeps
