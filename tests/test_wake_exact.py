"""p.wake_grad for a MultivariateGaussian q on LinearGaussian and a Categorical q on
GaussianMixture, against an independent computation: central finite differences,
in q.params, of -KL(p(z|x) || q) written here in closed form (Gaussians) or by
enumeration (the mixture's components); and the wake estimators converging to it."""

import numpy as np
import pytest
from scipy.special import log_softmax

import estimators
from estimators import Categorical, Gaussian, MultivariateGaussian
from problems import GaussianMixture, LinearGaussian


def _fd(fn, theta, h=1e-5):
    return np.array([(fn(theta + h * e) - fn(theta - h * e)) / (2 * h) for e in np.eye(theta.size)])


def _gauss_kl(m, S, mu, Sigma):
    """KL(N(m, S) || N(mu, Sigma)) = 1/2 [tr(Sigma^-1 S) + (mu - m)' Sigma^-1 (mu - m) - d + log|Sigma|/|S|]."""
    Si = np.linalg.inv(Sigma)
    d = m - mu
    return 0.5 * (np.trace(Si @ S) + d @ Si @ d - m.size + np.linalg.slogdet(Sigma)[1] - np.linalg.slogdet(S)[1])


@pytest.mark.parametrize("case", ["full", "diagonal"])
def test_linear_gaussian_wake_grad_is_minus_the_kl_gradient(case):
    p = LinearGaussian.random(5, 3, seed=2)
    x = p.sample(1, seed=3)[0]
    post = p.posterior(x)
    rng = np.random.default_rng(0)
    if case == "full":
        A = rng.normal(size=(3, 3))
        q = MultivariateGaussian(post.mean + rng.normal(scale=0.5, size=3), A @ A.T + 0.5 * np.eye(3))
    else:
        q = Gaussian(post.mean + 0.3, np.sqrt(np.diag(post.cov)) * 1.4)

    def neg_kl(theta):
        qq = q.with_params(theta)
        cov = qq.cov if case == "full" else np.diag(qq.scale**2)
        return -_gauss_kl(post.mean, post.cov, qq.loc, cov)

    np.testing.assert_allclose(p.wake_grad(x, q), _fd(neg_kl, q.params), rtol=1e-6, atol=1e-7)


def test_linear_gaussian_wake_grad_is_zero_at_the_posterior():
    p = LinearGaussian.random(4, 3, seed=5)
    x = p.sample(1, seed=1)[0]
    post = p.posterior(x)
    q = MultivariateGaussian(post.mean, post.cov)
    np.testing.assert_allclose(p.wake_grad(x, q), 0.0, atol=1e-10)


def test_gaussian_mixture_wake_grad_is_minus_the_kl_gradient():
    p = GaussianMixture.random(5, 2, seed=1)
    x = p.sample(1, seed=2)[0]
    q = Categorical(np.random.default_rng(3).dirichlet(np.ones(5)))
    log_post = log_softmax(p.log_joint_table(x))  # the posterior by enumeration

    def neg_kl(theta):  # KL(p(k|x) || softmax(theta)); q.params are log-probabilities, any shift allowed
        log_q = log_softmax(theta)
        return -np.sum(np.exp(log_post) * (log_post - log_q))

    np.testing.assert_allclose(p.wake_grad(x, q), _fd(neg_kl, q.params), atol=1e-8)


def test_wake_score_on_the_mixture_converges_to_wake_grad():
    """Self-normalised: biased at finite K (O(1/K)), consistent -- the bias at K = 4 is measurable,
    and it shrinks roughly like 1/K: |bias(32)| < |bias(4)| / 2 coordinate-wise where bias(4) is
    resolved (> 5 SE)."""
    p = GaussianMixture.random(4, 2, seed=0)
    x = p.sample(1, seed=1)[0]
    q = p.prior()
    truth = p.wake_grad(x, q)
    R = 20000
    out = {}
    for K in (4, 32):
        g = estimators.gradient(p, x, q, K, R, "score", objective="wake", seed=K)
        out[K] = (g.mean(0) - truth, g.std(0, ddof=1) / np.sqrt(R))
    (b4, s4), (b32, s32) = out[4], out[32]
    resolved = np.abs(b4) > 5 * s4
    assert resolved.any(), b4 / s4
    assert np.all(np.abs(b32[resolved]) < np.abs(b4[resolved]) / 2 + 5 * s32[resolved]), (b4, b32)


def test_bad_input():
    p = GaussianMixture.random(3, 2, seed=0)
    x = p.sample(1)[0]
    with pytest.raises(ValueError, match="^q: "):
        p.wake_grad(x, Gaussian(np.zeros(1), 1.0))
    with pytest.raises(ValueError, match="^q: "):
        p.wake_grad(x, Categorical([0.5, 0.5]))
