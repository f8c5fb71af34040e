r"""Sequential Monte Carlo (the particle filter) estimate of the evidence of a
state-space model.

With N particles, proposals :math:`q_t` and incremental weights
:math:`\omega_t`, adaptive resampling, and the stretches
:math:`[t_{j}, t_{j+1})` between the resampling times,

.. math::
    \hat Z = \prod_j \frac1N \sum_{i=1}^N \prod_{t=t_j}^{t_{j+1}-1} \omega_t^i,
    \qquad E[\hat Z] = p(x_{0:T-1})

for every N, proposal and resampling scheme (each scheme gives particle i
:math:`N W_i` offspring in expectation); :math:`\log \hat Z` is biased low, by
about :math:`-\mathrm{Var}(\log\hat Z)/2` for large N.  ``proposal``:

* ``"bootstrap"`` -- :math:`q_t = p(z_t \mid z_{t-1})`,
  :math:`\omega_t = p(x_t \mid z_t)`;
* ``"optimal"`` -- the locally optimal :math:`q_t = p(z_t \mid z_{t-1}, x_t)`,
  :math:`\omega_t = p(x_t \mid z_{t-1})`; it needs that proposal in closed form
  (``LinearGaussianStateSpace``, or a model with ``optimal_initial_sample``
  and ``optimal_sample``).

Resampling happens at t >= 1 when :math:`\mathrm{ESS} = (\sum_i w_i)^2 /
\sum_i w_i^2 < \text{ess\_threshold} \cdot N`; ``ess_threshold = 1`` resamples
at every step and ``0`` never (sequential importance sampling).  With N = 1
and ``ess_threshold = 0`` the estimator is importance sampling with one draw
of the prior path (``importance_sampling(p, x, p.prior(), 1, R)``): with the
same seed the compiled filter even draws the same normals, so the two agree
to rounding.

Built-in models run compiled (``estimators._kernels.sequential``), parallel
over replicates, replicate r on the stream ``seed_state(key, r, 0)``:
bit-identical for any NUMBA_NUM_THREADS.  Any other model following the
state-space protocol (``problems.state_space``) runs on the generic path:
NumPy, vectorised over the particles, replicate r drawing from
``Generator(PCG64(SeedSequence(key, spawn_key=(r, 0))))``.  Both hold
O(N * state_dim) memory per replicate, whatever T.
"""

from __future__ import annotations

import numbers

import numpy as np

from problems.state_space import STATE_SPACE_MEMBERS, HiddenMarkov, LinearGaussianStateSpace

from ._kernels.sequential import resample as rs
from ._kernels.sequential import smc as kernel
from ._validation import as_float_array, check_choice, check_count
from .weights import seed_key

__all__ = ["smc", "check_smc", "PROPOSALS", "RESAMPLING"]

PROPOSALS = ("bootstrap", "optimal")
RESAMPLING = {"multinomial": rs.MULTINOMIAL, "stratified": rs.STRATIFIED, "systematic": rs.SYSTEMATIC,
              "residual": rs.RESIDUAL}
_LOG_2PI = float(np.log(2.0 * np.pi))
_MAX_REPLICATE_BYTES = 2**31  # working memory of one replicate
SERIAL_MAX_WORK = 1 << 15  # particle-steps in all below which the replicates run without a prange launch


def _check_state_space(p):
    missing = [m for m in STATE_SPACE_MEMBERS if not hasattr(p, m)]
    if missing:
        raise ValueError(
            f"p.{missing[0]}: missing; smc needs a state-space model ({', '.join(STATE_SPACE_MEMBERS)}; "
            f"see problems.state_space), got {type(p).__name__}"
        )
    for member in ("T", "state_dim", "emission_dim"):
        value = getattr(p, member)
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"p.{member}: must be a positive integer, got {value!r}")
    obs_dim = getattr(p, "obs_dim", p.T * p.emission_dim)
    if obs_dim != p.T * p.emission_dim:
        raise ValueError(f"p.obs_dim: must equal T * emission_dim = {p.T * p.emission_dim}, got {obs_dim}")
    return p


def _series(p, x):
    """x as (T, emission_dim): flat (T * emission_dim,) or (T, emission_dim)."""
    T, o = int(p.T), int(p.emission_dim)
    own = getattr(p, "_check_x", None)
    if own is not None:
        return own(x).reshape(T, o)
    arr = np.asarray(x)
    if arr.shape == (T, o):
        return as_float_array("x", arr)
    return as_float_array("x", x, shape=(T * o,)).reshape(T, o)


def _check_threshold(value):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f"ess_threshold: must be a number in [0, 1], got {value!r}")
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"ess_threshold: must lie in [0, 1], got {value!r}")
    return value


def _has_optimal(p):
    return hasattr(p, "optimal_sample") and hasattr(p, "optimal_initial_sample")


def _log_norm(L):
    return float(-np.sum(np.log(np.diag(L))) - 0.5 * L.shape[0] * _LOG_2PI)


def _c(a):
    return np.ascontiguousarray(a, dtype=np.float64)


def _cumulative(P):
    """Row-wise cumulative probabilities, exactly 1.0 from each row's last positive entry on."""
    P = np.atleast_2d(P)
    cum = np.cumsum(P, axis=1)
    cum /= cum[:, -1:]
    for row, probs in zip(cum, P):
        row[int(np.flatnonzero(probs > 0)[-1]) :] = 1.0
    return _c(cum)


def compiled_args(p, Y, proposal):
    """(args namedtuple, state_dim) of the compiled filter for a built-in model, or None."""
    if type(p) is LinearGaussianStateSpace:
        if proposal == "bootstrap":
            LRi = p._LR_inv  # whitened emissions: |LR^-1 (y - C z)|^2 = |Yw - Cw z|^2
            args = kernel.LGSSBootstrap(_c(p.A), _c(LRi @ p.C), _c(p.LQ), _c(p.m0), _c(p.L0), _c(Y @ LRi.T),
                                        _log_norm(p.LR))
        else:
            LSi = p._opt_LS_inv
            v = Y[0] - p.C @ p.m0
            mean0 = _c(p.m0 + p._K[0] @ v)
            e = np.linalg.solve(p._LS[0], v)
            log_w0 = float(-0.5 * e @ e + _log_norm(p._LS[0]))
            args = kernel.LGSSOptimal(_c(p.opt_G), _c(Y @ p.opt_gain.T), _c(LSi @ p.opt_H), _c(p.opt_chol), mean0,
                                      _c(p.opt_chol0), log_w0, _c(Y @ LSi.T), _log_norm(p.opt_LS))
        return args, p.state_dim
    if type(p) is HiddenMarkov:
        g = p._log_emissions(Y[None])[0]  # (T, S)
        return kernel.HMMBootstrap(_cumulative(p.initial)[0], _cumulative(p.transition), _c(g)), 1
    return None


def smc(p, x, N, R, seed=0, proposal="bootstrap", resampling="systematic", ess_threshold=0.5):
    r"""(R,) replicate estimates of log p(x_{0:T-1}) by a particle filter with N
    particles (see the module docstring for the estimator and its options).

    ``p`` follows the state-space protocol (``problems.state_space``):
    ``problems.LinearGaussianStateSpace`` and ``problems.HiddenMarkov`` run
    compiled, any other model on the generic NumPy path.
    """
    return _run(p, x, N, R, seed, proposal, resampling, ess_threshold)[:, 0].copy()


def check_smc(p, x, N, R=1, seed=0, proposal="bootstrap", resampling="systematic", ess_threshold=0.5):
    """Raise the ValueError ``smc(p, x, N, R, seed, proposal, resampling,
    ess_threshold)`` would raise for these arguments (not a state-space model,
    "optimal" without its closed form, N over the memory limit, ...), without
    running the filter; None when it accepts them.  The harness skips such a
    cell with this message."""
    _prepare(p, x, N, R, seed, proposal, resampling, ess_threshold)


def _prepare(p, x, N, R, seed, proposal, resampling, ess_threshold):
    """The checked arguments of a call: (p, Y, N, R, key, proposal, method, threshold)."""
    p = _check_state_space(p)
    Y = _series(p, x)
    N, R = check_count("N", N), check_count("R", R)
    key = seed_key(seed)
    proposal = check_choice("proposal", proposal, PROPOSALS)
    method = RESAMPLING[check_choice("resampling", resampling, RESAMPLING)]
    threshold = _check_threshold(ess_threshold)
    if proposal == "optimal" and not _has_optimal(p):
        raise ValueError(
            f'proposal: "optimal" needs the locally optimal proposal p(z_t | z_(t-1), x_t) and its weight '
            f"p(x_t | z_(t-1)) in closed form (optimal_initial_sample and optimal_sample), which "
            f'{type(p).__name__} does not offer; use proposal="bootstrap"'
        )
    s = int(p.state_dim)
    need = N * (2 * s + 7) * 8  # z and its copy (N s each); lw, w, inc, u, cum, anc; the exp scratch
    if need > _MAX_REPLICATE_BYTES:
        raise ValueError(f"N: {N} particles of dimension {s} need {need / 2**30:.1f} GiB per replicate (limit 2 GiB)")
    return p, Y, N, R, key, proposal, method, threshold


def _run(p, x, N, R, seed=0, proposal="bootstrap", resampling="systematic", ess_threshold=0.5):
    """(R, 2): log Z_hat and the number of resampling steps of each replicate."""
    p, Y, N, R, key, proposal, method, threshold = _prepare(p, x, N, R, seed, proposal, resampling, ess_threshold)
    built = compiled_args(p, Y, proposal)
    if built is None:
        return _generic(p, Y, N, R, key, proposal, method, threshold)
    args, s = built
    run = kernel.smc_serial if (R < 2 or N * p.T * R < SERIAL_MAX_WORK) else kernel.smc_parallel
    return run(args, key, R, N, int(p.T), s, method, threshold)


# --------------------------------------------------------------------------- generic path


def _call(name, fn, *args):
    try:
        return fn(*args)
    except ValueError as exc:
        if str(exc).startswith("p."):
            raise
        raise ValueError(f"{name}: raised ValueError: {exc}") from exc
    except Exception as exc:
        raise ValueError(f"{name}: raised {type(exc).__name__}: {exc}") from exc


def _particles(name, z, N):
    z = np.asarray(z)
    if z.ndim == 0 or z.shape[0] != N:
        raise ValueError(f"{name}: returned shape {z.shape}, expected {N} rows (one per particle)")
    return z


def _log_weights(name, w, N):
    try:
        w = np.asarray(w, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: returned something that is not an array of floats ({exc})") from None
    if w.shape != (N,):
        raise ValueError(f"{name}: returned shape {w.shape}, expected ({N},)")
    if np.isnan(w).any() or np.isposinf(w).any():
        raise ValueError(f"{name}: returned NaN or +inf")
    return w


def _generic(p, Y, N, R, key, proposal, method, threshold):
    """The particle filter in NumPy, on the protocol members (replicates in order)."""
    T = int(p.T)
    out = np.empty((R, 2))
    anc = np.empty(N, dtype=np.int64)
    cum = np.empty(N)
    for r in range(R):
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(int(key), spawn_key=(r, 0))))
        lw = np.zeros(N)
        w = np.empty(N)
        log_z, n_res, z = 0.0, 0, None
        m = s1 = s2 = 0.0
        for t in range(T):
            if t > 0 and rs.resample_now(threshold, s1, s2, N):
                log_z += m + np.log(s1) - np.log(N)
                rs.ancestors(method, w, rng.random(N + 1), anc, cum)
                z = z[anc]
                lw[:] = 0.0
                n_res += 1
            if proposal == "optimal":
                if t == 0:
                    z, inc = _call("p.optimal_initial_sample", p.optimal_initial_sample, N, Y[0], rng)
                else:
                    z, inc = _call("p.optimal_sample", p.optimal_sample, t, z, Y[t], rng)
                z = _particles("p.optimal_sample", z, N)
                inc = _log_weights("p.optimal_sample", inc, N)
            else:
                if t == 0:
                    z = _particles("p.initial_sample", _call("p.initial_sample", p.initial_sample, N, rng), N)
                else:
                    z = _particles("p.transition_sample", _call("p.transition_sample", p.transition_sample, t, z, rng), N)
                inc = _log_weights("p.emission_log_prob", _call("p.emission_log_prob", p.emission_log_prob, t, z, Y[t]), N)
            lw += inc
            m, s1, s2 = rs.relative_weights(lw, w)
            if m == -np.inf:
                log_z = -np.inf
                break
        else:
            log_z += m + np.log(s1) - np.log(N)
        out[r] = log_z, n_res
    return out
