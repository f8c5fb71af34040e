r"""The driver every log-weight estimator runs through.

The R x K samples are cut into units (replicate r, chunk c) of at most
``CHUNK`` samples.  Each unit has its own RNG stream
(``rng.seed_state(key, r, c)``) and a ``BLOCK``-sized scratch buffer, so
memory does not grow with K.  Per-unit accumulators are then combined per
replicate in chunk order, so the answer does not depend on which thread ran
which unit -- nor on whether the units ran in parallel at all.

A block function ``block(state, lw, n, args)`` is a problem/proposal-specific
njit function that draws n latents from q with ``state`` and writes their
log-weights log p(x, z) - log q(z) into lw[:n].  Each kernel module defines the
namedtuple class of its block's arguments (``Args``) at module level and
registers the block under it (``register_block``); ``call_block`` resolves the
block from the arguments' type while numba compiles.  (Passing the function itself makes numba treat it as a
dynamic global and never reuse its cache; a string name needs
``numba.literally``, which re-runs a failing compile on every call -- 6 ms.  A
distinct namedtuple type per kernel costs nothing and caches.)

Launching a ``prange`` loop costs tens of microseconds on an idle machine and
up to a scheduler quantum on a busy one, so calls with fewer than
``PARALLEL_MIN_SAMPLES`` samples in all run the same units serially
(``log_weight_stats_serial``): the same numbers, without the launch.

The parallel loop runs over threads, not units: ``thread_slots`` cuts the
unit sequence into one contiguous run per thread with about the same number
of samples in each, and a thread allocates its scratch once for its run.  A
plain ``prange`` over the units splits their *count* evenly, so K = 1e5 (six
full chunks and one of 1696 samples) gave one thread four full chunks and the
other two and a bit: at best 76 % of two cores.  Which thread runs a unit
never changes its numbers, so the split is free to follow the sizes.
"""

import numpy as np
import numba
from numba import njit, prange
from numba.core import types
from numba.extending import overload

from .reduce import NSTATS, combine, fold_block, init_acc
from .rng import seed_state

CHUNK = 16384  # samples per unit of parallel work (fixed: reproducibility)
BLOCK = 256  # samples per scratch block inside a unit
PARALLEL_MIN_SAMPLES = 1 << 15


_BLOCKS = {}
_FUSED = {}


def register_block(args_type, block, draw_and_fold=None):
    """Make ``block`` callable from the drivers for arguments of ``args_type``,
    a namedtuple class defined at a kernel module's top level (numba's cache
    pickles it by name).  ``draw_and_fold(state, acc, lw, n, args)``, if given,
    draws n samples and folds them into the accumulator in one step (with the
    same sums as ``block`` then ``fold_block``), for kernels that can reduce
    more cheaply than one exp per sample."""
    if _BLOCKS.get(args_type, block) is not block:
        raise ValueError(f"args_type: a different block is already registered for {args_type!r}")
    _BLOCKS[args_type] = block
    if draw_and_fold is not None:
        _FUSED[args_type] = draw_and_fold
    return args_type


def call_block(state, lw, n, args):
    """block(state, lw, n, args) for the block registered for type(args) (numba only)."""
    raise NotImplementedError("call_block is resolved inside numba-compiled code only")


@overload(call_block)
def _call_block(state, lw, n, args):
    if not isinstance(args, types.BaseNamedTuple):
        return None
    block = _BLOCKS.get(args.instance_class)
    if block is None:
        raise ValueError(f"args: no block registered for {args.instance_class!r}")

    def impl(state, lw, n, args):
        block(state, lw, n, args)

    return impl


def draw_and_fold(state, acc, lw, n, args):
    """Draw n samples and fold their log-weights into ``acc`` (numba only)."""
    raise NotImplementedError("draw_and_fold is resolved inside numba-compiled code only")


@overload(draw_and_fold)
def _draw_and_fold(state, acc, lw, n, args):
    if not isinstance(args, types.BaseNamedTuple):
        return None
    fused = _FUSED.get(args.instance_class)
    if fused is not None:

        def impl(state, acc, lw, n, args):
            fused(state, acc, lw, n, args)

        return impl

    def impl(state, acc, lw, n, args):
        call_block(state, lw, n, args)
        fold_block(acc, lw, n)

    return impl


@njit(cache=True)
def thread_slots(K, R, n_threads):
    """Bounds (T + 1,) of T = min(n_threads, units) contiguous runs of the R *
    n_chunks units, balanced by samples: unit u goes to the run
    floor(T * m_u / (K R)), m_u the position of its middle sample in the
    sequence of all R K samples; run t is units [bounds[t], bounds[t + 1])
    (possibly empty).  A run holds at most K R / T samples plus half a unit at
    either end, so at most one chunk more than an equal share."""
    n_chunks = (K + CHUNK - 1) // CHUNK
    n_units = R * n_chunks
    T = max(1, min(n_threads, n_units))
    bounds = np.empty(T + 1, dtype=np.int64)
    bounds[0] = 0
    twice_total = 2 * K * R
    t = 1
    for u in range(n_units):
        r = u // n_chunks
        c = u - r * n_chunks
        start = c * CHUNK
        size = min(K, start + CHUNK) - start
        slot = (2 * (r * K + start) + size) * T // twice_total
        while t <= slot:
            bounds[t] = u
            t += 1
    while t <= T:
        bounds[t] = n_units
        t += 1
    return bounds


@njit(cache=True)
def run_unit(args, key, K, n_chunks, u, parts, state, lw, acc):
    """Draw and fold the samples of unit u into parts[u] (``state``, ``lw``,
    ``acc``: the caller's scratch)."""
    r = u // n_chunks
    c = u - r * n_chunks
    seed_state(state, key, r, c)
    init_acc(acc)
    start = c * CHUNK
    stop = min(K, start + CHUNK)
    i = start
    while i < stop:
        n = min(BLOCK, stop - i)
        draw_and_fold(state, acc, lw, n, args)
        i += n
    for j in range(NSTATS):
        parts[u, j] = acc[j]


@njit(cache=True)
def run_units(args, key, K, n_chunks, first, stop, parts):
    """Units [first, stop) in order, with one set of scratch buffers."""
    state = np.empty(4, dtype=np.uint64)
    lw = np.empty(BLOCK)
    acc = np.empty(NSTATS)
    for u in range(first, stop):
        run_unit(args, key, K, n_chunks, u, parts, state, lw, acc)


@njit(cache=True)
def combine_replicates(parts, R, n_chunks):
    out = np.empty((R, 3))
    for r in range(R):
        combine(parts, r * n_chunks, (r + 1) * n_chunks, out, r)
    return out


@njit(cache=True, parallel=True)
def log_weight_stats_parallel(args, key, K, R, n_threads):
    n_chunks = (K + CHUNK - 1) // CHUNK
    parts = np.empty((R * n_chunks, NSTATS))
    bounds = thread_slots(K, R, n_threads)
    for t in prange(bounds.shape[0] - 1):
        run_units(args, key, K, n_chunks, bounds[t], bounds[t + 1], parts)
    return combine_replicates(parts, R, n_chunks)


@njit(cache=True)
def log_weight_stats_serial(args, key, K, R):
    n_chunks = (K + CHUNK - 1) // CHUNK
    parts = np.empty((R * n_chunks, NSTATS))
    run_units(args, key, K, n_chunks, 0, R * n_chunks, parts)
    return combine_replicates(parts, R, n_chunks)


#: the same threshold for kernels whose sample costs a microsecond or so (the
#: gradients of a sigmoid belief net: 2^15 of their samples are ~30 ms of work on
#: one thread, far above a launch)
PARALLEL_MIN_COSTLY_SAMPLES = 1 << 10


def use_serial(K, R, min_samples=PARALLEL_MIN_SAMPLES):
    """Whether a call is small enough to skip the prange launch: fewer than
    ``min_samples`` samples in all, or a single unit."""
    return K * R < min_samples or (K + CHUNK - 1) // CHUNK * R < 2


def log_weight_stats(kind, args, key, K, R):
    """(R, 3) array: log sum_k w_k, log sum_k w_k^2, sum_k log w_k per replicate,
    for the block whose argument type is ``kind`` (a kernel module's ``Args``)."""
    if use_serial(K, R):
        return log_weight_stats_serial(kind(*args), key, K, R)
    # numba.get_num_threads() inside compiled code would keep it out of the on-disk cache
    return log_weight_stats_parallel(kind(*args), key, K, R, numba.get_num_threads())
