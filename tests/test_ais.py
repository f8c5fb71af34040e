"""Annealed importance sampling and the BDMC upper bound against exact evidence.

Truths: LinearGaussian's and LinearGaussianStateSpace's closed-form log p(x),
GaussianMixture's exact marginal, and the closed-form tempered densities of
the linear-Gaussian model (for the invariance of the MCMC kernels).  Fixed
seeds; |estimate - truth| < 5 SE with the SE from the data.
"""

import importlib

import numpy as np
import pytest

import estimators
from problems import GaussianMixture, HiddenMarkov, LinearGaussian, LinearGaussianStateSpace

ais_module = importlib.import_module("estimators.ais")  # the module; estimators.ais is the function


class LinearGaussianWithGradient(LinearGaussian):
    """LinearGaussian plus grad_log_joint (written here: -z + W^T Psi^-1 (x - b - W z))."""

    def grad_log_joint(self, x, z):
        return -z + ((x - self.b - z @ self.W.T) / self.psi) @ self.W


@pytest.fixture(scope="module")
def lg():
    p = LinearGaussianWithGradient.random(5, 2, seed=0)
    x = p.sample(1, seed=1)[0]
    return p, x, p.log_marginal(x)


def ratio_mean_se(log_z, truth):
    r = np.exp(log_z - truth)
    return r.mean(), r.std(ddof=1) / np.sqrt(r.size)


def mean_se(a):
    return a.mean(), a.std(ddof=1) / np.sqrt(a.size)


# --------------------------------------------------------------------------- unbiased in Z


@pytest.mark.parametrize("kernel", ["hmc", "mh", "independence"])
@pytest.mark.parametrize("schedule", ["geometric", "linear", "sigmoid"])
def test_forward_estimate_unbiased(lg, kernel, schedule):
    p, x, truth = lg
    prob = p if kernel == "hmc" else LinearGaussian(p.W, p.b, p.psi)
    est = estimators.ais(prob, x, 4, 300, 10, seed=3, kernel=kernel, schedule=schedule)
    assert est.shape == (300,) and np.all(np.isfinite(est))
    m, se = ratio_mean_se(est, truth)
    assert abs(m - 1) < 5 * se, (m, se)


def test_forward_unbiased_on_state_space_and_categorical_problems():
    q = LinearGaussianStateSpace.random(2, 2, 5, seed=0)  # has grad_log_joint; latent_dim 10
    xq = q.sample(1, seed=1)[0]
    m, se = ratio_mean_se(estimators.ais(q, xq, 2, 300, 30, seed=1, kernel="hmc"), q.log_marginal(xq))
    assert abs(m - 1) < 5 * se, (m, se)
    g = GaussianMixture([0.3, 0.7], [[-1.0, 0.0], [2.0, 1.0]], [np.eye(2), 0.5 * np.eye(2)])
    xg = np.array([0.5, 0.5])
    m, se = ratio_mean_se(estimators.ais(g, xg, 2, 400, 5, seed=2, kernel="independence"), g.log_marginal(xg))
    assert abs(m - 1) < 5 * se, (m, se)


def test_one_step_is_importance_sampling_with_the_prior(lg):
    """steps = 1: no transition, w = p(x | z), z ~ prior: E[log w] = ELBO(prior), exactly known."""
    p, x, _ = lg
    est, acc = ais_module._ais(p, x, 1, 3000, 1, seed=5)
    assert np.all(acc == 0)
    m, se = mean_se(est)
    assert abs(m - p.elbo(x, p.prior())) < 5 * se


# --------------------------------------------------------------------------- BDMC sandwich


def test_bdmc_sandwich_closes_as_steps_grow(lg):
    p, x, truth = lg
    gaps = []
    for steps in (3, 15, 80):
        lower = estimators.ais(p, x, 1, 600, steps, seed=steps, kernel="hmc")
        upper = estimators.ais(p, x, 1, 600, steps, seed=1000 + steps, kernel="hmc", reverse=True)
        (ml, sl), (mu, su) = mean_se(lower), mean_se(upper)
        assert ml - truth < 5 * sl, "the forward estimate is a stochastic lower bound"
        assert mu - truth > -5 * su, "the reverse estimate is a stochastic upper bound"
        gaps.append((mu - ml, np.hypot(sl, su)))
    for (g1, s1), (g2, s2) in zip(gaps, gaps[1:]):
        assert g1 - g2 > 5 * np.hypot(s1, s2), gaps
    assert gaps[0][0] > 5 * gaps[0][1]  # the gap is real at few steps


def test_variance_falls_with_steps(lg):
    p, x, _ = lg

    def var_se(a):
        v = a.var(ddof=1)
        return v, np.sqrt((np.mean((a - a.mean()) ** 4) - v**2) / a.size)

    v1, s1 = var_se(estimators.ais(p, x, 1, 800, 4, seed=1, kernel="hmc"))
    v2, s2 = var_se(estimators.ais(p, x, 1, 800, 40, seed=2, kernel="hmc"))
    assert v1 - v2 > 5 * np.hypot(s1, s2), (v1, s1, v2, s2)


# --------------------------------------------------------------------------- the kernels leave f_beta invariant


@pytest.mark.parametrize("kernel", ["hmc", "mh", "independence"])
def test_transitions_leave_the_tempered_density_invariant(lg, kernel):
    r"""f_beta(z) = N(z; 0, I) N(x; W z + b, Psi)^beta is Gaussian with precision
    P = I + beta W^T Psi^-1 W and mean P^-1 beta W^T Psi^-1 (x - b): start there,
    run transitions, and the draws keep those moments."""
    p, x, _ = lg
    beta = 0.4
    P = np.eye(2) + beta * (p.W.T / p.psi) @ p.W
    cov = np.linalg.inv(P)
    mean = cov @ (beta * p.W.T @ ((x - p.b) / p.psi))
    n = 20000
    batch = ais_module._Batch([(0, 0, n)], key=12345)
    z = mean + batch.normal(2) @ np.linalg.cholesky(cov).T
    target = ais_module._Target(p, x, p.prior(), kernel == "hmc")
    lp, lj = target.values(z)
    gp, gj = target.grads(z)
    state = (z, lp, lj, gp, gj)
    step = {"hmc": 0.5, "mh": 0.8, "independence": None}[kernel]
    rate = 0.0
    for _ in range(10):
        state, acc = ais_module._transition(kernel, batch, target, state, beta, step, 5, p)
        rate += acc.mean() / 10
    assert 0.2 < rate < 0.999  # the kernel moves, and sometimes rejects
    zs = state[0]
    se_mean = np.sqrt(np.diag(cov) / n)
    assert np.all(np.abs(zs.mean(axis=0) - mean) < 5 * se_mean)
    emp = np.cov(zs.T)
    se_cov = np.sqrt((cov**2 + np.outer(np.diag(cov), np.diag(cov))) / n)
    assert np.all(np.abs(emp - cov) < 5 * se_cov)


# --------------------------------------------------------------------------- schedules, layout, reproducibility


def test_schedules():
    for name in ("geometric", "linear", "sigmoid"):
        b = ais_module.annealing_schedule(name, 7)
        assert b.shape == (8,) and b[0] == 0 and b[-1] == 1 and np.all(np.diff(b) > 0)
    np.testing.assert_allclose(ais_module.annealing_schedule("geometric", 4)[1:], 10.0 ** (-4 * (1 - np.arange(1, 5) / 4)))
    np.testing.assert_array_equal(ais_module.annealing_schedule([0, 0.2, 1], 2), [0, 0.2, 1])


def test_reproducible_and_independent_of_r_and_batching(lg, monkeypatch):
    p, x, _ = lg
    a = estimators.ais(p, x, 5, 40, 6, seed=9)
    np.testing.assert_array_equal(a, estimators.ais(p, x, 5, 40, 6, seed=9))
    np.testing.assert_array_equal(a[:3], estimators.ais(p, x, 5, 3, 6, seed=9))
    assert not np.array_equal(a, estimators.ais(p, x, 5, 40, 6, seed=10))
    monkeypatch.setattr(ais_module, "BATCH_CHAINS", 7)  # one unit per batch: the same numbers
    np.testing.assert_array_equal(a, estimators.ais(p, x, 5, 40, 6, seed=9))
    # chains beyond one chunk: several units per replicate, combined in order
    monkeypatch.setattr(ais_module, "CHAIN_CHUNK", 2)
    b = estimators.ais(p, x, 5, 4, 6, seed=9)
    assert np.all(np.isfinite(b)) and not np.array_equal(a[:4], b)


# --------------------------------------------------------------------------- bad input


def test_bad_input_names_the_argument(lg):
    p, x, _ = lg
    class NoGradient:
        """A user model with no grad_log_joint (LinearGaussian itself now has one)."""

        obs_dim, latent_dim, latent_type = p.obs_dim, p.latent_dim, "continuous"
        log_joint, log_marginal, prior = p.log_joint, p.log_marginal, p.prior

    base = NoGradient()
    cases = [
        (lambda: estimators.ais(p, x, 0, 2, 3), "^K:"),
        (lambda: estimators.ais(p, x, 2, 0, 3), "^R:"),
        (lambda: estimators.ais(p, x, 2, 2, 0), "^steps:"),
        (lambda: estimators.ais(p, x, 2, 2, 3, kernel="gibbs"), "^kernel:"),
        (lambda: estimators.ais(p, x, 2, 2, 3, schedule="cosine"), "^schedule:"),
        (lambda: estimators.ais(p, x, 2, 2, 3, schedule=[0, 0.5, 1]), "^schedule:"),
        (lambda: estimators.ais(p, x, 2, 2, 2, schedule=[0, 0.7, 0.9]), "^schedule:"),
        (lambda: estimators.ais(p, x, 2, 2, 3, schedule=[0, 0.7, 0.5, 1]), "^schedule:"),
        (lambda: estimators.ais(p, x, 2, 2, 3, reverse="yes"), "^reverse:"),
        (lambda: estimators.ais(p, x, 2, 2, 3, step_size=0.0), "^step_size:"),
        (lambda: estimators.ais(p, x, 2, 2, 3, leapfrog_steps=0), "^leapfrog_steps:"),
        (lambda: estimators.ais(base, x, 2, 2, 3, kernel="hmc"), "^p.grad_log_joint:"),
        (lambda: estimators.ais(p, x[:-1], 2, 2, 3), "^x:"),
    ]
    for call, pattern in cases:
        with pytest.raises(ValueError, match=pattern):
            call()
    g = GaussianMixture([0.5, 0.5], [[0.0], [1.0]], [np.eye(1), np.eye(1)])
    with pytest.raises(ValueError, match='^kernel: "mh"'):
        estimators.ais(g, np.zeros(1), 2, 2, 3, kernel="mh")
    h = HiddenMarkov.random(2, 1, 3, seed=0)
    with pytest.raises(ValueError, match="^p.latent_type:"):
        estimators.ais(h, h.sample(1)[0], 2, 2, 3, kernel="independence")

    class NoPosterior(LinearGaussian):
        posterior = property(lambda self: (_ for _ in ()).throw(AttributeError("posterior")))

    q = NoPosterior(p.W, p.b, p.psi)
    with pytest.raises(ValueError, match="^p.posterior:"):
        estimators.ais(q, x, 2, 2, 3, kernel="mh", reverse=True)
