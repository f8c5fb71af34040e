"""SigmoidBeliefNet against brute-force enumeration written here, in plain Python
over itertools.product (independent of the vectorised code)."""

import itertools
import math

import numpy as np
import pytest

from problems import SigmoidBeliefNet
from problems.distributions import Bernoulli


def _sig(a):
    return 1.0 / (1.0 + math.exp(-a))


def _log_joint(p, x, h):
    total = 0.0
    for j, hj in enumerate(h):
        total += math.log(_sig(p.c[j]) if hj else 1.0 - _sig(p.c[j]))
    for i, xi in enumerate(x):
        a = p.b[i] + sum(p.W[i, j] * h[j] for j in range(len(h)))
        total += math.log(_sig(a) if xi else 1.0 - _sig(a))
    return total


def _brute(p, x, q):
    m = p.latent_dim
    states = list(itertools.product((0, 1), repeat=m))
    joint = {h: _log_joint(p, x, h) for h in states}
    log_px = math.log(sum(math.exp(v) for v in joint.values()))
    qp = {h: math.prod(q.probs[j] if h[j] else 1 - q.probs[j] for j in range(m)) for h in states}
    elbo = sum(qp[h] * (joint[h] - math.log(qp[h])) for h in states)
    kl = sum(qp[h] * (math.log(qp[h]) - (joint[h] - log_px)) for h in states)
    # gradient by central finite differences of the brute-force ELBO in the logits
    return joint, log_px, elbo, kl


def _brute_elbo_at(p, x, probs):
    m = p.latent_dim
    total = 0.0
    for h in itertools.product((0, 1), repeat=m):
        qh = math.prod(probs[j] if h[j] else 1 - probs[j] for j in range(m))
        total += qh * (_log_joint(p, x, h) - math.log(qh))
    return total


@pytest.mark.parametrize("m,D,seed", [(1, 3, 0), (3, 5, 1), (5, 4, 2)])
def test_against_enumeration(m, D, seed):
    p = SigmoidBeliefNet.random(m, D, seed=seed)
    x = p.sample(1, seed=seed + 10)[0]
    q = Bernoulli(np.linspace(0.2, 0.7, m))
    joint, log_px, elbo, kl = _brute(p, x, q)
    H = np.array(list(joint.keys()))
    np.testing.assert_allclose(p.log_joint(x, H), list(joint.values()), rtol=1e-12, atol=1e-12)
    assert abs(p.log_marginal(x) - log_px) < 1e-10
    assert abs(p.elbo(x, q) - elbo) < 1e-10
    assert abs(p.kl(x, q) - kl) < 1e-10
    assert abs(elbo + kl - log_px) < 1e-10
    # exact gradient vs central differences of the brute ELBO in the logits
    theta = q.params
    fd = np.empty(m)
    for j in range(m):
        e = np.zeros(m)
        e[j] = 1e-5
        up = 1 / (1 + np.exp(-(theta + e)))
        dn = 1 / (1 + np.exp(-(theta - e)))
        fd[j] = (_brute_elbo_at(p, x, up) - _brute_elbo_at(p, x, dn)) / 2e-5
    np.testing.assert_allclose(p.elbo_grad(x, q), fd, atol=1e-7)
    # posterior: mixture of point masses, marginals, wake gradient
    post = p.posterior(x)
    np.testing.assert_allclose(post.log_prob(H), [v - log_px for v in joint.values()], atol=1e-10)
    marg = sum(math.exp(joint[h] - log_px) * np.array(h, float) for h in joint)
    np.testing.assert_allclose(p.posterior_marginals(x), marg, atol=1e-12)
    np.testing.assert_allclose(p.wake_grad(x, q), marg - q.probs, atol=1e-12)
    assert p.kl(x, Bernoulli(np.clip(marg, 0.01, 0.99))) >= 0


def test_relaxed_gradient_matches_finite_differences():
    p = SigmoidBeliefNet.random(3, 4, seed=5)
    x = p.sample(1, seed=1)[0]
    z = np.array([[0.3, 0.9, 0.1], [1.0, 0.0, 0.5]])
    g = p.grad_log_joint_relaxed(x, z)
    for j in range(3):
        e = np.zeros(3)
        e[j] = 1e-6
        fd = (p.log_joint_relaxed(x, z + e) - p.log_joint_relaxed(x, z - e)) / 2e-6
        np.testing.assert_allclose(g[:, j], fd, atol=1e-6)
    H = np.array([[0, 1, 0]])
    assert abs(p.log_joint_relaxed(x, H)[0] - _log_joint(p, x, (0, 1, 0))) < 1e-12


def test_bad_input():
    with pytest.raises(ValueError, match="^m: "):
        SigmoidBeliefNet.random(21, 3)
    with pytest.raises(ValueError, match="^W: "):
        SigmoidBeliefNet(np.zeros((2, 21)), np.zeros(2), np.zeros(21))
    p = SigmoidBeliefNet.random(17, 2)
    with pytest.raises(ValueError, match="^m: "):
        p.posterior(np.zeros(2))
    p = SigmoidBeliefNet.random(2, 2)
    with pytest.raises(ValueError, match="^x: "):
        p.log_marginal(np.array([0.5, 1.0]))
    with pytest.raises(ValueError, match="^q: "):
        p.elbo(np.zeros(2), Bernoulli([0.5, 0.5, 0.5]))
    assert p.latent_type == "binary" and p.prior().latent_type == "binary"
