"""Throughput of the compiled kernels, timed by pytest-benchmark.

Each call draws K*R samples (a fixed budget, so R = budget / K); the first
call (numba compilation) is made before the timed rounds.  Each test also
checks the numbers it timed against exact answers: the ELBO estimate is
unbiased for ELBO(q) at every K and p_hat/p for 1, both within 4 SE.
"""

import math

import numpy as np
import pytest

import estimators
from bench import metrics
from bench.presets import make_q
from bench.suite import TOLERANCE_SE, bonferroni_z, timed

PROBLEMS = ["lg", "gm"]
KS = [100, 10_000, 1_000_000]
GRADIENTS = [
    ("lg", m, o) for m in ("score", "score_loo", "reparam", "stl", "dreg") for o in ("elbo", "iwae")
] + [("gm", m, o) for m in ("score", "score_loo") for o in ("elbo", "iwae")]


def _sizes(suite, K):
    """(R, rounds): K*R = 2e6 samples per call under --benchmark-only, 2e4 in smoke mode."""
    if suite.mode == "full":
        return max(20, 2_000_000 // K), 5
    if K > 10_000:
        pytest.skip("smoke mode (plain pytest): K = 1e6 runs only under --benchmark-only")
    return max(20, 20_000 // K), 1


@pytest.mark.parametrize("K", KS)
@pytest.mark.parametrize("estimator", ["importance_sampling", "elbo"])
@pytest.mark.parametrize("problem", PROBLEMS)
def test_log_weight_kernel(benchmark, suite, problem, estimator, K):
    """estimators.importance_sampling / estimators.elbo at q = shift:1."""
    p, x = suite.problem(problem)
    q = make_q(p, x, "shift:1")
    R, rounds = _sizes(suite, K)
    fn = getattr(estimators, estimator)
    est = timed(benchmark, lambda: fn(p, x, q, K, R, seed=11), rounds=rounds, samples=K * R, K=K, R=R, q="shift:1")
    assert est.shape == (R,) and np.isfinite(est).all()
    assert np.array_equal(est, fn(p, x, q, K, R, seed=11))  # same seed, same bits
    if estimator == "elbo":
        mean, se = metrics.mean_se(est)
        assert abs(mean - p.elbo(x, q)) < TOLERANCE_SE * se
    else:
        rb, se = metrics.ratio_bias(est, p.log_marginal(x))
        assert abs(rb) < TOLERANCE_SE * se


@pytest.mark.parametrize("problem,method,objective", GRADIENTS)
def test_gradient_kernel(benchmark, suite, problem, method, objective):
    """estimators.gradient at K = 100, q = meanfield+shift:1; for the elbo
    objective the mean is checked against p.elbo_grad (every coordinate
    within a Bonferroni z over the coordinates, familywise 1e-3)."""
    from bench.suite import bonferroni_z

    p, x = suite.problem(problem)
    q = make_q(p, x, "meanfield+shift:1")
    K = 100
    R, rounds = _sizes(suite, K)
    g = timed(benchmark, lambda: estimators.gradient(p, x, q, K, R, method, objective, seed=5), rounds=rounds,
              samples=K * R, K=K, R=R, q="meanfield+shift:1")
    assert g.shape == (R, len(q.params)) and np.isfinite(g).all()
    if objective == "elbo":
        t = metrics.bias_t(g, p.elbo_grad(x, q))
        assert np.max(np.abs(t)) < bonferroni_z(g.shape[1]), t
    assert math.isfinite(float(np.mean(g)))
