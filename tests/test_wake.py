"""Reweighted wake-sleep (objective "wake"): the exact p.wake_grad against
independent computations (Gauss-Hermite quadrature over the Gaussian posterior,
enumeration over the discrete posterior), and the two estimators ("score",
"dreg") biased at finite K, the bias fitted as c + a/K with SEs: a clearly
nonzero, c (the K -> infinity limit) zero within 5 SE."""

import itertools

import numpy as np
import pytest

import estimators
from estimators import Bernoulli, Gaussian
from problems import LinearGaussian, MissingPixels, SigmoidBeliefNet


def lg_case():
    p = LinearGaussian.random(4, 2, seed=3)
    x = p.sample(1, seed=4)[0]
    post = p.posterior(x)
    q = Gaussian(post.mean + np.array([0.6, -0.4]), 1.3 * np.sqrt(np.diag(post.cov)))
    return p, x, q


def test_linear_gaussian_wake_grad_by_quadrature():
    p, x, q = lg_case()
    post = p.posterior(x)
    L = np.linalg.cholesky(post.cov)
    t, w = np.polynomial.hermite_e.hermegauss(12)  # probabilists': weight exp(-t^2/2)
    T = np.array(list(itertools.product(t, t)))
    Wt = np.prod(np.array(list(itertools.product(w, w))), axis=1) / (2 * np.pi)
    z = post.mean + T @ L.T
    expected = Wt @ q.grad_log_prob(z)
    np.testing.assert_allclose(p.wake_grad(x, q), expected, atol=1e-10)


def test_discrete_wake_grad_by_enumeration():
    base = MissingPixels.digits()
    mask = np.zeros(64, dtype=bool)
    mask[[0, 5, 10, 20]] = True
    p = MissingPixels(base.templates, base.weights, mask)
    x = p.sample(1, seed=2)[0]
    q = Bernoulli([0.2, 0.5, 0.6, 0.9])
    Z = np.array(list(itertools.product((0, 1), repeat=4)))
    lj = p.log_joint(x, Z)
    post = np.exp(lj - np.logaddexp.reduce(lj))
    np.testing.assert_allclose(p.wake_grad(x, q), post @ (Z - q.probs), atol=1e-12)


def _fit(Ks, means, ses):
    """Weighted least squares of bias(K) = c + a/K + e/K^2 (the ratio estimator's
    expansion): ((c, a, e), (se_c, se_a, se_e))."""
    K = np.asarray(Ks, float)
    A = np.stack([np.ones(len(K)), 1.0 / K, 1.0 / K**2], axis=1)
    Wt = 1.0 / np.asarray(ses) ** 2
    cov = np.linalg.inv(A.T @ (Wt[:, None] * A))
    coef = cov @ A.T @ (Wt * np.asarray(means))
    return coef, np.sqrt(np.diag(cov))


def _bias_curve(p, x, q, method, Ks, R, seed):
    truth = p.wake_grad(x, q)
    means, ses = [], []
    for i, K in enumerate(Ks):
        g = estimators.gradient(p, x, q, K, R, method, objective="wake", seed=seed + i)
        means.append(g.mean(axis=0) - truth)
        ses.append(g.std(axis=0, ddof=1) / np.sqrt(R))
    return np.array(means), np.array(ses)


@pytest.mark.parametrize("method", ["score", "dreg"])
def test_wake_bias_shrinks_like_one_over_K_linear_gaussian(method):
    p, x, q = lg_case()
    Ks = [4, 8, 16, 32, 64, 128, 256]
    means, ses = _bias_curve(p, x, q, method, Ks, 20000, seed=10)
    zs_a = []
    for j in range(means.shape[1]):
        (c, a, e), (se_c, se_a, _) = _fit(Ks, means[:, j], ses[:, j])
        assert abs(c) < 5 * se_c, (j, c, se_c)  # consistent: the K -> infinity limit is wake_grad
        zs_a.append(abs(a) / se_a)
        # the model fits: residuals within 5 SE
        resid = means[:, j] - (c + a / np.asarray(Ks) + e / np.asarray(Ks) ** 2)
        assert np.all(np.abs(resid) < 5 * ses[:, j]), (j, resid / ses[:, j])
    assert max(zs_a) > 10, zs_a  # biased at finite K, measurably


def test_wake_score_converges_on_sigmoid_belief_net():
    p = SigmoidBeliefNet.random(4, 6, seed=2, weight_scale=1.5)
    x = p.sample(1, seed=5)[0]
    q = Bernoulli([0.3, 0.5, 0.7, 0.4])
    Ks = [2, 4, 8, 16, 64]
    means, ses = _bias_curve(p, x, q, "score", Ks, 2000, seed=20)
    zs = []
    for j in range(4):
        (c, a, _), (se_c, se_a, _) = _fit(Ks, means[:, j], ses[:, j])
        assert abs(c) < 5 * se_c, (j, c, se_c)
        zs.append(abs(a) / se_a)
    assert max(zs) > 5, zs


def test_dreg_and_score_agree_in_expectation():
    # same expectation at every K (the DReG identity), far lower variance near the posterior
    p, x, _ = lg_case()
    post = p.posterior(x)
    q = Gaussian(post.mean + 0.1, np.sqrt(np.diag(post.cov)))
    gs = estimators.gradient(p, x, q, 3, 40000, "score", objective="wake", seed=1)
    gd = estimators.gradient(p, x, q, 3, 40000, "dreg", objective="wake", seed=2)
    diff = gs.mean(0) - gd.mean(0)
    se = np.sqrt(gs.var(0, ddof=1) / 40000 + gd.var(0, ddof=1) / 40000)
    assert np.all(np.abs(diff) < 5 * se), diff / se
    assert gd.var(0).sum() < gs.var(0).sum()


def test_bad_input():
    p, x, q = lg_case()
    with pytest.raises(ValueError, match="^objective: "):
        estimators.gradient(p, x, q, 4, 2, "reparam", objective="wake")
    sbn = SigmoidBeliefNet.random(3, 2)
    with pytest.raises(ValueError, match="^method: "):
        estimators.gradient(sbn, np.zeros(2), Bernoulli([0.5] * 3), 4, 2, "dreg", objective="wake")
    with pytest.raises(ValueError, match="^q: "):
        p.wake_grad(x, Bernoulli([0.5, 0.5]))
