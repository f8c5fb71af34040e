"""Compile every kernel variant a call will use before timing it.

The estimators run small calls serially and large ones in parallel (see
``_kernels.driver``); both are separate compiled functions.  ``warm_up`` makes
one tiny call and one just large enough to take the parallel path
(2 * CHUNK + 1 samples), so that a benchmark's timed call -- whatever its K and
R -- never includes numba compilation or cache loading, without repeating the
timed call itself.
"""

from __future__ import annotations

from ._kernels.driver import CHUNK
from .gradients import METHODS, gradient
from .weights import weight_stats

__all__ = ["warm_up", "kernel_cache_status"]


def warm_up(p, x, q, method=None, objective="elbo"):
    """Compile (or load from numba's cache) the serial and parallel kernels of
    ``weight_stats`` -- or of ``gradient`` with ``method``/``objective`` -- for
    this problem and proposal.  Costs about 2 * CHUNK samples."""
    large = 2 * CHUNK + 1
    if method is None:
        weight_stats(p, x, q, 1, 1)
        weight_stats(p, x, q, large, 1)
        return
    small = max(1, METHODS[method].min_K) if method in METHODS else 1
    gradient(p, x, q, small, 1, method, objective)
    gradient(p, x, q, large, 1, method, objective)


def kernel_cache_status():
    """``(uncached, total)``: of the numba kernels in ``estimators._kernels``
    compiled with ``cache=True`` (those of the kernel modules imported so
    far: importing ``estimators`` imports them all), how many have no
    compiled signature in numba's on-disk cache yet (its index file is
    missing, or was written for other sources).  On a fresh install
    ``uncached == total``: the first run compiles.  Reads only the index
    files; compiles and imports nothing."""
    import pickle
    import sys

    from numba.core.dispatcher import Dispatcher

    found = {}
    for name, module in list(sys.modules.items()):
        if module is None or not name.startswith("estimators._kernels."):
            continue
        for value in list(vars(module).values()):
            if isinstance(value, Dispatcher) and hasattr(getattr(value, "_cache", None), "_cache_file"):
                found[id(value)] = value
    uncached = 0
    for dispatcher in found.values():
        try:
            cached = bool(dispatcher._cache._cache_file._load_index())
        except (OSError, EOFError, ValueError, pickle.UnpicklingError):  # unreadable: numba rebuilds it
            cached = False
        uncached += not cached
    return uncached, len(found)
