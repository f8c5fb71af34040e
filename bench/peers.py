r"""The same work in this project's kernels and in NumPy, JAX and PyTorch.

``python -m bench peers`` runs, in one process:

* the work: ``importance_sampling`` (log p_hat from K draws, R replicates) and
  the "reparam" ELBO gradient w.r.t. a diagonal Gaussian q's (loc, log scale);
* the problems: LinearGaussian with D = d = 20 (both works) and
  GaussianMixture with C = 20, D = 20 (importance sampling only: its latent is
  discrete, so there is no pathwise gradient);
* the implementations: ``evidence-bench`` (the numba kernels, called through
  the public API, validation included) and clean, idiomatic vectorised
  versions in NumPy, JAX (jit, float64, CPU) and PyTorch (CPU, float64),
  written from the model's equations -- not from our kernels.

Every implementation gets the same model arrays.  For the mixture, the table
log p(x, k) is computed once outside the peers' timed calls (it is O(C D^3)
and negligible); ours recomputes it inside every call, which only handicaps us.
Each call draws about 2^17 samples in all (R = max(1, 2^17 // K)), so the rate
reflects computation, not call overhead.  Before timing, each implementation's
estimates are checked against the exact answer (``check_agreement``): the same
truth within 5 standard errors, so the comparison is of the same work.

``machine_limits`` measures what the hardware allows for this work: normal
draws per second (the ziggurat, all threads), fused multiply-adds per second
(a 20 x 20 matrix-vector kernel, all threads) and exponentials per second; the
kernel's fraction of that limit is the time the limits predict for the
kernel's draws and arithmetic divided by the time it took.
"""

from __future__ import annotations

import importlib.util
import math
import os
import statistics
import time
from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

LOG_2PI = math.log(2.0 * math.pi)
SAMPLES_PER_CALL = 1 << 17
DEFAULT_KS = (10**2, 10**3, 10**4, 10**5, 10**6)
PEER_NAMES = ("numpy", "jax", "torch")

#: Further comparisons that ``python -m bench peers`` prints after the main
#: table, by name -> module.  Each module defines ``TITLE`` (one line) and
#: ``run_section(repeats=5, progress=None) -> (DataFrame, text)``: it picks its
#: own sizes, checks every implementation against the exact answer before
#: timing it, and returns its rows (columns work, implementation, size,
#: samples_per_s, ratio, algorithm, agreement_z at least) and the text to print.
#: ``--sections NAME ...`` runs only those (``main`` is the table above).
SECTIONS = {}


# --------------------------------------------------------------------------- problems


@dataclass(frozen=True)
class Work:
    """One problem instance and its observation, with the arrays peers need."""

    name: str
    problem: object
    x: np.ndarray
    q: object
    truth_log_p: float
    arrays: dict


def linear_gaussian_work(D=20, d=20, seed=0):
    """LinearGaussian(D, d) with q the posterior's marginals widened by 1.5
    (diagonal, with a finite weight variance -- checked)."""
    from estimators import Gaussian
    from problems import LinearGaussian

    p = LinearGaussian.random(D, d, seed=seed)
    x = p.sample(1, seed=seed + 1)[0]
    post = p.posterior(x)
    q = Gaussian(post.loc, 1.5 * np.sqrt(np.diag(post.cov)))
    if not np.isfinite(p.relative_weight_variance(x, q)):
        raise ValueError("seed: this instance's q has an infinite weight variance; pick another seed")
    arrays = dict(x=x, W=p.W, b=p.b, psi=p.psi, loc=q.loc, scale=q.scale)
    return Work(f"LinearGaussian(D={D}, d={d})", p, x, q, p.log_marginal(x), arrays)


def gaussian_mixture_work(C=20, D=20, seed=0):
    """GaussianMixture(C, D) with q = the posterior mixed half-half with the prior."""
    from estimators import Categorical
    from problems import GaussianMixture

    p = GaussianMixture.random(C, D, seed=seed)
    x = p.sample(1, seed=seed + 1)[0]
    q = Categorical(0.5 * p.posterior(x).probs + 0.5 * p.weights)
    arrays = dict(table=p.log_joint_table(x), probs=q.probs)
    return Work(f"GaussianMixture(C={C}, D={D})", p, x, q, p.log_marginal(x), arrays)


# --------------------------------------------------------------------------- implementations
# Each implementation: is_lg(a, K, R, seed) -> (R,), grad_lg(a, K, R, seed) -> (R, 2d),
# is_gm(a, K, R, seed) -> (R,), with `a` the Work.arrays dict.


class Ours:
    name = "evidence-bench"

    def __init__(self, lg, gm):
        self.lg, self.gm = lg, gm

    def is_lg(self, a, K, R, seed):
        import estimators

        return estimators.importance_sampling(self.lg.problem, self.lg.x, self.lg.q, K, R, seed=seed)

    def grad_lg(self, a, K, R, seed):
        import estimators

        return estimators.gradient(self.lg.problem, self.lg.x, self.lg.q, K, R, "reparam", seed=seed)

    def is_gm(self, a, K, R, seed):
        import estimators

        return estimators.importance_sampling(self.gm.problem, self.gm.x, self.gm.q, K, R, seed=seed)


class NumpyPeer:
    """Idiomatic NumPy: one (R, K, d) draw, matrix products, scipy's logsumexp."""

    name = "numpy"
    MAX_ELEMENTS = 1 << 25  # beyond this many doubles per draw, loop over replicates

    def _rows(self, R, K, d):
        per = max(1, self.MAX_ELEMENTS // max(1, K * d))
        return [(s, min(R, s + per)) for s in range(0, R, per)]

    @staticmethod
    def _log_w(a, eps):
        z = a["loc"] + a["scale"] * eps
        d = z.shape[-1]
        log_q = -0.5 * np.sum(eps**2, -1) - np.sum(np.log(a["scale"])) - 0.5 * d * LOG_2PI
        resid = a["x"] - a["b"] - z @ a["W"].T
        log_p = (
            -0.5 * np.sum(z**2, -1)
            - 0.5 * d * LOG_2PI
            - 0.5 * np.sum(resid**2 / a["psi"], -1)
            - 0.5 * np.sum(np.log(2 * np.pi * a["psi"]))
        )
        return z, resid, log_p - log_q

    def is_lg(self, a, K, R, seed):
        rng = np.random.default_rng(seed)
        d = a["loc"].shape[0]
        out = np.empty(R)
        for s, e in self._rows(R, K, d):
            eps = rng.standard_normal((e - s, K, d))
            out[s:e] = logsumexp(self._log_w(a, eps)[2], axis=1) - np.log(K)
        return out

    def grad_lg(self, a, K, R, seed):
        # d log w / d loc = d log p / dz;  d log w / d log scale = (d log p / dz) * scale * eps + 1
        rng = np.random.default_rng(seed)
        d = a["loc"].shape[0]
        out = np.empty((R, 2 * d))
        for s, e in self._rows(R, K, d):
            eps = rng.standard_normal((e - s, K, d))
            z, resid, _ = self._log_w(a, eps)
            g_z = -z + (resid / a["psi"]) @ a["W"]
            out[s:e, :d] = g_z.mean(axis=1)
            out[s:e, d:] = (g_z * a["scale"] * eps).mean(axis=1) + 1.0
        return out

    def is_gm(self, a, K, R, seed):
        rng = np.random.default_rng(seed)
        log_w = a["table"] - np.log(a["probs"])
        k = rng.choice(a["probs"].shape[0], size=(R, K), p=a["probs"])
        return logsumexp(log_w[k], axis=1) - np.log(K)


class JaxPeer:
    """Idiomatic JAX: jit-compiled, float64, autodiff for the gradient."""

    name = "jax"

    def __init__(self):
        import jax

        jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp

        self.jax, self.jnp = jax, jnp
        self._cache = {}

    def _fn(self, kind, K, R):
        key = (kind, K, R)
        if key in self._cache:
            return self._cache[key]
        jax, jnp = self.jax, self.jnp
        from jax.scipy.special import logsumexp as jlse

        def log_w(a, loc, log_scale, eps):
            scale = jnp.exp(log_scale)
            z = loc + scale * eps
            d = z.shape[-1]
            log_q = -0.5 * jnp.sum(eps**2, -1) - jnp.sum(log_scale) - 0.5 * d * LOG_2PI
            resid = a["x"] - a["b"] - z @ a["W"].T
            log_p = (
                -0.5 * jnp.sum(z**2, -1)
                - 0.5 * d * LOG_2PI
                - 0.5 * jnp.sum(resid**2 / a["psi"], -1)
                - 0.5 * jnp.sum(jnp.log(2 * jnp.pi * a["psi"]))
            )
            return log_p - log_q

        if kind == "is_lg":

            def f(a, seed):
                d = a["loc"].shape[0]
                eps = jax.random.normal(jax.random.PRNGKey(seed), (R, K, d), dtype=jnp.float64)
                return jlse(log_w(a, a["loc"], jnp.log(a["scale"]), eps), axis=1) - jnp.log(K)

        elif kind == "grad_lg":

            def f(a, seed):
                d = a["loc"].shape[0]
                eps = jax.random.normal(jax.random.PRNGKey(seed), (R, K, d), dtype=jnp.float64)

                def elbo(params, eps_r):
                    return jnp.mean(log_w(a, params[:d], params[d:], eps_r))

                params = jnp.concatenate([a["loc"], jnp.log(a["scale"])])
                return jax.vmap(jax.grad(elbo), in_axes=(None, 0))(params, eps)

        else:

            def f(a, seed):
                logits = jnp.log(a["probs"])
                k = jax.random.categorical(jax.random.PRNGKey(seed), logits, shape=(R, K))
                return jlse((a["table"] - logits)[k], axis=1) - jnp.log(K)

        self._cache[key] = jax.jit(f)
        return self._cache[key]

    def _run(self, kind, a, K, R, seed):
        arrays = {k: self.jnp.asarray(v) for k, v in a.items()}
        return np.asarray(self._fn(kind, K, R)(arrays, seed).block_until_ready())

    def is_lg(self, a, K, R, seed):
        return self._run("is_lg", a, K, R, seed)

    def grad_lg(self, a, K, R, seed):
        return self._run("grad_lg", a, K, R, seed)

    def is_gm(self, a, K, R, seed):
        return self._run("is_gm", a, K, R, seed)


class TorchPeer:
    """Idiomatic PyTorch: float64 tensors on the CPU, autograd for the gradient."""

    name = "torch"

    def __init__(self):
        import torch

        self.torch = torch

    def _t(self, a):
        return {k: self.torch.tensor(np.array(v, dtype=np.float64)) for k, v in a.items()}  # a copy: torch wants writable arrays

    def _log_w(self, t, loc, log_scale, eps):
        torch = self.torch
        scale = torch.exp(log_scale)
        z = loc + scale * eps
        d = z.shape[-1]
        log_q = -0.5 * (eps**2).sum(-1) - log_scale.sum(-1, keepdim=True).squeeze(-1) - 0.5 * d * LOG_2PI
        resid = t["x"] - t["b"] - z @ t["W"].T
        log_p = (
            -0.5 * (z**2).sum(-1)
            - 0.5 * d * LOG_2PI
            - 0.5 * (resid**2 / t["psi"]).sum(-1)
            - 0.5 * torch.log(2 * torch.pi * t["psi"]).sum()
        )
        return log_p - log_q

    def is_lg(self, a, K, R, seed):
        torch = self.torch
        t = self._t(a)
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            eps = torch.randn((R, K, t["loc"].shape[0]), generator=gen, dtype=torch.float64)
            lw = self._log_w(t, t["loc"], torch.log(t["scale"]), eps)
            return (torch.logsumexp(lw, dim=1) - math.log(K)).numpy()

    def grad_lg(self, a, K, R, seed):
        torch = self.torch
        t = self._t(a)
        d = t["loc"].shape[0]
        gen = torch.Generator().manual_seed(seed)
        eps = torch.randn((R, K, d), generator=gen, dtype=torch.float64)
        # one copy of the parameters per replicate, so autograd returns (R, d) gradients
        loc = t["loc"].expand(R, d).clone().requires_grad_(True)
        log_scale = torch.log(t["scale"]).expand(R, d).clone().requires_grad_(True)
        lw = self._log_w(t, loc[:, None, :], log_scale[:, None, :], eps)
        lw.mean(dim=1).sum().backward()
        return torch.cat([loc.grad, log_scale.grad], dim=1).numpy()

    def is_gm(self, a, K, R, seed):
        torch = self.torch
        t = self._t(a)
        gen = torch.Generator().manual_seed(seed)
        log_w = t["table"] - torch.log(t["probs"])
        k = torch.multinomial(t["probs"], R * K, replacement=True, generator=gen).reshape(R, K)
        return (torch.logsumexp(log_w[k], dim=1) - math.log(K)).numpy()


_PEER_CLASSES = {"numpy": NumpyPeer, "jax": JaxPeer, "torch": TorchPeer}
_PEER_MODULES = {"numpy": "numpy", "jax": "jax", "torch": "torch"}


def available_peers(names=PEER_NAMES):
    """(peers, notes): instantiated peers that import, and a note for each missing one."""
    peers, notes = [], []
    for name in names:
        if name not in _PEER_CLASSES:
            raise ValueError(f"peers: unknown peer {name!r}; expected some of {list(_PEER_CLASSES)}")
        if importlib.util.find_spec(_PEER_MODULES[name]) is None:
            notes.append(f"{name}: not installed, skipped (pip install -e \".[peers]\")")
            continue
        peers.append(_PEER_CLASSES[name]())
    return peers, notes


# --------------------------------------------------------------------------- agreement


def check_agreement(impl, lg, gm, K=1000, R=200, seed=7):
    """Largest |z|-score of an implementation's estimates against the exact truth:
    the mean of p_hat/p against 1 (unbiased at every K) and the mean gradient
    against ``elbo_grad``.  Returns {work: max |z|}; < 5 means the same work."""
    out = {}
    for work, problem_work, fn in (("is_lg", lg, impl.is_lg), ("is_gm", gm, impl.is_gm)):
        ratio = np.exp(np.asarray(fn(problem_work.arrays, K, R, seed)) - problem_work.truth_log_p)
        out[work] = float(abs(ratio.mean() - 1.0) / (ratio.std(ddof=1) / np.sqrt(R)))
    g = np.asarray(impl.grad_lg(lg.arrays, K, R, seed))
    exact = lg.problem.elbo_grad(lg.x, lg.q)
    se = g.std(axis=0, ddof=1) / np.sqrt(R)
    out["grad_lg"] = float(np.max(np.abs(g.mean(axis=0) - exact) / se))
    return out


# --------------------------------------------------------------------------- timing


def time_call(fn, repeats=5, min_seconds=0.2):
    """Median wall time of ``fn()`` over ``repeats`` calls (at least
    ``min_seconds`` in all), after one untimed warm-up call (jit compile)."""
    fn()
    times = []
    start = time.perf_counter()
    while len(times) < repeats or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if len(times) >= 50:
            break
    return statistics.median(times)


def replicates_for(K):
    return max(1, SAMPLES_PER_CALL // K)


def run_peers(Ks=DEFAULT_KS, peers=PEER_NAMES, repeats=5, progress=None):
    """Time every implementation on every work and K.  Returns (DataFrame, notes).

    Columns: work, problem, implementation, K, R, seconds (median), samples_per_s,
    ratio (samples_per_s over the fastest peer's at that work and K; for the
    peers themselves, over the fastest peer), agreement_z (see check_agreement).
    """
    import pandas as pd

    lg, gm = linear_gaussian_work(), gaussian_mixture_work()
    peer_objs, notes = available_peers(peers)
    impls = [Ours(lg, gm)] + peer_objs
    agreement = {impl.name: check_agreement(impl, lg, gm) for impl in impls}
    rows = []
    works = (("is_lg", lg), ("grad_lg", lg), ("is_gm", gm))
    total = len(works) * len(Ks) * len(impls)
    done = 0
    for work, problem_work in works:
        for K in Ks:
            R = replicates_for(K)
            for impl in impls:
                fn = getattr(impl, work)
                seconds = time_call(lambda: fn(problem_work.arrays, K, R, 1), repeats=repeats)
                rows.append(
                    dict(
                        work=work,
                        problem=problem_work.name,
                        implementation=impl.name,
                        K=K,
                        R=R,
                        seconds=seconds,
                        samples_per_s=K * R / seconds,
                        agreement_z=agreement[impl.name][work],
                    )
                )
                done += 1
                if progress is not None:
                    progress(done, total)
    df = pd.DataFrame(rows)
    peer_rows = df[df.implementation != Ours.name]
    if len(peer_rows):
        fastest = peer_rows.groupby(["work", "K"]).samples_per_s.max().rename("fastest_peer")
        df = df.join(fastest, on=["work", "K"])
        df["ratio"] = df.samples_per_s / df.fastest_peer
    else:
        df["fastest_peer"] = np.nan
        df["ratio"] = np.nan
    return df, notes


# --------------------------------------------------------------------------- machine limits


def _limit_kernels():
    from estimators.machine import limit_kernels

    return limit_kernels()


def machine_limits(seconds_target=0.3):
    """Measured rates on all threads: normals/s (our ziggurat), multiply-adds/s
    (20 x 20 matrix-vector products laid out for vertical SIMD FMAs: the best
    the cores do for this arithmetic) and exps/s (with their uniform draws)."""
    import numba

    threads = numba.get_num_threads()
    normals, matvecs, exps = _limit_kernels()
    W = np.random.default_rng(0).standard_normal((20, 20)) * 1e-2
    normals(4096, threads)
    matvecs(W, 10, threads)
    exps(4096, threads)
    n = 1 << 22
    t = time.perf_counter()
    normals(n, threads)
    normal_rate = threads * (n // 4096 * 4096) / (time.perf_counter() - t)
    passes = 1 << 10
    t = time.perf_counter()
    matvecs(W, passes, threads)
    fma_rate = threads * passes * 128 * W.size / (time.perf_counter() - t)
    t = time.perf_counter()
    exps(n, threads)
    exp_rate = threads * (n // 4096 * 4096) / (time.perf_counter() - t)
    return dict(threads=threads, normals_per_s=normal_rate, fma_per_s=fma_rate, exp_per_s=exp_rate)


def kernel_fraction(df, limits, D=20, d=20):
    """The share of the machine's limit each of our rows reaches: for one
    LinearGaussian sample the kernel must draw d normals and do about
    D*d + 2D + 2d multiply-adds (plus one exp for the log-sum-exp); a
    mixture sample needs one uniform and one exp.  fraction = predicted
    time / measured time."""
    ours = df[df.implementation == Ours.name].copy()
    per_sample = {
        "is_lg": d / limits["normals_per_s"] + (D * d + 2 * D + 2 * d) / limits["fma_per_s"] + 1 / limits["exp_per_s"],
        "grad_lg": d / limits["normals_per_s"] + (2 * D * d + 4 * D + 6 * d) / limits["fma_per_s"] + 1 / limits["exp_per_s"],
        "is_gm": 1 / limits["exp_per_s"],
    }
    ours["limit_samples_per_s"] = ours.work.map(lambda w: 1.0 / per_sample[w])
    ours["fraction_of_limit"] = ours.samples_per_s / ours.limit_samples_per_s
    return ours


def format_table(df, notes, limits=None):
    """The text ``python -m bench peers`` prints."""
    lines = []
    for (work, problem), block in df.groupby(["work", "problem"], sort=False):
        lines.append(f"\n{work} on {problem}  (samples/s; ratio to the fastest peer)")
        impls = list(dict.fromkeys(block.implementation))
        lines.append(f"{'K':>9} {'R':>6} " + " ".join(f"{name:>20}" for name in impls))
        for K, row in block.groupby("K"):
            cells = []
            for name in impls:
                r = row[row.implementation == name].iloc[0]
                ratio = "" if np.isnan(r.ratio) else f" ({r.ratio:4.1f}x)"
                cells.append(f"{r.samples_per_s:12.3g}{ratio:>8}")
            lines.append(f"{K:>9} {int(row.R.iloc[0]):>6} " + " ".join(f"{c:>20}" for c in cells))
        agree = block.groupby("implementation", sort=False).agreement_z.first()
        lines.append("agreement with the exact answer, max |z| (< 5 = same work): " + ", ".join(f"{k} {v:.2f}" for k, v in agree.items()))
    if limits is not None:
        lines.append(
            f"\nmachine limit ({limits['threads']} threads): {limits['normals_per_s']:.3g} normals/s, "
            f"{limits['fma_per_s']:.3g} multiply-adds/s, {limits['exp_per_s']:.3g} exps/s"
        )
        frac = kernel_fraction(df, limits)
        for (work, K), r in frac.set_index(["work", "K"]).iterrows():
            lines.append(f"  {work:8s} K={K:<8d} {r.samples_per_s:10.3g} of a limit of {r.limit_samples_per_s:10.3g} samples/s = {r.fraction_of_limit:5.0%}")
    for note in notes:
        lines.append("note: " + note)
    lines.append(f"threads: NUMBA_NUM_THREADS={os.environ.get('NUMBA_NUM_THREADS', 'default')}")
    return "\n".join(lines)
