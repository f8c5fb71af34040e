r"""``python -m bench peers`` section "sequential": the bootstrap particle filter
in our kernel, in NumPy and in the ``particles`` library, on the same model.

The work: log Z_hat of the bootstrap filter (proposal = the transition, weight
= the emission density) with systematic resampling whenever
ESS < 0.5 N (the ESS test at t >= 1, as ``estimators.smc`` and ``particles``
both do), on ``LinearGaussianStateSpace.random(state_dim=4, obs_dim=4,
T=100, seed=0)`` with x drawn from the model (``p.sample(1, seed=1)``), at
N in (1e3, 1e4, 1e5) particles:

.. math::
    z_0 \sim N(m_0, P_0),\quad z_t = A z_{t-1} + \varepsilon_t,\ \varepsilon_t \sim N(0, Q),\quad
    \log\omega_t = \log N(x_t;\ C z_t,\ R),\qquad
    \log\hat Z = \sum_{\text{stretches } j}\log\frac1N\sum_i \prod_{t\in j}\omega_t^i .

Implementations (each gets the same model arrays):

* ``evidence-bench`` -- ``estimators.smc(p, x, N, R, proposal="bootstrap",
  resampling="systematic", ess_threshold=0.5)``: the public call, validation
  included, compiled and parallel over replicates;
* ``numpy`` -- written here from the equations above (not from our kernel):
  one replicate after another, vectorised over the particles; the emission
  density by whitening with the inverse Cholesky factor of R (one small
  matrix product), systematic resampling by ``np.searchsorted`` on the
  cumulative weights;
* ``particles`` (Chopin's library; optional, skipped with a note when it
  does not import; install it with ``pip install --no-deps particles``: its
  0.4 release pins numpy<2 in its metadata, so a plain install downgrades
  numpy, yet it runs on numpy 2, and its other dependencies -- scipy, numba,
  scikit-learn, joblib -- are ours) -- ``kalman.MVLinearGauss``
  with ``state_space_models.Bootstrap`` and ``core.SMC(resampling=
  "systematic", ESSrmin=0.5, store_history=False, collect="off")``, its
  fastest setting (no history, no summaries), ``pf.logLt`` the estimate.

Before timing, every implementation's estimates are checked against the exact
Kalman log p(x): Z_hat / p(x) is unbiased, so z = (mean(Z_hat/p) - 1) / SE
must be small (|z| < 5: the same work).  The rate is particle-steps per
second, N T R / seconds (the median of ``repeats`` calls after a warm-up);
``ratio`` is it over the fastest peer's at the same N (for the peers, over
the fastest peer).  Each peer is timed with BLAS limited to one thread and
with its default, and keeps the faster (``blas_threads``): on a loaded
machine, idle BLAS threads can turn particles' 4 x 4 triangular solves into
milliseconds each.
"""

from __future__ import annotations

import importlib.util
import math
import os

import numpy as np
from scipy.linalg import solve_triangular

TITLE = "sequential: the bootstrap particle filter on LinearGaussianStateSpace(4, 4, T=100), particle-steps/s"
NS = (10**3, 10**4, 10**5)
STATE_DIM, OBS_DIM, T = 4, 4, 100
ESS_THRESHOLD = 0.5
PARTICLES_PER_CALL = 1 << 15  # R = max(2, PARTICLES_PER_CALL // N): about 3.3e6 particle-steps per call
AGREEMENT_REPLICATES = {10**3: 64, 10**4: 16, 10**5: 4}

__all__ = ["TITLE", "run_section", "lgss_work", "numpy_bootstrap", "Ours", "NumpyPeer", "ParticlesPeer",
           "available_peers", "agreement_z"]


def lgss_work(seed=0):
    """(problem, x as (T, obs_dim), arrays): the model and observation every implementation gets."""
    from problems import LinearGaussianStateSpace

    p = LinearGaussianStateSpace.random(STATE_DIM, OBS_DIM, T, seed=seed)
    x = p.sample(1, seed=seed + 1)[0].reshape(T, OBS_DIM)
    arrays = dict(A=p.A, C=p.C, Q=p.Q, R=p.R, m0=p.m0, P0=p.P0, y=x)
    return p, x, arrays


def numpy_bootstrap(arrays, N, R, seed, ess_threshold=ESS_THRESHOLD):
    """(R,) log Z_hat of the bootstrap filter in NumPy (module docstring), replicate r
    drawing from ``default_rng([seed, r])``."""
    A, C, y = arrays["A"], arrays["C"], arrays["y"]
    LQ = np.linalg.cholesky(arrays["Q"])
    L0 = np.linalg.cholesky(arrays["P0"])
    LR = np.linalg.cholesky(arrays["R"])
    W = solve_triangular(LR, np.eye(LR.shape[0]), lower=True)  # LR^-1: |LR^-1 (y - C z)|^2
    WC_T = (W @ C).T  # (s, o)
    Wy = y @ W.T  # (T, o)
    log_norm = -np.sum(np.log(np.diag(LR))) - 0.5 * LR.shape[0] * math.log(2.0 * math.pi)
    Tn, s = y.shape[0], A.shape[0]
    AT, LQT = A.T, LQ.T
    out = np.empty(R)
    for r in range(R):
        rng = np.random.default_rng([seed, r])
        z = arrays["m0"] + rng.standard_normal((N, s)) @ L0.T
        lw = np.zeros(N)
        log_z = 0.0
        for t in range(Tn):
            if t > 0:
                m = lw.max()
                w = np.exp(lw - m)
                s1 = w.sum()
                if s1 * s1 / np.dot(w, w) < ess_threshold * N:
                    log_z += m + math.log(s1 / N)
                    cum = np.cumsum(w)
                    u = (np.arange(N) + rng.random()) * (cum[-1] / N)
                    idx = np.minimum(np.searchsorted(cum, u, side="right"), N - 1)
                    z = z[idx]
                    lw[:] = 0.0
                z = z @ AT + rng.standard_normal((N, s)) @ LQT
            e = Wy[t] - z @ WC_T
            lw += log_norm - 0.5 * np.einsum("ij,ij->i", e, e)
        m = lw.max()
        out[r] = log_z + m + math.log(np.exp(lw - m).sum() / N)
    return out


class Ours:
    name = "evidence-bench"
    algorithm = "estimators.smc (numba, parallel over replicates)"

    def __init__(self, p, x):
        self.p, self.x = p, x

    def run(self, arrays, N, R, seed):
        import estimators

        return estimators.smc(self.p, self.x, N, R, seed=seed, proposal="bootstrap", resampling="systematic",
                              ess_threshold=ESS_THRESHOLD)


class NumpyPeer:
    name = "numpy"
    algorithm = "NumPy, vectorised over particles (written from the equations)"

    def run(self, arrays, N, R, seed):
        return numpy_bootstrap(arrays, N, R, seed)


class ParticlesPeer:
    name = "particles"
    algorithm = "particles.SMC(Bootstrap(MVLinearGauss)), systematic, ESSrmin=0.5, collect='off', no history"

    def __init__(self):
        import particles
        from particles import kalman
        from particles import state_space_models as ssms

        self._particles, self._kalman, self._ssms = particles, kalman, ssms

    def model(self, arrays):
        return self._kalman.MVLinearGauss(F=arrays["A"], G=arrays["C"], covX=arrays["Q"], covY=arrays["R"],
                                          mu0=arrays["m0"], cov0=arrays["P0"])

    def run(self, arrays, N, R, seed):
        ssm = self.model(arrays)
        data = list(arrays["y"])
        fk = self._ssms.Bootstrap(ssm=ssm, data=data)
        # particles draws from NumPy's global generator (scipy.stats .rvs, np.random): seed it once per call
        np.random.seed(seed % 2**32)
        out = np.empty(R)
        for r in range(R):
            pf = self._particles.SMC(fk=fk, N=N, resampling="systematic", ESSrmin=ESS_THRESHOLD,
                                     store_history=False, collect="off", verbose=False)
            pf.run()
            out[r] = pf.logLt
        return out

    def kalman_log_likelihood(self, arrays):
        """log p(y_{0:T-1}) by particles' own Kalman filter (sum of its logpyt)."""
        kf = self._kalman.Kalman(ssm=self.model(arrays), data=list(arrays["y"]))
        kf.filter()
        return float(np.sum(kf.logpyt))


def available_peers():
    """(peers, notes): NumPy always, particles when it imports."""
    peers, notes = [NumpyPeer()], []
    if importlib.util.find_spec("particles") is None:
        notes.append("particles: not installed, skipped (pip install --no-deps particles: its metadata pins "
                     "numpy<2, which a plain install would downgrade to; it runs on numpy 2)")
    else:
        try:
            peers.append(ParticlesPeer())
        except Exception as exc:  # an installed but broken library is a note, not a crash of the section
            notes.append(f"particles: failed to import ({type(exc).__name__}: {exc}), skipped")
    return peers, notes


def agreement_z(est, truth_log_p):
    """z of mean(Z_hat / p(x)) against 1 (Z_hat is unbiased for p(x))."""
    ratio = np.exp(np.asarray(est, dtype=np.float64) - truth_log_p)
    se = ratio.std(ddof=1) / math.sqrt(ratio.size)
    return float((ratio.mean() - 1.0) / se) if se > 0 else (0.0 if ratio.mean() == 1.0 else math.inf)


def _blas_threads(n):
    """A context limiting BLAS to n threads (None: leave it alone)."""
    import contextlib

    if n is None:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=n, user_api="blas")


def replicates_for(N, per_call=PARTICLES_PER_CALL):
    """R of a timed call: per_call // N, at least 2 (the filters parallelise over replicates)."""
    return max(2, per_call // N)


def run_section(repeats=5, progress=None, Ns=NS, per_call=PARTICLES_PER_CALL):
    """Check, then time, every implementation at every N (R = per_call // N
    replicates per timed call); returns (DataFrame, text)."""
    import pandas as pd

    from .peers import time_call

    p, x, arrays = lgss_work()
    truth = float(p.log_marginal(x))
    peers, notes = available_peers()
    impls = [Ours(p, x)] + peers
    total = 2 * len(Ns) * len(impls)
    done = 0
    rows = []
    for N in Ns:
        R = replicates_for(N, per_call)
        for impl in impls:
            with _blas_threads(1):
                z = agreement_z(impl.run(arrays, N, AGREEMENT_REPLICATES.get(N, 20), 1000 + N), truth)
            done += 1
            if progress is not None:
                progress(done, total)
            # the slow peers at large N: fewer timed calls (each is already seconds long)
            reps = repeats if impl.name == Ours.name or N < 10**4 else min(repeats, 2)
            # a peer is timed with BLAS on one thread and on its default, and keeps the faster:
            # on a busy machine BLAS threads can spin for milliseconds in a 4 x 4 triangular
            # solve (particles' emission density), which is not the library's speed
            best = None
            for blas in ((None,) if impl.name == Ours.name else (1, None)):
                with _blas_threads(blas):
                    sec = time_call(lambda impl=impl: impl.run(arrays, N, R, 1), repeats=reps, min_seconds=0.0)
                if best is None or sec < best[0]:
                    best = (sec, "default" if blas is None else str(blas))
            seconds, blas_threads = best
            done += 1
            if progress is not None:
                progress(done, total)
            rows.append(dict(work="smc_bootstrap_lgss", implementation=impl.name, size=N, N=N, T=T, R=R,
                             seconds=seconds, samples_per_s=N * T * R / seconds, algorithm=impl.algorithm,
                             agreement_z=z, blas_threads=blas_threads))
    df = pd.DataFrame(rows)
    peer_rows = df[df.implementation != Ours.name]
    fastest = peer_rows.groupby("size").samples_per_s.max().rename("fastest_peer")
    df = df.join(fastest, on="size")
    df["ratio"] = df.samples_per_s / df.fastest_peer
    return df, format_section(df, notes, truth)


def format_section(df, notes, truth):
    impls = list(dict.fromkeys(df.implementation))
    lines = [f"exact log p(x) = {truth:.6f} (Kalman filter); particle-steps/s (ratio to the fastest peer)",
             f"{'N':>8} {'R':>5} " + " ".join(f"{name:>22}" for name in impls)]
    for N, block in df.groupby("size"):
        cells = []
        for name in impls:
            r = block[block.implementation == name].iloc[0]
            cells.append(f"{r.samples_per_s:12.3g} ({r.ratio:4.1f}x)")
        lines.append(f"{N:>8} {int(block.R.iloc[0]):>5} " + " ".join(f"{c:>22}" for c in cells))
    agree = df.groupby(["implementation", "size"], sort=False).agreement_z.first()
    lines.append("agreement with the exact answer, z of mean(Z_hat/p) - 1 (|z| < 5 = same work): "
                 + ", ".join(f"{impl} N={N}: {z:+.2f}" for (impl, N), z in agree.items()))
    for impl in impls:
        sub = df[df.implementation == impl]
        blas = "" if impl == Ours.name else f"  [BLAS threads kept: {', '.join(sub.blas_threads)}]"
        lines.append(f"  {impl}: {sub.algorithm.iloc[0]}{blas}")
    for note in notes:
        lines.append("note: " + note)
    lines.append(f"threads: NUMBA_NUM_THREADS={os.environ.get('NUMBA_NUM_THREADS', 'default')}")
    return "\n".join(lines)
