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

``machine_limits`` measures what the hardware allows for this work: the peak
rate of each primitive the kernels are built from (ziggurat normals,
uniforms, categorical draws and counts, exps, multiply-adds), each timed alone
on one thread with the kernels' own generator and layout
(``estimators.machine``) and multiplied by the threads.  ``work_model`` counts
each kernel's irreducible work per sample from its algorithm, and ``ceiling``
turns counts and rates into an upper bound on samples/s,
1 / max_i (n_i / rate_i): no kernel can beat it, so a fraction above 100 %
means the model is wrong (tests/test_peers.py checks it on one run).  Every
implementation says which algorithm it uses (``algorithms``; printed under
each table).  ``--out DIR`` writes the rows with the ceilings to
DIR/peers.parquet (``write_results``), which ``python -m bench report DIR``
draws (``reports.figures_peers``).
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
SECTIONS["discrete"] = "bench.peers_discrete"  # binary-latent ELBO gradients: compiled vs vectorised NumPy
SECTIONS["sequential"] = "bench.peers_sequential"  # the bootstrap particle filter vs NumPy and `particles`


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
    algorithms = {
        "is_lg": "numba, all threads, (replicate, 16384-chunk) units with their own xoshiro256** streams; per "
                 "256-sample block: ziggurat normals, z = loc + scale u, the block's W z by one single-threaded dgemm, the "
                 "quadratic forms, a streaming log-sum-exp (one exp per sample)",
        "grad_lg": "the same draws; per block two dgemms give r = x - b - W z and g = -z + W^T Psi^-1 r, then "
                   "log w from r; S = (g, g u scale + 1) summed per replicate (pathwise gradient, no autodiff)",
        "is_gm": "numba, all threads: a uniform and a branch-free Walker alias draw per sample (O(1)), counted "
                 "per category; per 256-sample block a fold of the C counts (the counting fold), whose C exps are "
                 "computed once per call (again only in a block without the category of the largest log-weight)",
    }

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
    algorithms = {
        "is_lg": "one (R, K, d) standard_normal draw (PCG64 ziggurat), z @ Ws.T by BLAS with W whitened by "
                 "Psi^-1/2 once, sums of squares by einsum, scipy logsumexp over K",
        "grad_lg": "the same draws and products; the analytic pathwise gradient r @ Ws - z (a second BLAS "
                   "product), means over K",
        "is_gm": "inverse-CDF categorical draws (searchsorted of uniforms: rng.choice's draws), one bincount "
                 "per chunk of replicates, logsumexp over the C categories weighted by the counts",
    }
    MAX_ELEMENTS = 1 << 25  # beyond this many doubles per draw, loop over replicates

    def _rows(self, R, K, d):
        per = max(1, self.MAX_ELEMENTS // max(1, K * d))
        return [(s, min(R, s + per)) for s in range(0, R, per)]

    @staticmethod
    def _whitened(a):
        """Ws = Psi^-1/2 W and xs = Psi^-1/2 (x - b): then
        sum_i (x - b - W z)_i^2 / psi_i = |xs - Ws z|^2, one product, no divides."""
        root = np.sqrt(a["psi"])
        c = -0.5 * np.sum(np.log(2 * np.pi * a["psi"])) + np.sum(np.log(a["scale"]))
        return a["W"] / root[:, None], (a["x"] - a["b"]) / root, c

    @staticmethod
    def _log_w(a, eps, Ws, xs, c):
        """z, the whitened residual r = xs - Ws z, and log w = log p(x, z) - log q(z)
        (the 2 pi terms of p(z) and q(z) cancel), with the sums of squares as einsums."""
        z = eps * a["scale"]
        z += a["loc"]
        r = z @ -Ws.T
        r += xs
        sq = "...k,...k->..."
        log_w = c - 0.5 * (np.einsum(sq, z, z) + np.einsum(sq, r, r) - np.einsum(sq, eps, eps))
        return z, r, log_w

    def is_lg(self, a, K, R, seed):
        rng = np.random.default_rng(seed)
        d = a["loc"].shape[0]
        Ws, xs, c = self._whitened(a)
        out = np.empty(R)
        for s, e in self._rows(R, K, d):
            eps = rng.standard_normal((e - s, K, d))
            out[s:e] = logsumexp(self._log_w(a, eps, Ws, xs, c)[2], axis=1) - np.log(K)
        return out

    def grad_lg(self, a, K, R, seed):
        # d log w / d loc = g = d log p / dz = -z + W^T Psi^-1 (x - b - W z) = Ws^T r - z;
        # d log w / d log scale = g * scale * eps + 1
        rng = np.random.default_rng(seed)
        d = a["loc"].shape[0]
        Ws, xs, c = self._whitened(a)
        out = np.empty((R, 2 * d))
        for s, e in self._rows(R, K, d):
            eps = rng.standard_normal((e - s, K, d))
            z, r, _ = self._log_w(a, eps, Ws, xs, c)
            g = r @ Ws
            g -= z
            out[s:e, :d] = g.mean(axis=1)
            g *= eps
            out[s:e, d:] = g.mean(axis=1) * a["scale"] + 1.0
        return out

    def is_gm(self, a, K, R, seed):
        # K categorical draws per replicate by the inverse CDF (the draws of
        # rng.choice(C, p=probs)), counted per category with one bincount; the
        # log-sum-exp then runs over the C categories weighted by their counts
        rng = np.random.default_rng(seed)
        probs = a["probs"]
        C = probs.shape[0]
        log_w = a["table"] - np.log(probs)
        cdf = np.cumsum(probs)
        cdf /= cdf[-1]
        out = np.empty(R)
        per = max(1, self.MAX_ELEMENTS // K)
        for s in range(0, R, per):
            e = min(R, s + per)
            k = np.searchsorted(cdf, rng.random((e - s, K)), side="right")
            np.minimum(k, C - 1, out=k)
            k += np.arange(e - s)[:, None] * C
            counts = np.bincount(k.ravel(), minlength=(e - s) * C).reshape(e - s, C)
            out[s:e] = logsumexp(log_w, b=counts, axis=1) - np.log(K)
        return out


class JaxPeer:
    """Idiomatic JAX: jit-compiled, float64, autodiff for the gradient."""

    name = "jax"
    algorithms = {
        "is_lg": "jit (XLA CPU, float64): one (R, K, d) threefry normal draw, matmul, logsumexp",
        "grad_lg": "jit: jax.grad of the mean log-weight, vmapped over replicates (autodiff)",
        "is_gm": "jit: jax.random.choice with p (inverse CDF), bincount per replicate, weighted logsumexp over C",
    }

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
                # inverse-CDF draws (jax.random.choice with p), counted per category
                C = a["probs"].shape[0]
                k = jax.random.choice(jax.random.PRNGKey(seed), C, shape=(R, K), p=a["probs"])
                flat = (k + C * jnp.arange(R)[:, None]).ravel()
                counts = jnp.bincount(flat, length=R * C).reshape(R, C)
                return jlse(a["table"] - jnp.log(a["probs"]), b=counts, axis=1) - jnp.log(K)

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
    algorithms = {
        "is_lg": "float64 CPU tensors (intra-op threads): one randn draw, matmul, logsumexp, no_grad",
        "grad_lg": "autograd backward of the mean log-weight, one parameter copy per replicate",
        "is_gm": "torch.multinomial with replacement, bincount per replicate, logsumexp over C of log w + log counts",
    }

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
        C = log_w.shape[0]
        k = torch.multinomial(t["probs"], R * K, replacement=True, generator=gen).reshape(R, K)
        k += C * torch.arange(R)[:, None]
        counts = torch.bincount(k.reshape(-1), minlength=R * C).reshape(R, C).to(torch.float64)
        # log sum_c counts_c w_c; a zero count contributes log 0 = -inf
        return (torch.logsumexp(log_w + torch.log(counts), dim=1) - math.log(K)).numpy()


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


#: seconds of idle before each implementation's timings: a library's worker threads keep spinning
#: for a while after its last call (OpenBLAS's about 0.1 s, 2^28 cycles), and would share the two
#: cores with the next implementation timed -- ours after NumPy's BLAS ran 35-50 % slower on its
#: first calls (measured on SBN(20, 64)); the same pause precedes every implementation
SETTLE_SECONDS = 0.3


def time_call(fn, repeats=5, min_seconds=0.2):
    """Median wall time of ``fn()`` over ``repeats`` calls (at least
    ``min_seconds`` in all), after ``SETTLE_SECONDS`` of idle (the previous
    implementation's thread pools go quiet) and one untimed warm-up call (jit compile)."""
    time.sleep(SETTLE_SECONDS)
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


#: the least time of the timed calls each implementation gets in each round of ``time_interleaved``
TURN_SECONDS = 0.04


def time_interleaved(fns, rounds=5, min_seconds=TURN_SECONDS):
    """Median wall time of each of ``fns`` (a list of no-argument callables),
    timed in turn: ``rounds`` rounds, each giving every fn, in order,
    ``SETTLE_SECONDS`` of idle, one untimed call (the first also compiles) and
    timed calls for at least ``min_seconds``.  Returns the medians, one per fn.

    Timed one after another in one block each (``time_call``), two
    implementations meet the machine at different minutes, and on a shared VM
    a minute moves a two-thread kernel by +-30 %; taking turns gives each the
    same mix of minutes, so their ratio is steadier than either time."""
    times = [[] for _ in fns]
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            time.sleep(SETTLE_SECONDS)
            fn()
            start = time.perf_counter()
            while True:
                t0 = time.perf_counter()
                fn()
                times[i].append(time.perf_counter() - t0)
                if time.perf_counter() - start >= min_seconds:
                    break
    return [statistics.median(t) for t in times]


def replicates_for(K):
    return max(1, SAMPLES_PER_CALL // K)


def run_peers(Ks=DEFAULT_KS, peers=PEER_NAMES, repeats=5, progress=None):
    """Time every implementation on every work and K.  Returns (DataFrame, notes).

    Columns: work, problem, implementation, K, R, seconds (median), samples_per_s,
    ratio (samples_per_s over the fastest peer's at that work and K; for the
    peers themselves, over the fastest peer), agreement_z (see check_agreement).
    """
    import pandas as pd

    load_before = os.getloadavg()[0]
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
            # every implementation of a cell in turns (time_interleaved): their ratio is what is quoted
            fns = [lambda fn=getattr(impl, work): fn(problem_work.arrays, K, R, 1) for impl in impls]
            for impl, seconds in zip(impls, time_interleaved(fns, rounds=repeats)):
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
            done += len(impls)
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
    df.attrs["load_before"], df.attrs["load_after"] = load_before, os.getloadavg()[0]
    df.attrs["rounds"] = repeats
    return df, notes


# --------------------------------------------------------------------------- machine limits

#: the primitives a ceiling is built from, with what each rate counts
PRIMITIVES = {
    "normals": "ziggurat normals (rng.fill_normal, BLOCK * d buffers)",
    "fma": "multiply-adds (the best of the kernel's own log_joint_block and threads x one-thread BLAS dgemm)",
    "exps": "exps of the log-sum-exp fold (reduce.fold_block's loop)",
    "categorical": "categorical draws and counts (a uniform, a Walker alias draw, a count)",
    "uniforms": "xoshiro256** uniforms (rng.fill_uniform)",
}


def work_model(work, K, D=20, d=20, C=20, R=1):
    r"""{primitive: count per sample}: the irreducible work of one sample of our
    kernel for ``work``, counted from its algorithm (``estimators._kernels``).

    ``is_lg`` (``linear_gaussian.block`` + ``reduce.fold_block``), diagonal q:
    d normals u; multiply-adds z = loc + scale u (d), |z|^2 (d), r = x - b - W z
    (D d), sum_i r_i^2 / psi_i (2 D), |u|^2 (d), and the fold's s += e,
    s2 += e^2 (2): D d + 2D + 3d + 2 = 502 at D = d = 20; one exp e = exp(l - m).

    ``grad_lg`` (``gradient_affine.block``, REPARAM, + ``gradient_driver.fold_sums``
    with the sum of S only): d normals; multiply-adds z (d), r (D d),
    r_i / psi_i (D), g = -z + W^T Psi^-1 r (D d), |z|^2 (d), the quadratic form
    (2D), |u|^2 (d), the log-scale part g_j u_j sigma_j + 1 (2d), sum_k S_k
    (2d): 2 D d + 3D + 7d = 1000; no exp (the ELBO's gradient reads no weight
    sums, so pass 1 takes none).

    ``is_gm`` (``categorical.draw_and_fold``, the counting fold): one categorical
    draw and one count per sample (a uniform, ``categorical.draw``, an add);
    then the C exps of the fold over the categories, once per call of R
    replicates of K: C / (K R) per sample.  (The kernel computes them once per
    call, ``reduce.exps_below_top``, and again only in a block that lacks the
    category of the largest log-weight.)
    """
    if work == "is_lg":
        return {"normals": d, "fma": D * d + 2 * D + 3 * d + 2, "exps": 1}
    if work == "grad_lg":
        return {"normals": d, "fma": 2 * D * d + 3 * D + 7 * d}
    if work == "is_gm":
        return {"categorical": 1, "exps": C / (K * R)}
    raise ValueError(f"work: unknown work {work!r}; expected is_lg, grad_lg or is_gm")


def ceiling(work, K, limits, D=20, d=20, C=20, R=1):
    r"""(ceiling samples/s, sequential samples/s, binding primitive) for ``work`` at K (R replicates).

    Per sample, primitive i costs at least :math:`t_i = n_i / \rho_i` seconds
    (n_i from ``work_model``, \rho_i the machine's peak rate of it from
    ``machine_limits``, all threads).  Whatever the overlap of the units that
    execute them, a sample takes at least :math:`\max_i t_i`, so

    .. math:: \text{ceiling} = 1 / \max_i t_i \qquad \text{(an upper bound)}

    and if the primitives ran one after another (the kernels' phases do: a
    block's draws, then its arithmetic, then its fold) it would take
    :math:`\sum_i t_i`: ``sequential`` = 1 / sum, an estimate, not a bound (the
    cores overlap integer RNG work with floating-point work)."""
    rates = {"normals": limits["normals_per_s"], "fma": limits["fma_per_s"], "exps": limits["exp_per_s"],
             "categorical": limits["categorical_per_s"], "uniforms": limits["uniforms_per_s"]}
    times = {name: n / rates[name] for name, n in work_model(work, K, D, d, C, R).items()}
    bound = max(times, key=times.get)
    return 1.0 / times[bound], 1.0 / sum(times.values()), bound


def _best_rate(fn, work_items, repeats):
    """work_items / (the fastest of ``repeats`` timed calls of fn()), after a warm-up."""
    fn()
    best = math.inf
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return work_items / best


def blas_fma_rate_one_thread(repeats=5, m=256):
    """Multiply-adds/s of one thread of BLAS dgemm (m x m times m x m, m^3 of
    them), BLAS held to one thread (threadpoolctl): the best this arithmetic
    runs on one core, without the synchronisation of BLAS's own threads,
    which a busy machine makes erratic."""
    from threadpoolctl import threadpool_limits

    gen = np.random.default_rng(1)
    A, B = gen.standard_normal((m, m)), gen.standard_normal((m, m))
    out = np.empty((m, m))
    with threadpool_limits(limits=1):
        return _best_rate(lambda: np.matmul(A, B, out=out), m**3, repeats)


#: the per-thread rates of ``machine_limits``, in the order they are measured
LIMIT_RATES = ("normals_per_s", "uniforms_per_s", "categorical_per_s", "exp_per_s", "fma_layout_per_s",
               "fma_blas_per_s")


def machine_limits(scale=1.0, repeats=5, settle=0.0):
    """The machine's peak rates of the kernels' primitives on all threads:
    normals/s, uniforms/s, categorical draws and counts/s, exps/s and
    multiply-adds/s (the larger of the kernel's own ``log_joint_block`` loop and
    BLAS dgemm, ``blas_fma_rate_one_thread``).  Each is the best of ``repeats``
    one-thread runs of its limit kernel (``estimators.machine``), times the
    number of threads (an upper bound on the all-thread rate: see
    ``estimators.machine``).  ``scale`` shrinks the sizes (the tests use 0.1);
    ``settle`` seconds of idle go before each primitive's runs.

    The fastest run, not the median: a peak is what the hardware allows, and a
    ceiling computed from it bounds the kernels even when the machine is busy.
    One measurement can still fall in a slow spell of a shared machine (a
    categorical rate of 2.0e8/s per thread in one run against 3.4e8 four
    minutes before put the mixture kernel at 135 % of its "ceiling"), so
    ``python -m bench peers`` measures in several rounds spread over the run
    and keeps the best of each rate (``best_limits``)."""
    import numba

    from estimators import machine

    threads = numba.get_num_threads()
    k = machine.limit_kernels()
    D = d = 20
    width = machine.BLOCK * d
    # sizes: each timed run is about 5-20 ms on an idle core
    n = max(width, int(scale * (1 << 22)) // width * width)
    lw_block = -np.linspace(0.0, 3.0, machine.BLOCK)
    gen = np.random.default_rng(0)
    W = gen.standard_normal((D, d)) * 0.1
    z = gen.standard_normal((machine.BLOCK, d))
    xb, inv_psi = gen.standard_normal(D), np.ones(D)
    keep, alias = machine.alias_table(gaussian_mixture_work().arrays["probs"])
    passes = max(1, int(scale * 400))
    blocks = n // machine.BLOCK * machine.BLOCK
    measures = dict(
        normals_per_s=lambda: _best_rate(lambda: k["normals"](n, width), n, repeats),
        uniforms_per_s=lambda: _best_rate(lambda: k["uniforms"](4 * n), 4 * blocks, repeats),
        categorical_per_s=lambda: _best_rate(lambda: k["categorical_counts"](2 * n, keep, alias), 2 * blocks,
                                             repeats),
        exp_per_s=lambda: _best_rate(lambda: k["exps"](20 * passes, lw_block), 20 * passes * machine.BLOCK,
                                     repeats),
        fma_layout_per_s=lambda: _best_rate(lambda: k["log_joint_block"](passes, z, xb, W, inv_psi),
                                            passes * machine.BLOCK * (D * d + 2 * D + d), repeats),
        fma_blas_per_s=lambda: blas_fma_rate_one_thread(repeats),
    )
    per_thread = {}
    for key in LIMIT_RATES:
        if settle > 0:
            time.sleep(settle)
        per_thread[key] = measures[key]()
    return _limits_from_per_thread(threads, per_thread)


def _limits_from_per_thread(threads, per_thread, rounds=None):
    out = dict(threads=threads, **{key: threads * per_thread[key] for key in LIMIT_RATES})
    out["fma_per_s"] = max(out["fma_layout_per_s"], out["fma_blas_per_s"])
    if rounds is not None:
        out["rounds"] = rounds
    return out


def best_limits(measurements):
    """The best of each rate over several ``machine_limits`` results (one
    machine, one thread count), with ``rounds``: the list of the measurements
    themselves, so that the output can show how far apart they were."""
    measurements = list(measurements)
    if not measurements:
        raise ValueError("measurements: need at least one machine_limits result")
    threads = {m["threads"] for m in measurements}
    if len(threads) != 1:
        raise ValueError(f"measurements: taken with different thread counts {sorted(threads)}")
    (n,) = threads
    best = {key: max(m[key] for m in measurements) / n for key in LIMIT_RATES}
    return _limits_from_per_thread(n, best, rounds=[{key: m[key] for key in LIMIT_RATES} for m in measurements])


def kernel_fraction(df, limits, D=20, d=20, C=20):
    """Our rows with their ceilings (``ceiling``): columns limit_samples_per_s
    (the ceiling: an upper bound), sequential_samples_per_s (the primitives one
    after another), bound (the primitive that sets the ceiling) and
    fraction_of_limit = samples_per_s / ceiling, at most 1 unless the model
    is wrong."""
    ours = df[df.implementation == Ours.name].copy()
    cells = [ceiling(w, K, limits, D, d, C, R) for w, K, R in zip(ours.work, ours.K, ours.R)]
    ours["limit_samples_per_s"] = [c[0] for c in cells]
    ours["sequential_samples_per_s"] = [c[1] for c in cells]
    ours["bound"] = [c[2] for c in cells]
    ours["fraction_of_limit"] = ours.samples_per_s / ours.limit_samples_per_s
    return ours


def format_derivation(limits, K=10**4, D=20, d=20, C=20):
    """The lines that show how each work's ceiling follows from the rates."""
    rates = {"normals": limits["normals_per_s"], "fma": limits["fma_per_s"], "exps": limits["exp_per_s"],
             "categorical": limits["categorical_per_s"], "uniforms": limits["uniforms_per_s"]}
    lines = [
        f"\nmachine peak rates ({limits['threads']} threads x the best one-thread run of estimators.machine's "
        "limit kernels):",
        f"  {limits['normals_per_s']:.3g} normals/s, {limits['uniforms_per_s']:.3g} uniforms/s, "
        f"{limits['categorical_per_s']:.3g} categorical draws+counts/s, {limits['exp_per_s']:.3g} exps/s, "
        f"{limits['fma_per_s']:.3g} multiply-adds/s (kernel loop {limits['fma_layout_per_s']:.3g}, "
        f"BLAS dgemm {limits['fma_blas_per_s']:.3g})",
    ]
    rounds = limits.get("rounds")
    if rounds and len(rounds) > 1:
        names = (("normals_per_s", "normals"), ("uniforms_per_s", "uniforms"), ("categorical_per_s", "categorical"),
                 ("exp_per_s", "exps"), ("fma_blas_per_s", "BLAS fma"))
        lines.append(f"  the best of {len(rounds)} measurement rounds spread over the run; each rate's lowest "
                     "round / its best: " + ", ".join(
                         f"{label} {min(r[key] for r in rounds) / limits[key]:.0%}" for key, label in names))
    lines.append("ceiling = 1 / max_i (n_i / rate_i) per sample (an upper bound whatever the overlap); "
                 "sequential = 1 / sum_i (n_i / rate_i):")
    for work in ("is_lg", "grad_lg", "is_gm"):
        R = replicates_for(K)
        model = work_model(work, K, D, d, C, R)
        terms = ", ".join(f"{n:g} {name} -> {n / rates[name] * 1e9:.3g} ns" for name, n in model.items())
        top, seq, bound = ceiling(work, K, limits, D, d, C, R)
        lines.append(f"  {work:8s} per sample (K={K:g}, R={R}): {terms}; ceiling {top:.3g}/s ({bound}), "
                     f"sequential {seq:.3g}/s")
    return lines


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
        for name in impls:
            cls = _PEER_CLASSES.get(name, Ours if name == Ours.name else None)
            if cls is not None and work in getattr(cls, "algorithms", {}):
                lines.append(f"  algorithm, {name}: {cls.algorithms[work]}")
        agree = block.groupby("implementation", sort=False).agreement_z.first()
        lines.append("agreement with the exact answer, max |z| (< 5 = same work): " + ", ".join(f"{k} {v:.2f}" for k, v in agree.items()))
    if limits is not None:
        lines.extend(format_derivation(limits))
        frac = kernel_fraction(df, limits)
        lines.append("our kernels against their ceilings:")
        for (work, K), r in frac.set_index(["work", "K"]).iterrows():
            lines.append(
                f"  {work:8s} K={K:<8d} {r.samples_per_s:10.3g} of a ceiling of {r.limit_samples_per_s:10.3g} "
                f"samples/s ({r.bound}) = {r.fraction_of_limit:5.0%}   (sequential estimate "
                f"{r.sequential_samples_per_s:.3g}: {r.samples_per_s / r.sequential_samples_per_s:4.0%})"
            )
        above = frac[frac.fraction_of_limit > 1.0]
        if len(above):
            cells = ", ".join(f"{r.work} K={r.K}" for r in above.itertuples())
            lines.append(f"ABOVE ITS CEILING: {cells}. A ceiling is an upper bound, so on this run either the work "
                         "model or the measured peak rates are wrong; these fractions are not to be trusted.")
    for note in notes:
        lines.append("note: " + note)
    lines.append(f"threads: NUMBA_NUM_THREADS={os.environ.get('NUMBA_NUM_THREADS', 'default')}")
    if "load_before" in df.attrs:
        lines.append(f"load average (1 min) before the timings {df.attrs['load_before']:.2f}, after "
                     f"{df.attrs['load_after']:.2f} on {os.cpu_count()} CPUs (ratios are within one run)")
    if "rounds" in df.attrs:
        lines.append(f"timing: per cell {df.attrs['rounds']} rounds in which every implementation in turn gets "
                     f"{SETTLE_SECONDS} s of idle, an untimed call and timed calls for >= {TURN_SECONDS} s; "
                     "samples/s from the median timed call (time_interleaved)")
    return "\n".join(lines)


PEERS_TABLE = "peers.parquet"


def results_table(df, limits=None):
    """Every row of ``run_peers`` with its algorithm and, when ``limits`` is
    given, the ceiling of our kernel at that (work, K) on every row of it:
    columns ceiling_samples_per_s, sequential_samples_per_s, bound (NaN / ""
    without limits), and the machine's rates as columns limit_<name>."""
    out = df.copy()
    classes = {Ours.name: Ours, **{cls.name: cls for cls in _PEER_CLASSES.values()}}
    out["algorithm"] = [classes[i].algorithms.get(w, "") if i in classes else ""
                        for i, w in zip(out.implementation, out.work)]
    if limits is None:
        out["ceiling_samples_per_s"] = np.nan
        out["sequential_samples_per_s"] = np.nan
        out["bound"] = ""
    else:
        cells = [ceiling(w, K, limits, R=R) for w, K, R in zip(out.work, out.K, out.R)]
        out["ceiling_samples_per_s"] = [c[0] for c in cells]
        out["sequential_samples_per_s"] = [c[1] for c in cells]
        out["bound"] = [c[2] for c in cells]
        for key, value in limits.items():
            if key != "rounds":
                out[f"limit_{key}"] = float(value)
    out["load_before"] = df.attrs.get("load_before", np.nan)
    out["load_after"] = df.attrs.get("load_after", np.nan)
    return out


def write_results(df, limits, out):
    """Write ``results_table(df, limits)`` to ``out``: a ``.csv`` path as CSV,
    anything else as a results directory (created) holding ``peers.parquet``,
    which ``reports.report.load_results`` reads for the throughput-vs-peers
    figure.  Returns the path written."""
    from pathlib import Path

    table = results_table(df, limits)
    out = Path(out)
    if out.suffix.lower() == ".csv":
        table.to_csv(out, index=False)
        return out
    if out.exists() and not out.is_dir():
        raise ValueError(f"out: {str(out)!r} is a file and not a .csv; give a .csv path or a directory")
    out.mkdir(parents=True, exist_ok=True)
    path = out / PEERS_TABLE
    table.to_parquet(path, index=False)
    return path
