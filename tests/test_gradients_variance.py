"""Variances of the gradient estimators against closed forms.

1-D model: q = N(mu, sigma^2), z = mu + sigma eps, and a Gaussian posterior
N(m, s^2) (a LinearGaussian with D = d = 1), so
log w(z) = log p(x) + log N(z; m, s^2) - log N(z; mu, sigma^2).  With
a = (mu - m) sigma / s^2 and c = sigma^2 / s^2 the single-sample gradients are
polynomials in eps (derivation in each test), whence their variances:

==================  ==================  ==========================
method              d/d mu              d/d log sigma
==================  ==================  ==========================
reparam             sigma^2 / s^4       a^2 + 2 c^2
stl                 (1/sigma - sigma/s^2)^2   a^2 + 2 (1 - c)^2
score               (c0^2 + 2 c1^2 + 15 c2^2 + 6 c0 c2) / sigma^2
==================  ==================  ==========================

(score: f = c0 + c1 eps + c2 eps^2 with c0 = log p(x) + log(sigma/s)
- (mu - m)^2 / (2 s^2), c1 = -a, c2 = (1 - c)/2, and the gradient f eps / sigma.)
The elbo objective averages K i.i.d. terms, so its variance is the above / K.

A measured variance v_hat of R replicates has standard error
sqrt((m4 - v_hat^2) / R), m4 the sample fourth central moment (for a Gaussian
gradient this is sqrt(2/R) v); the checks are at 5 SE.
"""

import numpy as np
import pytest

import estimators
from estimators import Gaussian
from problems import LinearGaussian

Z = 5.0


def one_d(w=1.3, b=0.4, psi=0.7, x0=2.1):
    p = LinearGaussian([[w]], [b], [psi])
    s2 = 1.0 / (1.0 + w * w / psi)  # posterior variance, computed here, not by p
    m = s2 * w * (x0 - b) / psi
    return p, np.array([x0]), m, np.sqrt(s2)


def var_and_se(g):
    v = g.var(axis=0, ddof=1)
    m4 = np.mean((g - g.mean(axis=0)) ** 4, axis=0)
    return v, np.sqrt((m4 - v**2) / g.shape[0])


def closed_forms(p, x, m, s, mu, sigma):
    a = (mu - m) * sigma / s**2
    c = sigma**2 / s**2
    c0 = p.log_marginal(x) + np.log(sigma / s) - (mu - m) ** 2 / (2 * s**2)
    c1, c2 = -a, (1 - c) / 2
    return {
        "reparam": (sigma**2 / s**4, a**2 + 2 * c**2),
        "stl": ((1 / sigma - sigma / s**2) ** 2, a**2 + 2 * (1 - c) ** 2),
        "score": ((c0**2 + 2 * c1**2 + 15 * c2**2 + 6 * c0 * c2) / sigma**2, None),
    }


def test_one_d_posterior_is_what_the_formulas_assume():
    p, x, m, s = one_d()
    post = p.posterior(x)
    np.testing.assert_allclose(post.mean, [m], rtol=1e-12)
    np.testing.assert_allclose(post.cov, [[s * s]], rtol=1e-12)


@pytest.mark.parametrize("method", ["reparam", "stl", "score"])
@pytest.mark.parametrize("K", [1, 4])
@pytest.mark.parametrize("shift, ratio", [(0.7, 1.3), (-0.4, 0.6)])
def test_single_sample_variance_closed_form(method, K, shift, ratio):
    p, x, m, s = one_d()
    mu, sigma = m + shift, ratio * s
    q = Gaussian([mu], [sigma])
    R = 40000
    g = estimators.gradient(p, x, q, K, R, method, "elbo", seed=31 + K)
    v, se = var_and_se(g)
    want = closed_forms(p, x, m, s, mu, sigma)[method]
    for j, name in enumerate(("mu", "log sigma")):
        if want[j] is None:
            continue
        truth = want[j] / K
        assert abs(v[j] - truth) < Z * se[j], f"{method} d/d{name}: var {v[j]:.6g} vs {truth:.6g} (SE {se[j]:.2g})"


def test_stl_beats_reparam_near_the_posterior_and_not_far_from_it():
    """The closed forms say which is better: STL's mu-variance
    (1/sigma - sigma/s^2)^2 vanishes at sigma = s but exceeds reparam's
    sigma^2/s^4 once sigma < s/sqrt(2) (at sigma = s/2: 9/(4 s^2) vs 1/(4 s^2)).
    Both directions are measured."""
    p, x, m, s = one_d()
    for ratio, stl_wins in ((1.1, True), (0.5, False)):
        q = Gaussian([m + 0.3], [ratio * s])
        vr, _ = var_and_se(estimators.gradient(p, x, q, 1, 20000, "reparam", seed=1))
        vs, _ = var_and_se(estimators.gradient(p, x, q, 1, 20000, "stl", seed=2))
        assert (vs[0] < vr[0]) == stl_wins


# --------------------------------------------------------------------------- zero variance at the posterior


def diagonal_posterior_problem():
    """A LinearGaussian whose posterior covariance is diagonal: W with
    orthogonal columns and a constant psi, so W^T Psi^-1 W is diagonal."""
    rng = np.random.default_rng(4)
    Q, _ = np.linalg.qr(rng.standard_normal((4, 2)))
    W = Q * np.array([1.5, 0.6])
    p = LinearGaussian(W, rng.standard_normal(4), np.full(4, 0.8))
    x = p.sample(1, seed=5)[0]
    post = p.posterior(x)
    assert np.max(np.abs(post.cov - np.diag(np.diag(post.cov)))) < 1e-14
    return p, x, Gaussian(post.mean, np.sqrt(np.diag(post.cov)))


@pytest.mark.parametrize(
    "method, objective, K",
    [("stl", "elbo", 1), ("stl", "elbo", 6), ("stl", "iwae", 6), ("dreg", "iwae", 6), ("dreg", "iwae", 1)],
)
def test_zero_variance_at_the_exact_posterior(method, objective, K):
    """d log w / dz = 0 everywhere when q = p(z|x), so STL and DReG are exactly 0."""
    p, x, q = diagonal_posterior_problem()
    g = estimators.gradient(p, x, q, K, 2000, method, objective, seed=3)
    assert np.max(np.abs(g)) < 1e-10
    assert np.max(g.std(axis=0)) < 1e-10
    # ...while the reparam estimator of the same (zero) gradient is not
    r = estimators.gradient(p, x, q, K, 2000, "reparam", objective, seed=3)
    assert np.min(r.std(axis=0)) > 0.1
