"""Discrete ELBO gradient estimators for a Bernoulli q (estimators.discrete_gradients):
ARM, DisARM and REBAR unbiased for the exact (enumerated) ELBO gradient within
5 SE; the relaxations' expectation computed exactly here, independently --
Gumbel-softmax by composite Gauss-Legendre quadrature over the logistic noise,
straight-through by enumeration -- and matched within 5 SE, their bias
measured against the temperature."""

import numpy as np
import pytest
from scipy.special import expit

import estimators
from estimators import Bernoulli, Gaussian
from problems import LinearGaussian, MissingPixels, SigmoidBeliefNet
from problems.base import Problem

Z = 5.0
R = 4000


def _z(g, truth):
    mean, se = g.mean(axis=0), g.std(axis=0, ddof=1) / np.sqrt(g.shape[0])
    return (mean - truth) / se


def sbn_case(m, D, seed):
    p = SigmoidBeliefNet.random(m, D, seed=seed)
    x = p.sample(1, seed=seed + 1)[0]
    q = Bernoulli(np.random.default_rng(seed).uniform(0.15, 0.85, m))
    return p, x, q


def mp_case():
    """MissingPixels with 4 latent pixels (the corners of the top row and of row 2)."""
    base = MissingPixels.digits()
    mask = np.zeros(64, dtype=bool)
    mask[[0, 3, 9, 14]] = True
    p = MissingPixels(base.templates, base.weights, mask)
    x = p.sample(1, seed=4)[0]
    return p, x, Bernoulli([0.3, 0.6, 0.5, 0.8])


CASES = {"sbn3": lambda: sbn_case(3, 4, 0), "sbn5": lambda: sbn_case(5, 3, 1), "mp4": mp_case}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("method,options", [("arm", {}), ("disarm", {}), ("rebar", {}),
                                            ("rebar", {"temperature": 2.0, "eta": 0.3})])
def test_unbiased_for_exact_elbo_gradient(case, method, options):
    p, x, q = CASES[case]()
    g = estimators.gradient(p, x, q, 5, R, method, seed=11, **options)
    assert g.shape == (R, q.dim)
    z = _z(g, p.elbo_grad(x, q))
    assert np.all(np.abs(z) < Z), z


def test_disarm_beats_arm_and_score_on_variance():
    p, x, q = CASES["sbn5"]()
    var = {m: estimators.gradient(p, x, q, 5, R, m, seed=2).var(axis=0).sum() for m in ("score", "arm", "disarm")}
    assert var["disarm"] < var["arm"] < var["score"], var


# ---------------------------------------------------------------- relaxations: exact expectation


def _relaxed_grad(p, x, z):
    """grad_z log p(x, z) = c + W^T (x - sigmoid(W z + b)), written here from the model's formula."""
    return p.c + (x - expit(z @ p.W.T + p.b)) @ p.W


def _entropy_grad(q):
    pi = q.probs
    return -q.params * pi * (1 - pi)


def _nodes(theta_j, tau):
    """Composite 8-point Gauss-Legendre nodes/weights in s = (theta + L)/tau for L logistic:
    fine panels where sigmoid(s) varies, coarse ones (width 0.5/tau) out to |L| = 36."""
    lo, hi = (theta_j - 36.0) / tau, (theta_j + 36.0) / tau  # |L| <= 36: the rest has mass < 1e-15
    fine, coarse = 1.0 / max(1.0, tau), max(2.0, 2.0 / tau)  # converged: a grid 4x finer agrees to 1e-13
    a, b = max(lo, -36.0), min(hi, 36.0)
    edges = np.unique(np.concatenate([np.arange(a, b, fine), [b], np.arange(lo, hi, coarse), [hi]]))
    gx, gw = np.polynomial.legendre.leggauss(8)
    a, b = edges[:-1, None], edges[1:, None]
    s = (0.5 * (b - a) * gx + 0.5 * (a + b)).ravel()
    w = (0.5 * (b - a) * gw).ravel()
    # density of s: L = tau s - theta is logistic, so p(s) = tau sigma'(tau s - theta)
    dens = tau * expit(tau * s - theta_j) * (1 - expit(tau * s - theta_j))
    return s, w * dens


def gumbel_softmax_expectation(p, x, q, tau):
    """E[estimator] = E_L[grad log p(x, zeta) * zeta (1 - zeta) / tau] + grad H(q), 2 bits."""
    assert q.dim == 2
    theta = q.params
    s0, w0 = _nodes(theta[0], tau)
    s1, w1 = _nodes(theta[1], tau)
    assert abs(w0.sum() - 1) < 1e-10 and abs(w1.sum() - 1) < 1e-10
    out = np.zeros(2)
    for a, wa in zip(np.array_split(s0, 20), np.array_split(w0, 20)):
        S0, S1 = np.meshgrid(a, s1, indexing="ij")
        zeta = expit(np.stack([S0.ravel(), S1.ravel()], axis=1))
        W = (wa[:, None] * w1[None, :]).ravel()
        out += (W[:, None] * _relaxed_grad(p, x, zeta) * zeta * (1 - zeta) / tau).sum(axis=0)
    return out + _entropy_grad(q)


def straight_through_expectation(p, x, q):
    pi = q.probs
    B = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
    qb = np.prod(np.where(B > 0, pi, 1 - pi), axis=1)
    return qb @ (_relaxed_grad(p, x, B) * pi * (1 - pi)) + _entropy_grad(q)


def two_bit_case():
    p = SigmoidBeliefNet.random(2, 5, seed=7, weight_scale=2.0)
    x = p.sample(1, seed=3)[0]
    return p, x, Bernoulli([0.35, 0.7])


def test_gumbel_softmax_bias_matches_exact_expectation_across_temperatures():
    p, x, q = two_bit_case()
    truth = p.elbo_grad(x, q)
    biases = []
    for tau in (0.03, 0.3, 1.0, 3.0):
        expected = gumbel_softmax_expectation(p, x, q, tau)
        g = estimators.gradient(p, x, q, 5, R, "gumbel_softmax", seed=5, temperature=tau)
        z = _z(g, expected)
        assert np.all(np.abs(z) < Z), (tau, z)
        biases.append(np.abs(expected - truth).sum())
    # the relaxation's bias vanishes as tau -> 0 (the pathwise term integrates to the finite
    # difference of the log-joint across the threshold) and grows at large tau; not monotone
    # in between on this instance (the second coordinate's bias changes sign near tau = 0.5)
    assert biases[0] < 0.01 and biases[-1] > 0.3 and biases[-1] > biases[-2] > biases[1], biases
    # and at tau = 3 the estimator is measurably off the exact ELBO gradient
    g = estimators.gradient(p, x, q, 5, R, "gumbel_softmax", seed=6, temperature=3.0)
    assert np.max(np.abs(_z(g, truth))) > 10


def test_straight_through_bias_matches_enumeration():
    p, x, q = two_bit_case()
    expected = straight_through_expectation(p, x, q)
    g = estimators.gradient(p, x, q, 5, R, "straight_through", seed=8)
    assert np.all(np.abs(_z(g, expected)) < Z)
    assert np.max(np.abs(_z(g, p.elbo_grad(x, q)))) > 10  # biased, measurably


def test_missing_pixels_relaxed_gradient_finite_differences():
    p, x, _ = mp_case()
    z = np.random.default_rng(0).uniform(size=(3, 4))
    g = p.grad_log_joint_relaxed(x, z)
    for j in range(4):
        e = np.zeros(4)
        e[j] = 1e-6
        np.testing.assert_allclose(
            g[:, j], (p.log_joint_relaxed(x, z + e) - p.log_joint_relaxed(x, z - e)) / 2e-6, atol=1e-6
        )
    B = np.array([[0, 1, 1, 0]])
    assert abs(p.log_joint_relaxed(x, B)[0] - p.log_joint(x, B)[0]) < 1e-12


# ---------------------------------------------------------------- draws and bad input


def test_same_draws_and_reproducible():
    p, x, q = CASES["sbn3"]()
    a = estimators.gradient(p, x, q, 7, 3, "disarm", seed=4)
    assert np.array_equal(a, estimators.gradient(p, x, q, 7, 3, "disarm", seed=4))
    assert not np.array_equal(a, estimators.gradient(p, x, q, 7, 3, "disarm", seed=5))


class NoRelaxation(Problem):
    obs_dim, latent_dim, latent_type = 1, 2, "binary"

    def log_joint(self, x, z):
        return -np.sum(z, axis=1).astype(float)

    def log_marginal(self, x):
        return float(np.log((1 + np.exp(-1)) ** 2))

    def prior(self):
        return Bernoulli([0.5, 0.5])


def test_bad_input():
    p, x, q = CASES["sbn3"]()
    with pytest.raises(ValueError, match="^temperature: "):
        estimators.gradient(p, x, q, 4, 2, "gumbel_softmax", temperature=0.0)
    with pytest.raises(ValueError, match="^temperature: "):
        estimators.gradient(p, x, q, 4, 2, "rebar", temperature=-1.0)
    with pytest.raises(ValueError, match="^temperature: "):
        estimators.gradient(p, x, q, 4, 2, "arm", temperature=1.0)  # arm takes no options
    with pytest.raises(ValueError, match="^tau: "):
        estimators.gradient(p, x, q, 4, 2, "gumbel_softmax", tau=1.0)
    with pytest.raises(ValueError, match="^objective: "):
        estimators.gradient(p, x, q, 4, 2, "arm", objective="iwae")
    with pytest.raises(ValueError, match="^p.grad_log_joint_relaxed: "):
        estimators.gradient(NoRelaxation(), np.zeros(1), Bernoulli([0.5, 0.5]), 4, 2, "straight_through")
    # a discrete-only method on a Gaussian q
    lg = LinearGaussian.random(3, 2, seed=0)
    with pytest.raises(ValueError, match="^q: "):
        estimators.gradient(lg, lg.sample(1)[0], Gaussian(np.zeros(2), 1.0), 4, 2, "disarm")
    # ARM works on a user's binary model without relaxation members
    g = estimators.gradient(NoRelaxation(), np.zeros(1), Bernoulli([0.5, 0.5]), 4, 2, "arm")
    assert g.shape == (2, 2)
