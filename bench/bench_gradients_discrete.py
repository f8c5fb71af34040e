"""Gradient estimators beyond the lecture, one pytest-benchmark group per family:

* ``gradient:discrete-unbiased`` -- score, score_loo, ARM, DisARM, REBAR for a
  Bernoulli q on ``SigmoidBeliefNet(m=12, D=64)`` (``bench.peers_discrete.sbn_work``;
  12 latent bits, so the exact answers enumerate 4096 states, not 2^20:
  ``python -m bench peers --sections discrete`` times m = 20);
* ``gradient:relaxed`` -- Gumbel-softmax (temperature 0.5) and straight-through
  on the same problem;
* ``gradient:continuous`` -- ``estimators.expectation_gradient`` of
  E_q[sum z^2] under a diagonal Gaussian q (d = 10): score, score_loo,
  reparam, measure_valued, score_cv.

Every timed call's result is checked (each coordinate's t within a Bonferroni
z over the coordinates, familywise 1e-3) against an exact answer: the
enumerated ELBO gradient for the unbiased methods, straight-through's exact
expectation (enumerated), and d/d(loc, log scale) E[sum z^2] = (2 loc,
2 scale^2).  Gumbel-softmax's expectation is a 12-dimensional integral, so it
is checked against the vectorised NumPy implementation of the same estimator
(``python -m bench peers --sections discrete`` times the two side by side).
"""

import numpy as np
import pytest

import estimators
from bench import metrics
from bench.peers_discrete import sbn_work, straight_through_expectation
from bench.suite import bonferroni_z, timed
from estimators import Gaussian
from estimators.discrete_gradients import numpy_gradient

DISCRETE_UNBIASED = ["score", "score_loo", "arm", "disarm", "rebar"]
RELAXED = ["gumbel_softmax", "straight_through"]
CONTINUOUS = ["score", "score_loo", "reparam", "measure_valued", "score_cv"]
TEMPERATURE = 0.5
M = 12
PROBLEM = f"SigmoidBeliefNet({M}, 64)"

_STATE = {}


def _sbn():
    if not _STATE:
        p, x, q = sbn_work(m=M)
        _STATE.update(p=p, x=x, q=q, exact=p.elbo_grad(x, q))
    return _STATE


def _sizes(suite):
    """(K, R, rounds): 32000 samples per call, 3 timed rounds under --benchmark-only, 1 otherwise."""
    return 500, 64, (3 if suite.mode == "full" else 1)


def _check(g, truth, truth_se=None):
    t = metrics.bias_t(g, truth, truth_se)
    assert np.all(np.isfinite(g))
    assert np.max(np.abs(t)) < bonferroni_z(g.shape[1]), t


@pytest.mark.parametrize("method", DISCRETE_UNBIASED)
def test_discrete_unbiased(benchmark, suite, method):
    s = _sbn()
    K, R, rounds = _sizes(suite)
    benchmark.group = "gradient:discrete-unbiased"
    g = timed(benchmark, lambda: estimators.gradient(s["p"], s["x"], s["q"], K, R, method, seed=3), rounds=rounds,
              samples=K * R, K=K, R=R, method=method, problem=PROBLEM)
    _check(g, s["exact"])


@pytest.mark.parametrize("method", RELAXED)
def test_relaxed(benchmark, suite, method):
    s = _sbn()
    K, R, rounds = _sizes(suite)
    options = {"temperature": TEMPERATURE} if method == "gumbel_softmax" else {}
    benchmark.group = "gradient:relaxed"
    g = timed(benchmark, lambda: estimators.gradient(s["p"], s["x"], s["q"], K, R, method, seed=4, **options),
              rounds=rounds, samples=K * R, K=K, R=R, method=method, problem=PROBLEM, **options)
    if method == "straight_through":
        _check(g, straight_through_expectation(s["p"], s["x"], s["q"]))
    else:  # the same estimator vectorised in NumPy, other draws
        ref = numpy_gradient(s["p"], s["x"], s["q"], K, R, method, seed=5, **options)
        _check(g, ref.mean(axis=0), ref.std(axis=0, ddof=1) / np.sqrt(R))


def _square(z):
    return np.sum(z * z, axis=1)


def _square_grad(z):
    return 2.0 * z


def _square_hess(z):
    return np.broadcast_to(2.0 * np.eye(z.shape[1]), (z.shape[0], z.shape[1], z.shape[1])).copy()


@pytest.mark.parametrize("method", CONTINUOUS)
def test_continuous(benchmark, suite, method):
    rng = np.random.default_rng(0)
    loc, scale = rng.normal(size=10), rng.uniform(0.5, 1.5, 10)
    q = Gaussian(loc, scale)
    K, R, rounds = 1000, 32, (3 if suite.mode == "full" else 1)
    kwargs = {}
    if method in ("reparam", "score_cv"):
        kwargs["grad_f"] = _square_grad
    if method == "score_cv":
        kwargs["hess_f"] = _square_hess
    benchmark.group = "gradient:continuous"
    g = timed(benchmark, lambda: estimators.expectation_gradient(_square, q, K, R, method, seed=6, **kwargs),
              rounds=rounds, samples=K * R, K=K, R=R, method=method, f="sum z^2", q="Gaussian(d=10)")
    exact = np.concatenate([2.0 * loc, 2.0 * scale**2])
    if method == "score_cv":  # exact for a quadratic f: the control variate is f itself (zero variance)
        np.testing.assert_allclose(g, np.broadcast_to(exact, g.shape), rtol=1e-9, atol=1e-9)
    else:
        _check(g, exact)


# ---------------------------------------------------------------- the sweep's discrete gradient cells

UNBIASED_IN_SWEEP = ("score", "score_loo", "arm", "disarm", "rebar")


def _sweep_rows(suite):
    df = suite.table()
    rows = df[(df["estimator"] == "gradient") & (df["problem"] == "sbn")]
    if rows.empty:
        pytest.skip(f"{suite.config.name}: no SigmoidBeliefNet gradient cells")
    return rows


def test_sweep_discrete_gradients_unbiased(benchmark, suite):
    """In the sweep: every unbiased binary-latent method (REBAR at every temperature) has its largest
    bias t-statistic over cells x coordinates below the Bonferroni z*, against the exact p.elbo_grad.
    Times that exact reference (enumeration)."""
    rows = _sweep_rows(suite)
    unbiased = rows[rows["method"].isin(UNBIASED_IN_SWEEP)]
    p, x = suite.problem("sbn")
    from bench.presets import make_q

    q = make_q(p, x, unbiased["q"].iloc[0])
    benchmark.pedantic(p.elbo_grad, args=(x, q), rounds=5, iterations=1)
    zstar = bonferroni_z(int(unbiased["n_params"].sum()))
    worst = unbiased.loc[unbiased["bias_t_max"].idxmax()]
    benchmark.extra_info.update(cells=len(unbiased), z_star=zstar, max_t=float(worst["bias_t_max"]))
    assert worst["bias_t_max"] < zstar, worst[["q", "method", "K", "options", "bias_t_max"]].to_dict()


def test_sweep_relaxations_biased(benchmark, suite):
    """In the sweep: Gumbel-softmax at temperature 2 and straight-through are measurably biased at the
    largest K (bias t-statistic above the Bonferroni z*: the harness's test has power here)."""
    rows = _sweep_rows(suite)
    top = rows[rows["K"] == rows["K"].max()]
    biased = top[((top["method"] == "gumbel_softmax") & (top["temperature"] == 2.0))
                 | (top["method"] == "straight_through")]
    assert len(biased) >= 2
    zstar = bonferroni_z(int(rows["n_params"].sum()))
    t = benchmark.pedantic(lambda: biased["bias_t_max"].to_numpy(float), rounds=1, iterations=1)
    benchmark.extra_info.update(z_star=zstar, t=[float(v) for v in t])
    assert (t > zstar).all(), biased[["q", "method", "options", "bias_t_max"]].to_dict()
