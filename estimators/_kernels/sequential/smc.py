r"""The compiled particle filter (sequential importance resampling).

One replicate r runs on its own stream ``seed_state(key, r, 0)`` and holds
O(N * state_dim) memory whatever T: the particles z (N, s) and a copy for
resampling, the log-weights and their exponentials, the increments, the
ancestors, the cumulative weights, N + 1 uniforms and the exponentials' int64
scratch (``relative_weights``): about (2 s + 7) * 8 * N bytes.  Replicates run
in a ``prange`` loop; nothing a replicate computes depends on which thread
runs it, so the output is bit-identical for any NUMBA_NUM_THREADS.

The filter (``run_replicate``), with log-weights ``lw`` accumulated since the
last resampling:

.. math::
    \text{for } t = 0..T-1:\ \text{if } t > 0 \text{ and resample\_now}(lw):\
        \log\hat Z \mathrel{+}= \log\tfrac1N\textstyle\sum_i e^{lw_i},\
        z \leftarrow z[\text{anc}],\ lw \leftarrow 0; \quad
    z_t^i \sim q_t(\cdot \mid z_{t-1}^i),\ lw_i \mathrel{+}= \log \omega_t^i,

and at the end :math:`\log\hat Z \mathrel{+}= \log\frac1N\sum_i e^{lw_i}`: the
log of the product, over the stretches between resamplings, of the mean of
the particles' accumulated weights.  The incremental weight is
:math:`\omega_t = p(x_t \mid z_t)` for the bootstrap proposal
:math:`q_t = p(z_t \mid z_{t-1})` and :math:`\omega_t = p(x_t \mid z_{t-1})`
for the locally optimal :math:`q_t = p(z_t \mid z_{t-1}, x_t)`.

The model step ``propagate(state, args, t, z, inc)`` moves every particle to
time t in place and writes its log incremental weight into ``inc``; it is
resolved at compile time from the namedtuple type of ``args`` (one type per
model and proposal; see ``estimators._kernels.driver`` for why a type and not
a function or a string).  Normals come from ``fill_normal``, s per particle,
particle after particle (generated ``BLOCK`` particles at a time), uniforms
from ``fill_uniform``.
"""

from collections import namedtuple

import numpy as np
from numba import njit, prange
from numba.core import types
from numba.extending import overload

from ..rng import fill_normal, fill_uniform, seed_state
from .resample import ancestors, relative_weights, resample_now

# The safe subset of fastmath (DESIGN.md): contraction and reassociation of the
# small dot products; nothing assumed about inf/NaN.
SAFE_FASTMATH = {"reassoc", "contract", "arcp", "nsz"}

#: z_0 = m0 + L0 eps, z_t = A z_{t-1} + LQ eps; log w = log_norm - |Yw[t] - Cw z_t|^2 / 2
#: (emissions whitened by the emission covariance's Cholesky factor LR: Cw = LR^-1 C, Yw[t] = LR^-1 y_t)
LGSSBootstrap = namedtuple("LGSSBootstrap", ["A", "Cw", "LQ", "m0", "L0", "Yw", "log_norm"])
#: z_0 = mean0 + L0 eps (log w = log_w0); z_t = G z_{t-1} + KY[t] + L eps,
#: log w = log_norm - |Yw[t] - Hw z_{t-1}|^2 / 2 (whitened by the Cholesky factor of S = C Q C^T + R)
LGSSOptimal = namedtuple("LGSSOptimal", ["G", "KY", "Hw", "L", "mean0", "L0", "log_w0", "Yw", "log_norm"])
#: z_0 ~ cum0, z_t ~ cumA[z_{t-1}] (cumulative probabilities, exactly 1 from the last positive one); log w = logg[t, z_t]
HMMBootstrap = namedtuple("HMMBootstrap", ["cum0", "cumA", "logg"])

BLOCK = 256  # particles whose base draws are generated in one call (a stream: the numbers do not depend on it)


@njit(cache=True, fastmath=SAFE_FASTMATH)
def _lgss_bootstrap(state, args, t, z, inc, buf):
    """z_0 = m0 + L0 eps, z_t = A z_(t-1) + LQ eps; inc = log_norm - |Yw[t] - Cw z_t|^2 / 2.

    Particles are processed in blocks of ``BLOCK`` (one ``fill_normal`` call each):
    a block is transposed to coordinate-major scratch (s, BLOCK), so that each
    multiply-add runs over particles -- contiguous loops the compiler turns into
    SIMD -- and transposed back.  Each particle's sums keep their order
    (A z over b, then L eps over b <= a; the residual over b), so the block
    layout changes no number."""
    N, s = z.shape
    Cw, yw, log_norm = args.Cw, args.Yw[t], args.log_norm
    o = Cw.shape[0]
    first = t == 0
    M, L, c = args.A, (args.L0 if first else args.LQ), args.m0
    nb = buf.shape[0] // s
    zp = np.empty((s, nb))  # previous states, coordinate-major
    ep = np.empty((s, nb))  # the block's normals, coordinate-major
    zn = np.empty((s, nb))  # new states
    q = np.empty(nb)
    r = np.empty(nb)
    for start in range(0, N, nb):
        n = min(nb, N - start)
        fill_normal(state, buf, n * s)
        for i in range(n):
            for b in range(s):
                ep[b, i] = buf[i * s + b]
                zp[b, i] = z[start + i, b]
        for a in range(s):
            out = zn[a]
            if first:
                for i in range(n):
                    out[i] = c[a]
            else:
                for i in range(n):
                    out[i] = 0.0
                for b in range(s):
                    m = M[a, b]
                    src = zp[b]
                    for i in range(n):
                        out[i] += m * src[i]
            for b in range(a + 1):
                lab = L[a, b]
                src = ep[b]
                for i in range(n):
                    out[i] += lab * src[i]
        for i in range(n):
            q[i] = 0.0
        for a in range(o):
            ya = yw[a]
            for i in range(n):
                r[i] = ya
            for b in range(s):
                cab = Cw[a, b]
                src = zn[b]
                for i in range(n):
                    r[i] -= cab * src[i]
            for i in range(n):
                q[i] += r[i] * r[i]
        for i in range(n):
            for a in range(s):
                z[start + i, a] = zn[a, i]
            inc[start + i] = log_norm - 0.5 * q[i]


@njit(cache=True, fastmath=SAFE_FASTMATH)
def _lgss_optimal(state, args, t, z, inc, buf):
    N, s = z.shape
    o = args.Hw.shape[0]
    zn = np.empty(s)
    nb = buf.shape[0] // s
    for i in range(N):
        e = (i % nb) * s
        if e == 0:
            fill_normal(state, buf, min(nb, N - i) * s)
        if t == 0:
            for a in range(s):
                acc = args.mean0[a]
                for b in range(a + 1):
                    acc += args.L0[a, b] * buf[e + b]
                z[i, a] = acc
            inc[i] = args.log_w0
            continue
        q = 0.0
        for a in range(o):
            r = args.Yw[t, a]
            for b in range(s):
                r -= args.Hw[a, b] * z[i, b]
            q += r * r
        for a in range(s):
            acc = args.KY[t, a]
            for b in range(s):
                acc += args.G[a, b] * z[i, b]
            for b in range(a + 1):
                acc += args.L[a, b] * buf[e + b]
            zn[a] = acc
        for a in range(s):
            z[i, a] = zn[a]
        inc[i] = args.log_norm - 0.5 * q


@njit(cache=True)
def _hmm_bootstrap(state, args, t, z, inc, buf):
    N = z.shape[0]
    S = args.cum0.shape[0]
    nb = buf.shape[0]
    for i in range(N):
        j = i % nb
        if j == 0:
            fill_uniform(state, buf, min(nb, N - i))
        u = buf[j]
        k = 0
        if t == 0:
            while k < S - 1 and args.cum0[k] <= u:
                k += 1
        else:
            row = int(z[i, 0])
            while k < S - 1 and args.cumA[row, k] <= u:
                k += 1
        z[i, 0] = k
        inc[i] = args.logg[t, k]


def propagate(state, args, t, z, inc, buf):
    """The model step for the namedtuple type of ``args`` (numba only)."""
    raise NotImplementedError("propagate is resolved inside numba-compiled code only")


@overload(propagate)
def _propagate(state, args, t, z, inc, buf):
    if not isinstance(args, types.BaseNamedTuple):
        return None
    cls = args.instance_class
    if cls is LGSSBootstrap:
        step = _lgss_bootstrap
    elif cls is LGSSOptimal:
        step = _lgss_optimal
    elif cls is HMMBootstrap:
        step = _hmm_bootstrap
    else:
        raise ValueError(f"args: no particle-filter step for {cls!r}")

    def impl(state, args, t, z, inc, buf):
        step(state, args, t, z, inc, buf)

    return impl


@njit(cache=True)
def run_replicate(args, key, r, N, T, s, method, threshold):
    """(log Z_hat, number of resamplings) of replicate r.

    Per step: propagate (N * s normals, or N uniforms for a discrete state,
    drawn BLOCK particles at a time), lw += log-increments, then one pass of exponentials
    (``relative_weights``) that the ESS test, the evidence and the next
    resampling share.  A resampling draws N + 1 uniforms."""
    state = np.empty(4, dtype=np.uint64)
    seed_state(state, key, r, 0)
    z = np.zeros((N, s))
    z2 = np.empty((N, s))
    lw = np.zeros(N)
    w = np.empty(N)
    inc = np.empty(N)
    buf = np.empty(BLOCK * s)
    anc = np.empty(N, dtype=np.int64)
    u = np.empty(N + 1)
    cum = np.empty(N)
    log_z = 0.0
    n_resampled = 0
    m, s1, s2 = 0.0, 0.0, 0.0
    log_n = np.log(N)
    for t in range(T):
        if t > 0 and resample_now(threshold, s1, s2, N):
            log_z += m + np.log(s1) - log_n
            fill_uniform(state, u, N + 1)
            ancestors(method, w, u, anc, cum)
            for i in range(N):
                a = anc[i]
                for j in range(s):
                    z2[i, j] = z[a, j]
            z, z2 = z2, z
            for i in range(N):
                lw[i] = 0.0
            n_resampled += 1
        propagate(state, args, t, z, inc, buf)
        for i in range(N):
            lw[i] += inc[i]
        m, s1, s2 = relative_weights(lw, w)
        if m == -np.inf:
            return -np.inf, n_resampled
    return log_z + m + np.log(s1) - log_n, n_resampled


@njit(cache=True, parallel=True)
def smc_parallel(args, key, R, N, T, s, method, threshold):
    out = np.empty((R, 2))
    for r in prange(R):
        log_z, n_res = run_replicate(args, key, r, N, T, s, method, threshold)
        out[r, 0] = log_z
        out[r, 1] = n_res
    return out


@njit(cache=True)
def smc_serial(args, key, R, N, T, s, method, threshold):
    out = np.empty((R, 2))
    for r in range(R):
        log_z, n_res = run_replicate(args, key, r, N, T, s, method, threshold)
        out[r, 0] = log_z
        out[r, 1] = n_res
    return out
