"""Where a sweep's problem families come from.

``family = ...`` in a config table (or a ``ProblemSpec``) names one of:

* a built-in family of ``problems.families.FAMILIES`` ("LinearGaussian",
  "MixturePrior", ...);
* an import string ``"package.module:attribute"`` naming a problem class or a
  factory: built with ``attribute.random(**params)`` when it has a
  ``random``, else ``attribute(**params)``;
* the name of an entry point of the group ``evidence_bench.problems``
  registered by an installed package, whose value is such an import string::

      # the package's pyproject.toml
      [project.entry-points."evidence_bench.problems"]
      Conjugate = "mypkg.models:Conjugate"

An attribute may also be a ``problems.families.Family`` (its defaults,
checks and description are then used as they are).  A factory returns a
problem, or ``problems.families.Instance(problem, x)`` to come with its own
observation.  Built-in names win over entry points of the same name.

Anything that does not resolve is a ValueError starting with ``family:`` and
naming the string.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from importlib import metadata

from problems.families import FAMILIES as BUILTIN_FAMILIES
from problems.families import Family

__all__ = ["ENTRY_POINT_GROUP", "BUILTIN_FAMILIES", "resolve_family", "available_families", "entry_point_families"]

ENTRY_POINT_GROUP = "evidence_bench.problems"


def _first_line(obj):
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _signature_check(name, factory):
    """A check of the given parameters against the factory's signature (when
    it has one): an unknown or a missing parameter is a ValueError naming it."""
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):  # a builtin without a signature: the call itself will tell
        return None
    params = sig.parameters.values()
    var_kw = any(p.kind is p.VAR_KEYWORD for p in params)
    named = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    required = [
        p.name
        for p in params
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.default is p.empty
    ]
    positional_only = [p.name for p in params if p.kind is p.POSITIONAL_ONLY and p.default is p.empty]

    def check(given):
        if positional_only:
            raise ValueError(
                f"family: {name} takes positional-only parameters {positional_only}, which a config table "
                "cannot give; wrap it in a factory with keyword parameters"
            )
        if not var_kw:
            for key in given:
                if key not in named:
                    raise ValueError(f"{key}: unknown parameter for {name}; expected {named}")
        for key in required:
            if key not in given:
                raise ValueError(f"{key}: missing; {name} needs {required}")
        return dict(given)

    return check


def family_from_object(obj, key, source):
    """A ``Family`` from what an import string or entry point names."""
    if isinstance(obj, Family):
        return dataclasses.replace(obj, name=key, source=source)
    random = getattr(obj, "random", None) if inspect.isclass(obj) else None
    if random is not None and callable(random):
        factory, shown = random, f"{getattr(obj, '__qualname__', key)}.random"
    elif callable(obj):
        factory, shown = obj, getattr(obj, "__qualname__", key)
    else:
        raise ValueError(
            f"family: {key!r} names a {type(obj).__name__}, not a problem class, a factory or a "
            "problems.families.Family"
        )
    return Family(
        name=key,
        factory=factory,
        defaults={},
        description=_first_line(obj) or f"{shown}(**params)",
        check=_signature_check(shown, factory),
        fixed_x=None,
        source=source,
        parameters=f"those of {shown}",
    )


def load_import_string(text, key="family"):
    """The object named by ``"package.module:attribute[.attribute...]"``."""
    module_name, sep, attr = text.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"{key}: {text!r} is not an import string 'package.module:attribute'")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or an error raised while importing it
        raise ValueError(f"{key}: cannot import module {module_name!r} of {text!r} ({type(exc).__name__}: {exc})") from None
    obj = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ValueError(f"{key}: {text!r}: {module_name!r} has no attribute {attr!r}") from None
    return obj


def _entry_points():
    """name -> list of entry points of the group (several when packages collide)."""
    found = {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, []).append(ep)
    return found


def _dist_name(ep):
    dist = getattr(ep, "dist", None)
    return getattr(dist, "name", None) or "?"


def _from_entry_point(name, eps):
    values = {ep.value for ep in eps}
    if len(values) > 1:
        owners = ", ".join(f"{_dist_name(ep)} ({ep.value})" for ep in eps)
        raise ValueError(f"family: {name!r} is registered by several entry points of {ENTRY_POINT_GROUP}: {owners}")
    ep = eps[0]
    try:
        obj = ep.load()
    except Exception as exc:
        raise ValueError(
            f"family: entry point {name!r} = {ep.value!r} (group {ENTRY_POINT_GROUP}, package {_dist_name(ep)}) "
            f"failed to load ({type(exc).__name__}: {exc})"
        ) from None
    return family_from_object(obj, name, f"entry point {ep.value} ({_dist_name(ep)})")


def resolve_family(name) -> Family:
    """The ``Family`` that ``name`` denotes (see the module docstring)."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"family: expected a family name or an import string 'package.module:attribute', got {name!r}")
    if name in BUILTIN_FAMILIES:
        return BUILTIN_FAMILIES[name]
    if ":" in name:
        return family_from_object(load_import_string(name), name, "import string")
    eps = _entry_points()
    if name in eps:
        return _from_entry_point(name, eps[name])
    known = sorted(set(BUILTIN_FAMILIES) | set(eps))
    raise ValueError(
        f"family: unknown problem {name!r}; expected one of {known} or an import string 'package.module:attribute'"
    )


def entry_point_families():
    """[(name, Family or the ValueError it gave)] for the group's entry points
    that a built-in name does not shadow."""
    out = []
    for name, eps in sorted(_entry_points().items()):
        if name in BUILTIN_FAMILIES:
            continue
        try:
            out.append((name, _from_entry_point(name, eps)))
        except ValueError as exc:
            out.append((name, exc))
    return out


def available_families():
    """Every named family: the built-ins, then the entry points' (a failing
    entry point is listed with its error instead of a Family)."""
    return list(BUILTIN_FAMILIES.items()) + entry_point_families()
