"""What k-hat costs: ``weight_stats`` (sums + each replicate's M + 1 largest
log-weights, M = ceil(min(K/5, 3 sqrt K))) and its ``.khat`` fit, beside the
plain ``importance_sampling`` pass over the same draws.

One pytest-benchmark group per (problem, K), ``khat-overhead:<problem>:K=<K>``,
so ``--benchmark-compare`` shows the ratio; issue 12 asks for at most +30 % at
K = 1e6.  Every timed call's numbers are checked: the k-hat path's log p̂
(from its sums) equals ``importance_sampling``'s bit for bit, and the fitted
k-hat equals ``psis.pareto_khat`` of the raw ``log_weights`` of replicate 0.
"""

import numpy as np
import pytest

import estimators
from bench.presets import make_q
from bench.suite import timed
from estimators import psis

CALLS = {
    "importance_sampling": lambda p, x, q, K, R: estimators.importance_sampling(p, x, q, K, R, seed=3),
    "weight_stats": lambda p, x, q, K, R: estimators.weight_stats(p, x, q, K, R, seed=3),
    "weight_stats+khat": lambda p, x, q, K, R: estimators.weight_stats(p, x, q, K, R, seed=3).khat,
}


def _sizes(suite):
    """(K, R, rounds): K = 1e6 under --benchmark-only, 1e4 in smoke mode."""
    return (1_000_000, 4, 5) if suite.mode == "full" else (10_000, 4, 1)


@pytest.mark.parametrize("call", list(CALLS))
@pytest.mark.parametrize("problem", ["lg", "gm"])
def test_khat_overhead(benchmark, suite, problem, call):
    p, x = suite.problem(problem)
    q = make_q(p, x, "shift:1")
    K, R, rounds = _sizes(suite)
    benchmark.group = f"khat-overhead:{problem}:K={K:g}"
    out = timed(benchmark, lambda: CALLS[call](p, x, q, K, R), rounds=rounds, samples=K * R, K=K, R=R, call=call)
    plain = estimators.importance_sampling(p, x, q, K, R, seed=3)
    stats = estimators.weight_stats(p, x, q, K, R, seed=3)
    assert np.array_equal(stats.log_p_hat, plain)
    if call == "weight_stats+khat":
        assert out.shape == (R,)
        ref = psis.pareto_khat(estimators.log_weights(p, x, q, K, seed=3))
        assert out[0] == pytest.approx(ref, abs=1e-12)
