r"""``python -m bench peers`` section "discrete": the binary-latent ELBO gradient
estimators compiled (ours) against a vectorised NumPy implementation of the
same estimators.

The work: :math:`\nabla_\theta \mathrm{ELBO}` in the logits of a Bernoulli q on
``SigmoidBeliefNet.random(m=20, D=64, seed=0)`` (x = ``p.sample(1, seed=1)[0]``,
q's bit probabilities uniform on (0.2, 0.8), seed 0), by each method of
``estimators.gradient`` for binary latents -- ``arm``, ``disarm``, ``rebar``
(temperature 0.5, eta 1), ``gumbel_softmax`` (temperature 0.5),
``straight_through`` -- at K in (1e2, 1e3, 1e4) samples per replicate and
R = 2^17 // K replicates per call (about 2^17 samples per call, as in the main table, so that
K = 1e4 still has 13 units to share between the threads; a sample of
ARM, DisARM and REBAR is one antithetic or relaxed pair of log-joint
evaluations).

Implementations:

* ``evidence-bench`` -- ``estimators.gradient(p, x, q, K, R, method)``: the
  public call, validation included, compiled (``estimators._kernels.discrete``)
  and parallel over (replicate, chunk) units;
* ``numpy`` -- ``estimators.discrete_gradients.numpy_gradient``: the same
  estimator vectorised in NumPy over blocks of up to 16384 samples (the path a
  user's binary problem takes), the problem's own NumPy ``log_joint`` and
  ``grad_log_joint_relaxed``.

Before timing, both are checked against exact answers with 2000 replicates at
K = 10: ARM, DisARM and REBAR against the exact gradient ``p.elbo_grad`` (by
enumeration of the 2^20 states), straight-through against its exact
expectation (enumerated here, independently of both implementations),
Gumbel-softmax -- whose expectation is a 20-dimensional integral -- against the
other implementation (a two-sample z).  ``agreement_z`` is the largest
|z| over the 20 coordinates (|z| < 5: the same estimator).  The rate is
samples per second, K R / seconds (median of ``repeats`` calls after a
warm-up); ``ratio`` is it over NumPy's at the same method and K.
"""

from __future__ import annotations

import os

import numpy as np
from scipy.special import expit

TITLE = ("discrete: binary-latent ELBO gradients on SigmoidBeliefNet(m=20, D=64), compiled vs vectorised NumPy, "
         "samples/s")
KS = (10**2, 10**3, 10**4)
SAMPLES_PER_CALL = 1 << 17
METHODS = ("arm", "disarm", "rebar", "gumbel_softmax", "straight_through")
CHECK_K, CHECK_R = 10, 2000

__all__ = ["TITLE", "run_section", "sbn_work", "straight_through_expectation", "agreement", "replicates_for"]

ALGORITHMS = {
    "evidence-bench": "numba, all threads, (replicate, 16384-chunk) units with their own xoshiro256** streams; per "
                      "sample m uniforms, a = W b + b0 by adding the on columns, one exp per activation (for a binary "
                      "b a product of precomputed exp(-W)), fixed-order sums; gumbel_softmax and straight_through in blocks of 32 samples: "
                      "zeta = 1/(1 + exp(-theta/tau) (u/(1-u))^(1/tau)), a = W z + b0 by axpys, exp(-|a|) by a vectorised "
                      "polynomial, W^T(x - sigma(a)) by dot products",
    "numpy": "blocks of up to 16384 samples: PCG64 uniforms, b @ W.T by BLAS, scipy log_expit/expit, the "
             "problem's NumPy log_joint / grad_log_joint_relaxed, sums per replicate",
}


def sbn_work(m=20, D=64, seed=0):
    """(p, x, q) of the section."""
    from estimators import Bernoulli
    from problems import SigmoidBeliefNet

    p = SigmoidBeliefNet.random(m, D, seed=seed)
    x = p.sample(1, seed=seed + 1)[0]
    q = Bernoulli(np.random.default_rng(seed).uniform(0.2, 0.8, m))
    return p, x, q


def straight_through_expectation(p, x, q, chunk=1 << 14):
    r"""Exact E[straight-through] = :math:`\sum_b q(b)\, (c + W^T(x - \sigma(W b + b_0))) \odot \pi(1-\pi)
    - \theta \pi (1 - \pi)`, enumerating the 2^m states (written here from the model's formula)."""
    m = q.dim
    pi = q.probs
    total = np.zeros(m)
    powers = 1 << np.arange(m)
    for start in range(0, 1 << m, chunk):
        B = ((np.arange(start, min(1 << m, start + chunk))[:, None] & powers) > 0).astype(np.float64)
        qb = np.prod(np.where(B > 0, pi, 1.0 - pi), axis=1)
        total += qb @ (p.c + (x - expit(B @ p.W.T + p.b)) @ p.W)
    return total * pi * (1 - pi) - q.params * pi * (1 - pi)


def agreement(a, truth=None, b=None):
    """max_j |z_j|: of mean(a) - truth (SE of a), or of mean(a) - mean(b) (SEs in quadrature)."""
    mean, se = a.mean(axis=0), a.std(axis=0, ddof=1) / np.sqrt(a.shape[0])
    if truth is not None:
        return float(np.max(np.abs(mean - truth) / se))
    se_b = b.std(axis=0, ddof=1) / np.sqrt(b.shape[0])
    return float(np.max(np.abs(mean - b.mean(axis=0)) / np.hypot(se, se_b)))


def replicates_for(K):
    return max(1, SAMPLES_PER_CALL // K)


def _implementations(p, x, q):
    import estimators
    from estimators.discrete_gradients import numpy_gradient

    return {
        "evidence-bench": lambda K, R, method, seed: estimators.gradient(p, x, q, K, R, method, seed=seed),
        "numpy": lambda K, R, method, seed: numpy_gradient(p, x, q, K, R, method, seed=seed),
    }


def run_section(repeats=5, progress=None, Ks=KS, methods=METHODS):
    """Check, then time, both implementations of every method at every K; returns (DataFrame, text)."""
    import pandas as pd

    import estimators

    from .peers import time_interleaved

    p, x, q = sbn_work()
    exact = p.elbo_grad(x, q)
    st_exact = straight_through_expectation(p, x, q) if "straight_through" in methods else None
    impls = _implementations(p, x, q)
    total = len(methods) * (len(impls) + len(Ks) * len(impls))
    done = 0
    rows = []
    for method in methods:
        estimators.warm_up(p, x, q, method)  # compile (or load) the serial and parallel kernels
        checks = {name: fn(CHECK_K, CHECK_R, method, 7 + i) for i, (name, fn) in enumerate(impls.items())}
        z = {}
        for name, g in checks.items():
            if method in ("arm", "disarm", "rebar"):
                z[name], against = agreement(g, truth=exact), "the exact gradient"
            elif method == "straight_through":
                z[name], against = agreement(g, truth=st_exact), "its exact expectation"
            else:
                other = checks["numpy" if name != "numpy" else "evidence-bench"]
                z[name], against = agreement(g, b=other), "the other implementation"
            done += 1
            if progress is not None:
                progress(done, total)
        for K in Ks:
            R = replicates_for(K)
            fns = [lambda fn=fn, K=K, R=R: fn(K, R, method, 1) for fn in impls.values()]  # timed in turns
            for name, seconds in zip(impls, time_interleaved(fns, rounds=repeats, min_seconds=0.0)):
                rows.append(dict(work=f"grad_sbn_{method}", method=method, implementation=name, size=K, K=K, R=R,
                                 seconds=seconds, samples_per_s=K * R / seconds, algorithm=ALGORITHMS[name],
                                 agreement_z=z[name], checked_against=against))
            done += len(impls)
            if progress is not None:
                progress(done, total)
    df = pd.DataFrame(rows)
    numpy_rate = df[df.implementation == "numpy"].set_index(["method", "size"]).samples_per_s.rename("numpy_rate")
    df = df.join(numpy_rate, on=["method", "size"])
    df["ratio"] = df.samples_per_s / df.numpy_rate
    return df.drop(columns="numpy_rate"), format_section(df)


def format_section(df):
    Ks = sorted(df["size"].unique())
    lines = ["samples/s, evidence-bench (ratio to numpy) | numpy; agreement max|z| over the 20 coordinates "
             f"(K={CHECK_K}, R={CHECK_R})",
             f"{'method':>17} " + " ".join(f"{'K=' + format(K, '.0e'):>30}" for K in Ks) + "   agreement (ours, numpy)"]
    for method, block in df.groupby("method", sort=False):
        cells = []
        for K in Ks:
            ours = block[(block["size"] == K) & (block.implementation == "evidence-bench")].iloc[0]
            peer = block[(block["size"] == K) & (block.implementation == "numpy")].iloc[0]
            cells.append(f"{ours.samples_per_s:9.3g} ({ours.ratio:4.1f}x) | {peer.samples_per_s:9.3g}")
        z_ours = block[block.implementation == "evidence-bench"].agreement_z.iloc[0]
        z_np = block[block.implementation == "numpy"].agreement_z.iloc[0]
        lines.append(f"{method:>17} " + " ".join(f"{c:>30}" for c in cells)
                     + f"   {z_ours:.2f}, {z_np:.2f} vs {block.checked_against.iloc[0]}")
    for name, text in ALGORITHMS.items():
        lines.append(f"  {name}: {text}")
    lines.append(f"threads: NUMBA_NUM_THREADS={os.environ.get('NUMBA_NUM_THREADS', 'default')}")
    return "\n".join(lines)
