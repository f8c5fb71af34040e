"""The estimator registry, the testing helpers and the pytest plugin (issue 11).

Expected values come from metrics computed by hand in the test (numpy on the
estimator's own output) and from the problems' exact answers."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
from scipy.special import logsumexp

import bench
import estimators
from bench.registry import EstimatorFailure, get_estimator, register_estimator, resolve_estimator, resolve_import
from bench.testing import assert_unbiased, measure
from problems import LinearGaussian

P = LinearGaussian.random(3, 2, seed=1)
X = P.sample(1, seed=2)[0]
Q = estimators.Gaussian(P.posterior(X).loc + 0.3, np.sqrt(np.diag(P.posterior(X).cov)) * 1.3)


def plain_is(p, x, q, K, R, seed):
    """Importance sampling in NumPy (an unbiased estimator of p(x))."""
    rng = np.random.default_rng(seed)
    out = np.empty(R)
    for r in range(R):
        z = q.sample(K, rng)
        out[r] = logsumexp(p.log_joint(x, z) - q.log_prob(z)) - np.log(K)
    return out


def biased_is(p, x, q, K, R, seed):
    return plain_is(p, x, q, K, R, seed) + 0.05


def test_measure_row_agrees_with_metrics_by_hand():
    row = measure(plain_is, P, X, Q, 50, 400, seed=3, target="log_marginal")
    est = plain_is(P, X, Q, 50, 400, 3)
    truth = P.log_marginal(X)
    assert row["truth"] == truth
    assert row["mean"] == pytest.approx(est.mean(), rel=1e-14)
    assert row["mean_se"] == pytest.approx(est.std(ddof=1) / math.sqrt(400), rel=1e-12)
    assert row["bias"] == pytest.approx(est.mean() - truth, rel=1e-12)
    assert row["variance"] == pytest.approx(est.var(ddof=1), rel=1e-12)
    assert row["mse"] == pytest.approx(np.mean((est - truth) ** 2), rel=1e-12)
    ratio = np.exp(est - truth)
    assert row["ratio_bias"] == pytest.approx(ratio.mean() - 1.0, rel=1e-10)
    assert row["ratio_bias_se"] == pytest.approx(ratio.std(ddof=1) / math.sqrt(400), rel=1e-10)
    assert row["kl"] == pytest.approx(P.kl(X, Q)) and row["elbo_exact"] == pytest.approx(P.elbo(X, Q))
    assert row["bias_pred"] == pytest.approx(-P.relative_weight_variance(X, Q) / 100)
    assert row["seconds"] > 0 and row["samples_per_s"] > 0


def test_assert_unbiased_passes_an_unbiased_and_fails_a_biased_estimator():
    z = assert_unbiased(plain_is, P, X, Q, 50, 2000, seed=4, target="log_marginal")
    assert abs(z) < 5
    with pytest.raises(AssertionError, match=r"biased_is: p_hat/p - 1 = .*z = "):
        assert_unbiased(biased_is, P, X, Q, 50, 2000, seed=4, target="log_marginal")


def test_assert_unbiased_elbo_and_gradients():
    assert abs(assert_unbiased("elbo", P, X, Q, 10, 2000, seed=5)) < 5
    t = assert_unbiased("gradient", P, X, Q, 10, 2000, seed=6, method="reparam", objective="elbo")
    assert np.all(np.abs(t) < 5)

    def shifted_gradient(p, x, q, K, R, seed):
        g = estimators.gradient(p, x, q, K, R, "reparam", "elbo", seed=seed)
        return g + np.r_[0.2, np.zeros(g.shape[1] - 1)]

    with pytest.raises(AssertionError, match=r"1 of 4 gradient coordinates .*\[0\] z = "):
        assert_unbiased(shifted_gradient, P, X, Q, 10, 2000, seed=6, target="elbo_grad")


def test_registration_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"^target: unknown target 'bogus'"):
        register_estimator("mine_bogus", plain_is, "bogus")
    register_estimator("mine_plain_is", plain_is, "log_marginal")
    with pytest.raises(ValueError, match=r"^name: an estimator 'mine_plain_is' is already registered"):
        register_estimator("mine_plain_is", biased_is, "log_marginal")
    register_estimator("mine_plain_is", plain_is, "log_marginal")  # the same function again: fine
    with pytest.raises(ValueError, match=r"^fn: 'short' must take"):
        register_estimator("short", lambda p, x: None, "elbo")
    with pytest.raises(ValueError, match=r"^estimator: cannot import module 'no_such_pkg.mod'"):
        resolve_estimator("no_such_pkg.mod:fn")
    with pytest.raises(ValueError, match=r"^estimator: module 'math' has no attribute 'nope'"):
        resolve_import("math:nope")
    with pytest.raises(ValueError, match=r"^estimator: unknown estimator 'nope'"):
        get_estimator("nope")


def test_decorator_and_import_string_resolve_to_one_entry():
    @bench.estimator("deco_is", target="log_marginal")
    def deco_is(p, x, q, K, R, seed):
        return plain_is(p, x, q, K, R, seed)

    entry = resolve_estimator(deco_is)
    assert entry.name == "deco_is" and entry.target == "log_marginal" and entry.origin == "user"
    assert resolve_estimator("deco_is") is entry
    assert resolve_estimator(f"{__name__}:plain_is", target="log_marginal").fn is plain_is
    assert get_estimator("importance_sampling").builtin


@pytest.mark.parametrize(
    "fn, kind, message",
    [
        (lambda p, x, q, K, R, seed: 1 / 0, "raised", r"^bad: raised ZeroDivisionError"),
        (lambda p, x, q, K, R, seed: np.zeros(R + 1), "shape", r"^bad: returned shape \(9,\), expected \(8,\)"),
        (lambda p, x, q, K, R, seed: np.full(R, np.nan), "nonfinite", r"^bad: returned NaN"),
        (lambda p, x, q, K, R, seed: np.full(R, np.inf), "nonfinite", r"^bad: returned inf"),
    ],
)
def test_a_failing_estimator_is_an_estimator_failure(fn, kind, message):
    register_estimator("bad", fn, "log_marginal", replace=True)
    with pytest.raises(EstimatorFailure, match=message) as info:
        get_estimator("bad").call(P, X, Q, 10, 8, 0)
    assert info.value.kind == kind


PLUGIN_TEST = '''
import numpy as np, pytest
from scipy.special import logsumexp
from problems import LinearGaussian

def plain_is(p, x, q, K, R, seed):
    rng = np.random.default_rng(seed)
    return np.array([logsumexp(p.log_joint(x, z) - q.log_prob(z)) - np.log(K)
                     for z in (q.sample(K, rng) for _ in range(R))])

p = LinearGaussian.random(3, 2, seed=1)
x = p.sample(1, seed=2)[0]

@pytest.mark.parametrize("K", [10, 100])
def test_plain_is(estimator_benchmark, K):
    row = estimator_benchmark(plain_is, p, x, p.prior(), K=K, R=100, target="log_marginal", label="lg", q_label="prior")
    assert abs(row["ratio_bias"]) < 5 * row["ratio_bias_se"]
'''


def test_pytest_plugin_in_a_users_repository(tmp_path):
    """A user's test file with the fixture, run by pytest in a fresh process:
    the rows reach pytest-benchmark's JSON and --evidence-out's table and report."""
    (tmp_path / "test_user.py").write_text(textwrap.dedent(PLUGIN_TEST))
    out = tmp_path / "evidence"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--benchmark-only",
           f"--benchmark-json={tmp_path / 'bm.json'}", f"--evidence-out={out}", "test_user.py"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "evidence-bench: 2 rows" in proc.stdout
    df = pd.read_parquet(out / "benchmarks.parquet")
    assert sorted(df.K) == [10, 100] and set(df.problem) == {"lg"} and df.user.all()
    assert (out / "report.html").is_file()
    extra = [b["extra_info"] for b in json.loads((tmp_path / "bm.json").read_text())["benchmarks"]]
    assert all("bias" in e and "ratio_bias_se" in e and e["target"] == "log_marginal" for e in extra)
