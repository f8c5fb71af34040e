r"""The parallel driver of every gradient estimator: one or two streaming passes.

Same layout as ``driver.log_weight_stats``: the R x K samples are cut into
units (replicate r, chunk c) of at most ``CHUNK`` samples, ``prange`` runs the
units, each with its own RNG stream ``seed_state(key, r, c)`` and ``BLOCK``-
sized scratch buffers (memory flat in K), and the per-unit accumulators are
combined per replicate **in chunk order**, so results are bit-identical for
any NUMBA_NUM_THREADS.  Because CHUNK, BLOCK, the key and the draw order are
those of ``driver``, a gradient call sees exactly the draws that
``estimators.elbo`` / ``importance_sampling`` see with the same seed.

A gradient block function

    ``block_fn(state, n, args, mode, lw, S)``

draws n latents from q with ``state``, writes their log-weights
:math:`f_k = \log p(x, z_k) - \log q(z_k)` into ``lw[:n]`` and one
P-vector per sample into ``S[:n, :P]``; ``mode`` says which vector:

* ``SCORE``    -- :math:`\nabla_\phi \log q(z_k)` at fixed z (the score);
* ``REPARAM``  -- :math:`\nabla_\phi \log w(z(\varepsilon_k, \phi))`, the total
  pathwise derivative of the log-weight at fixed noise;
* ``STL``      -- :math:`\partial_z \log w(z_k) \cdot \partial z/\partial\phi`,
  the pathwise derivative with the score term of log q dropped;
* ``MODEL``    -- :math:`\nabla_\theta \log p_\theta(x, z_k)`, the gradient in
  the model's parameters.

Block functions are registered under a name (``register_gradient_block``,
next to the block) and the drivers take that name as a compile-time string
literal, resolved by ``call_gradient_block`` while numba types the code --
the pattern of ``driver.register_block``, and for the same reason: a
dispatcher passed as an argument makes numba's on-disk cache miss in every
process.  Adding a latent family is a new block function and one
``register_gradient_block`` line; nothing here changes.  Calls with fewer than
``driver.PARALLEL_MIN_SAMPLES`` samples run the same units serially (same
numbers, no ``prange`` launch).

Pass 1 (``fold_sums``, ``combine_sums``) accumulates, per replicate, with a
running maximum M of the log-weights (rescaling when it grows, like
``reduce.py``), the four scalars and those of the four P-vectors the
estimator asks for (``layout``):

====== ===============================================================
M      max_k f_k
S1     sum_k e^{f_k - M}                (so sum_k w_k = e^M S1)
Srest  S1 without one maximal term     (sum of the others, no cancellation)
F      sum_k f_k
sumS   sum_k S_k
sumFS  sum_k f_k S_k
G1     sum_k e^{f_k - M} S_k
G2     sum_k e^{2 (f_k - M)} S_k
====== ===============================================================

Pass 2 (``add_signals``, ``combine_signals``) regenerates the same samples from the same
(key, replicate, chunk) streams -- the generator is counter-seeded, so this
is exact -- and accumulates :math:`\sum_k c_k S_k` with a per-sample learning
signal :math:`c_k` that needs the pass-1 totals of its replicate
(leave-one-out baselines, VIMCO).
"""

import numba
import numpy as np
from numba import njit, prange
from numba.core import types
from numba.extending import overload

from .driver import BLOCK, CHUNK, thread_slots, use_serial
from .rng import seed_state

_GRADIENT_BLOCKS = {}


def register_gradient_block(args_type, block):
    """Make ``block`` callable from the gradient drivers for arguments of
    ``args_type``, a namedtuple class defined at a kernel module's top level
    (see ``driver.register_block`` for why a type, not a name)."""
    if _GRADIENT_BLOCKS.get(args_type, block) is not block:
        raise ValueError(f"args_type: a different gradient block is already registered for {args_type!r}")
    _GRADIENT_BLOCKS[args_type] = block
    return args_type


def call_gradient_block(state, n, args, mode, lw, S):
    """block(state, n, args, mode, lw, S) of the block registered for type(args) (numba only)."""
    raise NotImplementedError("call_gradient_block is resolved inside numba-compiled code only")


@overload(call_gradient_block)
def _call_gradient_block(state, n, args, mode, lw, S):
    if not isinstance(args, types.BaseNamedTuple):
        return None
    block = _GRADIENT_BLOCKS.get(args.instance_class)
    if block is None:
        raise ValueError(f"args: no gradient block registered for {args.instance_class!r}")

    def impl(state, n, args, mode, lw, S):
        block(state, n, args, mode, lw, S)

    return impl


# what a block function writes per sample
SCORE = 0
REPARAM = 1
STL = 2
MODEL = 3

@njit(cache=True, inline="always")
def log_scale_constant(mode):
    """The constant in the log-scale component of a sample's vector: d/d log sigma
    of -log q's normaliser is -1 in the score, +1 (the entropy term) in the
    total pathwise derivative, and 0 when the score term is dropped (stl)."""
    if mode == SCORE:
        return -1.0
    if mode == REPARAM:
        return 1.0
    return 0.0


# pass-1 layout: four scalars, then those of the P-vectors a call asks for
I_M, I_S1, I_SREST, I_F = 0, 1, 2, 3
NSCALAR = 4
V_S, V_FS, V_G1, V_G2 = 0, 1, 2, 3  # sumS, sumFS, G1, G2
N_VECTORS = 4
# Not a P-vector: the weight sums M, S1, Srest (one exp per sample).  An
# estimator of the ELBO's gradient reads none of them, and skipping their exps
# is ~10 % of a reparameterization gradient on LinearGaussian(20, 20).
V_W = 4

# pass-2 learning signals
LOO_ELBO = 0
VIMCO = 1


def layout(vectors, P):
    """(offsets, width) of a pass-1 accumulator holding the scalars and the
    P-vectors in ``vectors`` (a set of V_* codes): offsets[v] is where vector v
    starts, or -1 if it is not accumulated.  Only what the estimator needs is
    accumulated, so the (R, width) result stays small.

    offsets[V_W] is I_M when the weight sums M, S1 and Srest are accumulated:
    when ``vectors`` holds V_W, or G1 or G2 (which are meaningless without
    S1); otherwise -1, and M stays -inf and S1 = Srest = 0.  F = sum_k f_k is
    always accumulated."""
    offsets = np.full(N_VECTORS + 1, -1, dtype=np.int64)
    o = NSCALAR
    for v in sorted(set(vectors) - {V_W}):
        offsets[v] = o
        o += P
    if V_W in vectors or V_G1 in vectors or V_G2 in vectors:
        offsets[V_W] = I_M
    return offsets, o


@njit(cache=True)
def init_sums(acc):
    acc[:] = 0.0
    acc[I_M] = -np.inf


@njit(cache=True, inline="always")
def _term(S, k, j, c):
    """S[k, j], or c[k] * S[k, j] (resolved while numba types the code)."""
    if c is None:
        return S[k, j]
    return c[k] * S[k, j]


@njit(cache=True)
def add_columns(acc, o, S, n, P, c):
    """acc[o + j] += c[k] S[k, j] for k < n, j < P (c = None: weights 1), in
    the order of k for each j.

    Eight columns at a time, each with its own register accumulator: the
    row-by-row loop kept every running sum in memory (a load and a store per
    term, ~24 ns a sample at P = 40; this is ~7), and each column still adds
    its terms in the order of k, so the sums are the same to the bit."""
    j = 0
    while j + 8 <= P:
        a0, a1, a2, a3 = acc[o + j], acc[o + j + 1], acc[o + j + 2], acc[o + j + 3]
        a4, a5, a6, a7 = acc[o + j + 4], acc[o + j + 5], acc[o + j + 6], acc[o + j + 7]
        for k in range(n):
            a0 += _term(S, k, j, c)
            a1 += _term(S, k, j + 1, c)
            a2 += _term(S, k, j + 2, c)
            a3 += _term(S, k, j + 3, c)
            a4 += _term(S, k, j + 4, c)
            a5 += _term(S, k, j + 5, c)
            a6 += _term(S, k, j + 6, c)
            a7 += _term(S, k, j + 7, c)
        acc[o + j], acc[o + j + 1], acc[o + j + 2], acc[o + j + 3] = a0, a1, a2, a3
        acc[o + j + 4], acc[o + j + 5], acc[o + j + 6], acc[o + j + 7] = a4, a5, a6, a7
        j += 8
    while j < P:
        a = acc[o + j]
        for k in range(n):
            a += _term(S, k, j, c)
        acc[o + j] = a
        j += 1


@njit(cache=True)
def fold_sums(acc, lw, S, n, P, off):
    """Fold one block (lw[:n], S[:n]) into a pass-1 accumulator with offsets ``off``.

    Every sum adds its terms in the order of k (no fastmath here), so a block
    gives the same bits however the loops are arranged; the running sums are
    kept in registers (``add_columns``, the scalar locals).  Without the weight
    sums (off[V_W] < 0) no exp is taken."""
    o_s, o_fs, o_g1, o_g2 = off[V_S], off[V_FS], off[V_G1], off[V_G2]
    total = 0.0
    m = -np.inf
    for k in range(n):
        total += lw[k]
        if lw[k] > m:
            m = lw[k]
    acc[I_F] += total
    if o_s >= 0:
        add_columns(acc, o_s, S, n, P, None)
    if o_fs >= 0:
        add_columns(acc, o_fs, S, n, P, lw)
    if m == -np.inf or off[V_W] < 0:
        return
    pending = False
    if m > acc[I_M]:
        r = np.exp(acc[I_M] - m)  # 0 when nothing was accumulated yet
        acc[I_SREST] = acc[I_S1] * r  # every old term is now a non-maximal one
        acc[I_S1] *= r
        if o_g1 >= 0:
            for j in range(P):
                acc[o_g1 + j] *= r
        if o_g2 >= 0:
            r2 = r * r
            for j in range(P):
                acc[o_g2 + j] *= r2
        acc[I_M] = m
        pending = True  # the new maximum is in this block
    M = acc[I_M]
    s1 = acc[I_S1]
    srest = acc[I_SREST]
    weighted = o_g1 >= 0 or o_g2 >= 0
    e = np.empty(n) if weighted else lw  # e[k] is only written when weighted: no allocation otherwise
    all_finite = True
    for k in range(n):
        f = lw[k]
        if f == -np.inf:
            all_finite = False
            if weighted:
                e[k] = 0.0
            continue
        ek = np.exp(f - M)
        s1 += ek
        if pending and f == M:
            pending = False
        else:
            srest += ek
        if weighted:
            e[k] = ek
    acc[I_S1] = s1
    acc[I_SREST] = srest
    if not weighted:
        return
    if all_finite:
        if o_g1 >= 0:
            add_columns(acc, o_g1, S, n, P, e)
        if o_g2 >= 0:
            for k in range(n):
                e[k] *= e[k]
            add_columns(acc, o_g2, S, n, P, e)
        return
    # a sample of log-weight -inf adds nothing (its S may not be finite): row by row
    for k in range(n):
        if lw[k] == -np.inf:
            continue
        ek = e[k]
        if o_g1 >= 0:
            for j in range(P):
                acc[o_g1 + j] += ek * S[k, j]
        if o_g2 >= 0:
            e2 = ek * ek
            for j in range(P):
                acc[o_g2 + j] += e2 * S[k, j]


@njit(cache=True)
def _merge(acc, part, P, off):
    """acc <- acc (+) part, the later chunk; both pass-1 accumulators."""
    acc[I_F] += part[I_F]
    for v in (V_S, V_FS):
        o = off[v]
        if o >= 0:
            for j in range(o, o + P):
                acc[j] += part[j]
    mb = part[I_M]
    if mb == -np.inf:
        return
    ma = acc[I_M]
    o1, o2 = off[V_G1], off[V_G2]
    if mb > ma:  # rescale what was accumulated so far to the new maximum
        r = np.exp(ma - mb)
        acc[I_SREST] = acc[I_S1] * r + part[I_SREST]
        acc[I_S1] = acc[I_S1] * r + part[I_S1]
        if o1 >= 0:
            for j in range(o1, o1 + P):
                acc[j] = acc[j] * r + part[j]
        if o2 >= 0:
            for j in range(o2, o2 + P):
                acc[j] = acc[j] * (r * r) + part[j]
        acc[I_M] = mb
    else:  # rescale the part
        r = np.exp(mb - ma)
        acc[I_SREST] += part[I_S1] * r
        acc[I_S1] += part[I_S1] * r
        if o1 >= 0:
            for j in range(o1, o1 + P):
                acc[j] += part[j] * r
        if o2 >= 0:
            for j in range(o2, o2 + P):
                acc[j] += part[j] * (r * r)


@njit(cache=True)
def open_unit(key, K, n_chunks, u):
    """(state, r, start, stop) of unit u: its replicate r, its samples
    [start, stop) of that replicate, and its freshly seeded RNG state."""
    r = u // n_chunks
    c = u - r * n_chunks
    state = np.empty(4, dtype=np.uint64)
    seed_state(state, key, r, c)
    start = c * CHUNK
    return state, r, start, min(K, start + CHUNK)


@njit(cache=True)
def combine_sums(parts, R, n_chunks, P, off):
    """(R, width): the units' pass-1 accumulators merged per replicate in chunk order."""
    if n_chunks == 1:
        return parts
    out = np.empty((R, parts.shape[1]))
    for r in range(R):
        init_sums(out[r])
        for c in range(n_chunks):
            _merge(out[r], parts[r * n_chunks + c], P, off)
    return out


@njit(cache=True, inline="always")
def _logaddexp(a, b):
    hi = max(a, b)
    if hi == -np.inf:
        return -np.inf
    return hi + np.log1p(np.exp(min(a, b) - hi))


@njit(cache=True)
def _signal(signal, f, K, tot):
    r"""Learning signal c_k of a sample with log-weight f, given its replicate's
    pass-1 totals tot = (M, S1, Srest, F).

    LOO_ELBO: c = (f - mean_{j != k} f_j) / K = (f - F/K) / (K - 1).
    VIMCO:    c = L - L_{-k} - w~_k, with L = log (1/K) sum_j w_j and
              L_{-k} = log (1/K) (sum_{j != k} w_j + exp(mean_{j != k} f_j)).
    """
    Kf = float(K)
    if signal == LOO_ELBO:
        return (f - tot[I_F] / Kf) / (Kf - 1.0)
    M, S1 = tot[I_M], tot[I_S1]
    if f == -np.inf:
        e = 0.0
        others = S1
    else:
        e = np.exp(f - M)
        others = tot[I_SREST] if f == M else S1 - e
    log_others = np.log(others) + M if others > 0.0 else -np.inf
    baseline = (tot[I_F] - f) / (Kf - 1.0)  # mean_{j != k} log w_j
    # L - L_{-k}; the log K of both cancels
    return (M + np.log(S1)) - _logaddexp(log_others, baseline) - e / S1


@njit(cache=True)
def add_signals(out, lw, S, n, P, signal, K, tot):
    """out[:P] += sum_{k<n} c_k S[k] with c_k = _signal(signal, lw[k], K, tot)."""
    c = np.empty(n)
    for k in range(n):
        c[k] = _signal(signal, lw[k], K, tot)
    add_columns(out, 0, S, n, P, c)


@njit(cache=True)
def combine_signals(parts, R, n_chunks, P):
    """(R, P): the units' pass-2 sums added per replicate in chunk order."""
    if n_chunks == 1:
        return parts
    out = np.zeros((R, P))
    for r in range(R):
        for c in range(n_chunks):
            for j in range(P):
                out[r, j] += parts[r * n_chunks + c, j]
    return out


# --------------------------------------------------------------------------- drivers


@njit(cache=True)
def _sums_units(args, mode, P, off, key, K, n_chunks, first, stop, parts):
    """Pass 1 over units [first, stop) into parts[u], with one set of scratch."""
    lw = np.empty(BLOCK)
    S = np.empty((BLOCK, P))
    for u in range(first, stop):
        state, r, start, end = open_unit(key, K, n_chunks, u)
        acc = parts[u]
        init_sums(acc)
        for i in range(start, end, BLOCK):
            n = min(BLOCK, end - i)
            call_gradient_block(state, n, args, mode, lw, S)
            fold_sums(acc, lw, S, n, P, off)


@njit(cache=True, parallel=True)
def _sums_parallel(args, mode, P, off, width, key, K, R, n_threads):
    n_chunks = (K + CHUNK - 1) // CHUNK
    parts = np.empty((R * n_chunks, width))
    bounds = thread_slots(K, R, n_threads)
    for t in prange(bounds.shape[0] - 1):
        _sums_units(args, mode, P, off, key, K, n_chunks, bounds[t], bounds[t + 1], parts)
    return combine_sums(parts, R, n_chunks, P, off)


@njit(cache=True)
def _sums_serial(args, mode, P, off, width, key, K, R):
    n_chunks = (K + CHUNK - 1) // CHUNK
    parts = np.empty((R * n_chunks, width))
    _sums_units(args, mode, P, off, key, K, n_chunks, 0, R * n_chunks, parts)
    return combine_sums(parts, R, n_chunks, P, off)


@njit(cache=True)
def _signals_units(args, mode, P, key, K, n_chunks, first, stop, signal, totals, parts):
    """Pass 2 over units [first, stop) into parts[u], with one set of scratch."""
    lw = np.empty(BLOCK)
    S = np.empty((BLOCK, P))
    for u in range(first, stop):
        state, r, start, end = open_unit(key, K, n_chunks, u)
        out = parts[u]
        out[:] = 0.0
        for i in range(start, end, BLOCK):
            n = min(BLOCK, end - i)
            call_gradient_block(state, n, args, mode, lw, S)
            add_signals(out, lw, S, n, P, signal, K, totals[r])


@njit(cache=True, parallel=True)
def _signals_parallel(args, mode, P, key, K, R, signal, totals, n_threads):
    n_chunks = (K + CHUNK - 1) // CHUNK
    parts = np.empty((R * n_chunks, P))
    bounds = thread_slots(K, R, n_threads)
    for t in prange(bounds.shape[0] - 1):
        _signals_units(args, mode, P, key, K, n_chunks, bounds[t], bounds[t + 1], signal, totals, parts)
    return combine_signals(parts, R, n_chunks, P)


@njit(cache=True)
def _signals_serial(args, mode, P, key, K, R, signal, totals):
    n_chunks = (K + CHUNK - 1) // CHUNK
    parts = np.empty((R * n_chunks, P))
    _signals_units(args, mode, P, key, K, n_chunks, 0, R * n_chunks, signal, totals, parts)
    return combine_signals(parts, R, n_chunks, P)


def gradient_sums(kind, args, mode, P, vectors, key, K, R):
    """Pass 1: (R, width) accumulators (layout(vectors, P)) for the block ``kind``."""
    off, width = layout(vectors, P)
    if use_serial(K, R):
        return _sums_serial(kind(*args), mode, P, off, width, key, K, R), off
    return _sums_parallel(kind(*args), mode, P, off, width, key, K, R, numba.get_num_threads()), off


def signal_sums(kind, args, mode, P, key, K, R, signal, totals):
    """Pass 2: (R, P) sums of c_k S_k over the same draws as pass 1."""
    totals = np.ascontiguousarray(totals)
    if use_serial(K, R):
        return _signals_serial(kind(*args), mode, P, key, K, R, signal, totals)
    return _signals_parallel(kind(*args), mode, P, key, K, R, signal, totals, numba.get_num_threads())
