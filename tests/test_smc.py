"""The particle filter against the Kalman filter and the forward algorithm.

Every truth here is independent of the code under test: log p(x) from the
Kalman filter / forward algorithm (themselves checked against scipy and
enumeration in test_state_space.py), E_prior[log p(x | z)] in closed form
(the ELBO of the prior path) or by enumerating every HMM path, and the
offspring counts of a resampling against N W_i.  Statistical checks use
fixed seeds and |estimate - truth| < 5 SE with the SE from the data.
"""

import importlib
import itertools
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from scipy.special import logsumexp

import estimators
from estimators._kernels.sequential import resample as rs
from problems import HiddenMarkov, LinearGaussian, LinearGaussianStateSpace

smc_module = importlib.import_module("estimators.smc")  # the module; estimators.smc is the function
SCHEMES = ["multinomial", "stratified", "systematic", "residual"]


@pytest.fixture(scope="module")
def lgss():
    p = LinearGaussianStateSpace.random(2, 2, 20, seed=1)
    x = p.sample(1, seed=2)[0]
    return p, x, p.log_marginal(x)


@pytest.fixture(scope="module")
def hmm():
    h = HiddenMarkov.random(3, 2, 30, seed=0)
    x = h.sample(1, seed=1)[0]
    return h, x, h.log_marginal(x)


class Wrapped:
    """A plain user class forwarding the state-space protocol: runs on the generic path."""

    def __init__(self, p, optimal=True):
        self.p = p
        self.T, self.state_dim, self.emission_dim, self.obs_dim = p.T, p.state_dim, p.emission_dim, p.obs_dim
        if optimal and hasattr(p, "optimal_sample"):
            self.optimal_initial_sample = p.optimal_initial_sample
            self.optimal_sample = p.optimal_sample

    def initial_sample(self, n, rng):
        return self.p.initial_sample(n, rng)

    def transition_sample(self, t, z, rng):
        return self.p.transition_sample(t, z, rng)

    def emission_log_prob(self, t, z, x_t):
        return self.p.emission_log_prob(t, z, x_t)


def assert_unbiased(log_z, truth, z=5.0):
    ratio = np.exp(log_z - truth)
    se = ratio.std(ddof=1) / np.sqrt(ratio.size)
    assert abs(ratio.mean() - 1.0) < z * se, f"Z_hat/p(x) = {ratio.mean():.4f} +- {se:.4f}"
    return ratio.mean(), se


# --------------------------------------------------------------------------- unbiasedness


@pytest.mark.parametrize("proposal", ["bootstrap", "optimal"])
@pytest.mark.parametrize("scheme", SCHEMES)
def test_lgss_evidence_unbiased(lgss, proposal, scheme):
    p, x, truth = lgss
    seed = 10 * SCHEMES.index(scheme) + (proposal == "optimal")
    log_z = estimators.smc(p, x, 100, 2000, seed=seed, proposal=proposal, resampling=scheme)
    assert log_z.shape == (2000,) and np.all(np.isfinite(log_z))
    assert_unbiased(log_z, truth)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_hmm_evidence_unbiased(hmm, scheme):
    h, x, truth = hmm
    assert_unbiased(estimators.smc(h, x, 100, 2000, seed=SCHEMES.index(scheme), resampling=scheme), truth)


@pytest.mark.parametrize("threshold", [0.0, 0.3, 1.0])
def test_unbiased_for_any_threshold(lgss, hmm, threshold):
    p, x, truth = lgss
    N = 2000 if threshold == 0 else 50  # without resampling the weights degenerate; more particles
    assert_unbiased(estimators.smc(p, x, N, 1000, seed=3, ess_threshold=threshold), truth)
    h, xh, th = hmm
    assert_unbiased(estimators.smc(h, xh, N, 1000, seed=4, ess_threshold=threshold, resampling="stratified"), th)


@pytest.mark.parametrize("proposal", ["bootstrap", "optimal"])
def test_generic_path_unbiased(lgss, hmm, proposal):
    p, x, truth = lgss
    assert_unbiased(estimators.smc(Wrapped(p), x, 64, 400, seed=5, proposal=proposal, resampling="residual"), truth)
    if proposal == "bootstrap":
        h, xh, th = hmm
        assert_unbiased(estimators.smc(Wrapped(h), xh, 64, 400, seed=6, resampling="multinomial"), th)


# --------------------------------------------------------------------------- N = 1: importance sampling


def test_one_particle_without_resampling_is_importance_sampling_with_the_prior_path(lgss):
    """The same normals in the same order: SMC (N=1, no resampling) and IS with
    q = the stacked prior path, K = 1, agree draw for draw to rounding."""
    p, x, _ = lgss
    for seed in (0, 7):
        a = estimators.smc(p, x, 1, 300, seed=seed, ess_threshold=0.0)
        b = estimators.importance_sampling(p, x, p.prior(), 1, 300, seed=seed)
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-9 * np.abs(b).max())
    # and E[log Z_hat] there is E_prior[log p(x | z)] = ELBO(prior), in closed form
    a = estimators.smc(p, x, 1, 4000, seed=1, ess_threshold=0.0)
    assert abs(a.mean() - p.elbo(x, p.prior())) < 5 * a.std(ddof=1) / np.sqrt(a.size)


def test_one_particle_hmm_matches_enumerated_prior_expectation():
    h = HiddenMarkov.random(2, 1, 6, seed=3)
    x = h.sample(1, seed=4)[0]
    paths = np.array(list(itertools.product(range(2), repeat=6)))
    prior = np.exp(h.prior().log_prob(paths))
    log_lik = h.log_joint(x, paths) - h.prior().log_prob(paths)
    for model in (h, Wrapped(h)):
        a = estimators.smc(model, x, 1, 4000, seed=2, ess_threshold=0.0)
        assert abs(a.mean() - prior @ log_lik) < 5 * a.std(ddof=1) / np.sqrt(a.size)
        assert abs(logsumexp(a) - np.log(a.size) - h.log_marginal(x)) < 5 * np.exp(a - h.log_marginal(x)).std() / np.sqrt(a.size)


# --------------------------------------------------------------------------- the laws


def test_log_bias_is_minus_half_the_variance_at_large_n():
    p = LinearGaussianStateSpace.random(2, 2, 50, seed=4)
    x = p.sample(1, seed=5)[0]
    truth = p.log_marginal(x)
    L = estimators.smc(p, x, 100, 4000, seed=8)
    m, v = L.mean(), L.var(ddof=1)
    # the influence function of g = mean - truth + var/2 gives its SE
    psi = (L - m) + 0.5 * ((L - m) ** 2 - v)
    se = psi.std(ddof=1) / np.sqrt(L.size)
    g = m - truth + 0.5 * v
    assert abs(g) < 5 * se, f"bias {m - truth:.4f} vs -Var/2 {-0.5 * v:.4f} (SE of the difference {se:.4f})"
    # and the test has power: the bias itself is many SEs from zero
    assert (truth - m) > 5 * L.std(ddof=1) / np.sqrt(L.size)


def test_optimal_proposal_has_lower_variance_than_bootstrap():
    rng = np.random.default_rng(0)
    s = 2
    A = 0.8 * np.linalg.qr(rng.normal(size=(s, s)))[0]
    p = LinearGaussianStateSpace(A, np.eye(s), np.eye(s), 0.1 * np.eye(s), np.zeros(s), np.eye(s), 30)
    x = p.sample(1, seed=1)[0]

    def var_and_se(L):
        v = L.var(ddof=1)
        return v, np.sqrt((np.mean((L - L.mean()) ** 4) - v**2) / L.size)

    vb, sb = var_and_se(estimators.smc(p, x, 100, 2000, seed=1, proposal="bootstrap"))
    vo, so = var_and_se(estimators.smc(p, x, 100, 2000, seed=2, proposal="optimal"))
    assert vb - vo > 5 * np.hypot(sb, so), (vb, sb, vo, so)


def test_threshold_controls_resampling(lgss):
    p, x, _ = lgss
    T = p.T
    counts = {th: smc_module._run(p, x, 50, 40, seed=1, ess_threshold=th)[:, 1] for th in (0.0, 0.3, 0.7, 1.0)}
    assert np.all(counts[0.0] == 0)
    assert np.all(counts[1.0] == T - 1)
    assert 0 < counts[0.3].mean() < counts[0.7].mean() < T - 1


# --------------------------------------------------------------------------- resampling schemes


@pytest.mark.parametrize("scheme", SCHEMES)
def test_resampling_offspring_counts_are_n_times_the_weights(scheme):
    rng = np.random.default_rng(0)
    N = 7
    lw = np.log(rng.dirichlet(np.ones(N) * 0.7))
    lw[3] = -np.inf  # a dead particle is never drawn
    W = np.exp(lw - logsumexp(lw))
    reps = 20000
    counts = np.empty((reps, N))
    anc = np.empty(N, dtype=np.int64)
    cum = np.empty(N)
    code = smc_module.RESAMPLING[scheme]
    w = 3.0 * np.exp(lw - lw.max())  # unnormalised; the dead particle has weight exactly 0
    for i in range(reps):
        rs.ancestors(code, w, rng.random(N + 1), anc, cum)
        counts[i] = np.bincount(anc, minlength=N)
    assert np.all(counts.sum(axis=1) == N)
    assert np.all(counts[:, 3] == 0)
    mean, se = counts.mean(axis=0), counts.std(axis=0, ddof=1) / np.sqrt(reps)
    live = W > 0
    assert np.all(np.abs(mean[live] - N * W[live]) < 5 * se[live] + 1e-12)
    if scheme in ("systematic", "residual"):
        assert np.all(counts >= np.floor(N * W))
    if scheme == "systematic":
        assert np.all(counts <= np.ceil(N * W))


def test_all_weights_zero_gives_minus_infinity():
    class Dead(Wrapped):
        def emission_log_prob(self, t, z, x_t):
            return np.full(z.shape[0], -np.inf if t == 3 else 0.0)

    p = LinearGaussianStateSpace.random(1, 1, 6, seed=0)
    out = estimators.smc(Dead(p), np.zeros(6), 10, 3, seed=0)
    assert np.all(out == -np.inf)


# --------------------------------------------------------------------------- reproducibility


def test_reproducible_and_replicates_independent_of_r(lgss, hmm):
    p, x, _ = lgss
    a = estimators.smc(p, x, 100, 500, seed=3, proposal="optimal")
    np.testing.assert_array_equal(a, estimators.smc(p, x, 100, 500, seed=3, proposal="optimal"))
    np.testing.assert_array_equal(a[:7], estimators.smc(p, x, 100, 7, seed=3, proposal="optimal"))
    assert not np.array_equal(a, estimators.smc(p, x, 100, 500, seed=4, proposal="optimal"))
    # (T, obs_dim) input is the same series
    np.testing.assert_array_equal(a[:7], estimators.smc(p, x.reshape(p.T, -1), 100, 7, seed=3, proposal="optimal"))
    w = estimators.smc(Wrapped(p), x, 20, 5, seed=3)
    np.testing.assert_array_equal(w, estimators.smc(Wrapped(p), x, 20, 5, seed=3))


def test_bit_identical_for_any_thread_count(tmp_path):
    script = textwrap.dedent(
        """
        import sys, numpy as np, estimators
        from problems import HiddenMarkov, LinearGaussianStateSpace
        p = LinearGaussianStateSpace.random(2, 2, 20, seed=1); x = p.sample(1, seed=2)[0]
        h = HiddenMarkov.random(3, 2, 30, seed=0); xh = h.sample(1, seed=1)[0]
        out = np.concatenate([
            estimators.smc(p, x, 100, 64, seed=1),
            estimators.smc(p, x, 100, 64, seed=1, proposal="optimal", resampling="multinomial"),
            estimators.smc(h, xh, 100, 64, seed=1, resampling="residual", ess_threshold=0.8),
        ])
        np.save(sys.argv[1], out)
        """
    )
    outs = []
    for threads in (1, 2):
        path = tmp_path / f"out{threads}.npy"
        env = {**os.environ, "NUMBA_NUM_THREADS": str(threads)}
        subprocess.run([sys.executable, "-c", script, str(path)], check=True, env=env, timeout=300)
        outs.append(np.load(path))
    assert outs[0].tobytes() == outs[1].tobytes()


def test_long_series_runs_in_flat_memory():
    """T = 3000 with N = 200: the filter keeps only the current particles."""
    p = LinearGaussianStateSpace.random(2, 2, 3000, seed=0)
    x = p.sample(1, seed=1)[0]
    out = estimators.smc(p, x, 200, 2, seed=0, proposal="optimal")
    assert np.all(np.isfinite(out)) and np.all(np.abs(out - p.log_marginal(x)) < 30)


# --------------------------------------------------------------------------- bad input


def test_bad_input_names_the_argument(lgss, hmm):
    p, x, _ = lgss
    h, xh, _ = hmm
    cases = [
        (dict(N=0), "^N:"),
        (dict(N=2.5), "^N:"),
        (dict(N=10**9), "^N:"),  # 144 GB per replicate
        (dict(R=0), "^R:"),
        (dict(seed=-1), "^seed:"),
        (dict(proposal="guided"), "^proposal:"),
        (dict(resampling="branching"), "^resampling:"),
        (dict(ess_threshold=-0.1), "^ess_threshold:"),
        (dict(ess_threshold=1.5), "^ess_threshold:"),
        (dict(ess_threshold=float("nan")), "^ess_threshold:"),
        (dict(ess_threshold="0.5"), "^ess_threshold:"),
    ]
    for kwargs, pattern in cases:
        call = {"N": 10, "R": 2, **{k: v for k, v in kwargs.items() if k in ("N", "R")}}
        rest = {k: v for k, v in kwargs.items() if k not in ("N", "R")}
        with pytest.raises(ValueError, match=pattern):
            estimators.smc(p, x, call["N"], call["R"], **rest)
    with pytest.raises(ValueError, match='^proposal: "optimal"'):
        estimators.smc(h, xh, 10, 2, proposal="optimal")
    with pytest.raises(ValueError, match='^proposal: "optimal"'):
        estimators.smc(Wrapped(p, optimal=False), x, 10, 2, proposal="optimal")
    with pytest.raises(ValueError, match="^x:"):
        estimators.smc(p, x[:-1], 10, 2)
    q = LinearGaussian.random(3, 2, seed=0)
    with pytest.raises(ValueError, match="^p.T:"):
        estimators.smc(q, q.sample(1)[0], 10, 2)

    class BadShape(Wrapped):
        def transition_sample(self, t, z, rng):
            return z[:-1]

    with pytest.raises(ValueError, match="^p.transition_sample:"):
        estimators.smc(BadShape(p), x, 10, 2)
