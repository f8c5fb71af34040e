"""Which compiled kernel serves which problem: one public registration.

A built-in problem attaches its numba kernel here, next to nothing else::

    @estimators.register_kernel(LinearGaussian)
    def _linear_gaussian(p, x, q):
        ...                      # -> (kind, args), or None for a q it has no kernel for

``kind`` is a kernel module's argument namedtuple class (``_kernels/*.py``,
registered with the driver by ``register_block``) and ``args`` its fields;
``x`` and ``q`` arrive validated.  A builder returns ``None`` for a proposal
its kernel does not cover, and that (problem, q) pair then runs on the generic
path (``estimators.execution_path`` says which path a call takes).  Lookup
follows the problem's class hierarchy, so a subclass of a built-in problem
keeps its parent's kernel unless it registers its own -- or overrides
``log_joint``, which makes it another model: it then runs on the generic path.

A user's model needs no registration: every problem runs on the generic path,
and one that offers ``compiled_log_joint`` runs compiled (see
``problems.Problem``).
"""

from __future__ import annotations

__all__ = ["register_kernel", "compiled_block", "registered_kernels"]

_BUILDERS = {}


def register_kernel(problem_type, build=None):
    """Attach the compiled-kernel builder ``build(p, x, q) -> (kind, args) | None``
    to ``problem_type`` (and its subclasses).  Usable as a decorator."""
    if not isinstance(problem_type, type):
        raise ValueError(f"problem_type: expected a class, got {problem_type!r}")

    def attach(fn):
        if not callable(fn):
            raise ValueError(f"build: expected a callable, got {fn!r}")
        if _BUILDERS.get(problem_type, fn) is not fn:
            raise ValueError(f"problem_type: a kernel is already registered for {problem_type.__name__}")
        _BUILDERS[problem_type] = fn
        return fn

    return attach if build is None else attach(build)


def compiled_block(p, x, q):
    """(kind, args) of the compiled kernel for q against p at x, or None when
    no registered kernel covers the pair (the generic path serves it)."""
    for cls in type(p).__mro__:
        build = _BUILDERS.get(cls)
        if build is not None:
            # a subclass that redefines the model (its own log_joint) is another
            # model: the parent's kernel would compute the parent's weights
            if getattr(type(p), "log_joint", None) is not getattr(cls, "log_joint", None):
                return None
            return build(p, x, q)
    return None


def registered_kernels():
    """{problem class: builder} of every registered compiled kernel."""
    return dict(_BUILDERS)
