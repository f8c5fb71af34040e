"""LinearGaussian ground truth against independent computations.

z ~ N(0, I_d), x | z ~ N(W z + b, diag psi).  The exact quantities of
``problems.LinearGaussian`` (log_marginal, posterior, elbo, kl, elbo_grad,
log_weight_second_moment) are checked against scipy.stats densities, adaptive
quadrature (scipy.integrate.quad in 1-D; dblquad and nested quad_vec in 2-D)
of a log-joint written out here by hand, finite differences, and each other
(log p = ELBO + KL, where the library computes ELBO and KL independently).
"""

import numpy as np
import pytest
from scipy import integrate, stats

from estimators import Gaussian, MultivariateGaussian, Uniform
from problems import LinearGaussian

LOG_2PI = np.log(2.0 * np.pi)
CASES = [(1, 1, 0), (3, 1, 1), (2, 2, 2), (5, 2, 3), (4, 3, 4), (6, 4, 5)]  # (D, d, seed)


def instance(D, d, seed):
    p = LinearGaussian.random(D, d, seed=seed)
    x = p.sample(1, seed=1000 + seed)[0]
    return p, x


def marginal_ref(p):
    """The marginal N(b, W W^T + diag psi) from scipy."""
    return stats.multivariate_normal(p.b, p.W @ p.W.T + np.diag(p.psi))


def joint_ref(p, x):
    """log p(x, z) for a single z, written out by hand (independent of the library)."""
    xb, W, psi = x - p.b, p.W, p.psi
    c = -0.5 * p.latent_dim * LOG_2PI - 0.5 * np.sum(np.log(2 * np.pi * psi))

    def lj(z):
        z = np.atleast_1d(np.asarray(z, dtype=float))
        r = xb - W @ z
        return c - 0.5 * z @ z - 0.5 * np.sum(r * r / psi)

    return lj


def random_gaussian_q(rng, d):
    return Gaussian(rng.normal(0, 1.5, size=d), rng.uniform(0.1, 2.5, size=d))


def random_spd(rng, d, jitter=0.05):
    A = rng.normal(size=(d, d)) * rng.uniform(0.2, 1.5)
    S = A @ A.T / d + jitter * np.eye(d)
    return 0.5 * (S + S.T)


def random_mvg_q(rng, d):
    return MultivariateGaussian(rng.normal(0, 1.5, size=d), random_spd(rng, d))


def random_uniform_q(rng, d):
    low = rng.normal(0, 2, size=d)
    return Uniform(low, low + rng.uniform(0.05, 6.0, size=d))


# --------------------------------------------------------------------------- log_marginal, log_joint, sample


@pytest.mark.parametrize("D, d, seed", CASES)
def test_log_marginal_matches_scipy(D, d, seed):
    p, x = instance(D, d, seed)
    ref = marginal_ref(p)
    out = p.log_marginal(x)
    assert isinstance(out, float)
    np.testing.assert_allclose(out, ref.logpdf(x), rtol=1e-12, atol=1e-12)
    X = p.sample(7, seed=seed) + np.random.default_rng(seed).normal(size=(7, D))
    batch = p.log_marginal(X)
    assert isinstance(batch, np.ndarray) and batch.shape == (7,)
    np.testing.assert_allclose(batch, ref.logpdf(X), rtol=1e-12, atol=1e-12)
    # a batch of one row is still a batch
    assert p.log_marginal(X[:1]).shape == (1,)


@pytest.mark.parametrize("D, d, seed", CASES)
def test_log_joint_matches_scipy(D, d, seed):
    p, x = instance(D, d, seed)
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(5, d)) * 2
    expected = np.array(
        [
            stats.multivariate_normal(np.zeros(d), np.eye(d)).logpdf(z)
            + stats.multivariate_normal(p.W @ z + p.b, np.diag(p.psi)).logpdf(x)
            for z in Z
        ]
    )
    np.testing.assert_allclose(p.log_joint(x, Z), expected, rtol=1e-12, atol=1e-12)
    lj = joint_ref(p, x)
    np.testing.assert_allclose([lj(z) for z in Z], expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("D, d, seed", [(3, 1, 0), (4, 2, 1), (5, 3, 2)])
def test_sample_moments(D, d, seed):
    """Mean b and covariance W W^T + diag psi, each entry within 5 SE (SE from the draws)."""
    p = LinearGaussian.random(D, d, seed=seed)
    n = 20_000
    X = p.sample(n, seed=seed)
    assert X.shape == (n, D)
    mean_se = X.std(axis=0, ddof=1) / np.sqrt(n)
    assert np.all(np.abs(X.mean(axis=0) - p.b) < 5 * mean_se)
    cov = p.W @ p.W.T + np.diag(p.psi)
    C = X - p.b  # centred at the true mean: each product is an unbiased draw
    for i in range(D):
        for j in range(i, D):
            prod = C[:, i] * C[:, j]
            se = prod.std(ddof=1) / np.sqrt(n)
            assert abs(prod.mean() - cov[i, j]) < 5 * se, (i, j, prod.mean(), cov[i, j], se)


# --------------------------------------------------------------------------- posterior by quadrature


@pytest.mark.parametrize("D, seed", [(1, 0), (3, 1), (6, 2)])
def test_posterior_and_marginal_1d_by_quad(D, seed):
    p, x = instance(D, 1, seed)
    lj = joint_ref(p, x)
    lp_ref = marginal_ref(p).logpdf(x)  # only a scale, so exp() stays O(1)
    f = lambda z, k: z**k * np.exp(lj(z) - lp_ref)  # noqa: E731
    opts = dict(epsabs=1e-14, epsrel=1e-12, limit=200)
    Z = integrate.quad(f, -30, 30, args=(0,), **opts)[0]
    m1 = integrate.quad(f, -30, 30, args=(1,), **opts)[0] / Z
    m2 = integrate.quad(f, -30, 30, args=(2,), **opts)[0] / Z
    np.testing.assert_allclose(p.log_marginal(x), lp_ref + np.log(Z), rtol=0, atol=1e-10)
    post = p.posterior(x)
    assert isinstance(post, MultivariateGaussian)
    np.testing.assert_allclose(post.loc, [m1], rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(post.cov, [[m2 - m1**2]], rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("D, seed", [(2, 3), (5, 4)])
def test_posterior_2d_by_nested_quadrature(D, seed):
    """The six moments 1, z1, z2, z1^2, z1 z2, z2^2 of exp(log p(x, z)) over
    [-12, 12]^2 (the prior alone puts e^-72 outside), by nested adaptive
    Gauss-Kronrod quadrature (quad_vec integrates all six at once)."""
    p, x = instance(D, 2, seed)
    lj = joint_ref(p, x)
    lp_ref = marginal_ref(p).logpdf(x)
    L, opts = 12.0, dict(epsabs=1e-14, epsrel=1e-11)

    def inner(a):
        g = lambda b: np.exp(lj([a, b]) - lp_ref) * np.array([1.0, a, b, a * a, a * b, b * b])  # noqa: E731
        return integrate.quad_vec(g, -L, L, **opts)[0]

    mom = integrate.quad_vec(inner, -L, L, **opts)[0]
    Z = mom[0]
    mean = mom[1:3] / Z
    cov = np.array([[mom[3], mom[4]], [mom[4], mom[5]]]) / Z - np.outer(mean, mean)
    np.testing.assert_allclose(p.log_marginal(x), lp_ref + np.log(Z), rtol=0, atol=1e-10)
    post = p.posterior(x)
    np.testing.assert_allclose(post.loc, mean, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(post.cov, cov, rtol=1e-9, atol=1e-11)


# --------------------------------------------------------------------------- ELBO by quadrature


@pytest.mark.parametrize("D, seed", [(1, 0), (3, 1), (5, 2)])
@pytest.mark.parametrize("qseed", [0, 1])
def test_elbo_1d_by_quad(D, seed, qseed):
    p, x = instance(D, 1, seed)
    lj = joint_ref(p, x)
    rng = np.random.default_rng(qseed)
    m, s = rng.normal(0, 1.5), rng.uniform(0.2, 2.0)
    qd = stats.norm(m, s)
    integrand = lambda z: qd.pdf(z) * (lj(z) - qd.logpdf(z))  # noqa: E731
    expected = integrate.quad(integrand, m - 14 * s, m + 14 * s, epsabs=1e-13, epsrel=1e-12, limit=200)[0]
    for q in (Gaussian([m], [s]), MultivariateGaussian([m], [[s * s]])):
        np.testing.assert_allclose(p.elbo(x, q), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("D, seed", [(2, 3), (4, 4)])
def test_elbo_2d_by_dblquad(D, seed):
    p, x = instance(D, 2, seed)
    lj = joint_ref(p, x)
    rng = np.random.default_rng(seed)
    m, S = rng.normal(0, 1.0, size=2), random_spd(rng, 2, jitter=0.2)
    qd = stats.multivariate_normal(m, S)
    sd = np.sqrt(np.diag(S))
    L = 11.0

    def integrand(b, a):
        z = np.array([a, b])
        lq = qd.logpdf(z)
        return np.exp(lq) * (lj(z) - lq)

    expected = integrate.dblquad(
        integrand, m[0] - L * sd[0], m[0] + L * sd[0], m[1] - L * sd[1], m[1] + L * sd[1],
        epsabs=1e-11, epsrel=1e-10,
    )[0]
    np.testing.assert_allclose(p.elbo(x, MultivariateGaussian(m, S)), expected, rtol=1e-8, atol=1e-8)
    # and a diagonal Gaussian, through the same integral with a diagonal covariance
    qg = Gaussian(m, sd)
    qd = stats.multivariate_normal(m, np.diag(sd**2))
    expected = integrate.dblquad(
        integrand, m[0] - L * sd[0], m[0] + L * sd[0], m[1] - L * sd[1], m[1] + L * sd[1],
        epsabs=1e-11, epsrel=1e-10,
    )[0]
    np.testing.assert_allclose(p.elbo(x, qg), expected, rtol=1e-8, atol=1e-8)


def test_elbo_uniform_1d_by_quad():
    p, x = instance(3, 1, 7)
    lj = joint_ref(p, x)
    low, high = -1.3, 2.1
    expected = integrate.quad(lambda z: (lj(z) + np.log(high - low)) / (high - low), low, high, epsabs=1e-13)[0]
    np.testing.assert_allclose(p.elbo(x, Uniform([low], [high])), expected, rtol=1e-11, atol=1e-11)


# --------------------------------------------------------------------------- ELBO + KL = log p


@pytest.mark.parametrize("D, d, seed", CASES)
def test_log_marginal_equals_elbo_plus_kl(D, d, seed):
    """30 random q of each family: the library's ELBO and KL are computed by
    separate formulas, so agreeing to 1e-9 is a check of both."""
    p, x = instance(D, d, seed)
    lp = p.log_marginal(x)
    rng = np.random.default_rng(seed)
    worst = 0.0
    for make in (random_gaussian_q, random_mvg_q, random_uniform_q):
        for _ in range(30):
            q = make(rng, d)
            elbo, kl = p.elbo(x, q), p.kl(x, q)
            assert np.isfinite(elbo) and np.isfinite(kl)
            assert kl > 0
            worst = max(worst, abs(lp - (elbo + kl)))
    assert worst < 1e-9, worst


@pytest.mark.parametrize("D, d, seed", CASES)
def test_kl_is_zero_only_at_the_posterior(D, d, seed):
    p, x = instance(D, d, seed)
    post = p.posterior(x)
    assert abs(p.kl(x, post)) < 1e-10
    assert abs(p.elbo(x, post) - p.log_marginal(x)) < 1e-10
    # nearby proposals: strictly positive KL
    eps = 1e-3
    shifted = MultivariateGaussian(post.loc + eps, post.cov)
    scaled = MultivariateGaussian(post.loc, post.cov * (1 + eps))
    assert p.kl(x, shifted) > 0 and p.kl(x, scaled) > 0
    # the shifted KL is exactly (1/2) delta^T Sigma^-1 delta
    delta = np.full(d, eps)
    np.testing.assert_allclose(p.kl(x, shifted), 0.5 * delta @ np.linalg.solve(post.cov, delta), rtol=1e-5)
    rng = np.random.default_rng(seed)
    for make in (random_gaussian_q, random_mvg_q, random_uniform_q):
        assert p.kl(x, make(rng, d)) > 0


# --------------------------------------------------------------------------- ELBO gradient


def central_difference(f, theta, h=1e-5):
    g = np.empty_like(theta)
    for i in range(theta.size):
        e = np.zeros_like(theta)
        e[i] = h
        g[i] = (f(theta + e) - f(theta - e)) / (2 * h)
    return g


@pytest.mark.parametrize("D, d, seed", CASES)
@pytest.mark.parametrize("family", ["Gaussian", "MultivariateGaussian"])
def test_elbo_grad_matches_finite_differences(D, d, seed, family):
    """Step 1e-5: truncation error ~h^2 f''' ~ 1e-10 and rounding ~eps |ELBO| / h
    ~ 1e-10, so rtol 1e-6 with a 1e-8 floor for near-zero components."""
    p, x = instance(D, d, seed)
    rng = np.random.default_rng(seed + 50)
    for _ in range(3):
        q = random_gaussian_q(rng, d) if family == "Gaussian" else random_mvg_q(rng, d)
        theta = q.params
        grad = p.elbo_grad(x, q)
        assert grad.shape == theta.shape
        fd = central_difference(lambda t: p.elbo(x, q.with_params(t)), theta)
        np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("D, d, seed", CASES)
def test_elbo_grad_vanishes_at_the_posterior(D, d, seed):
    p, x = instance(D, d, seed)
    np.testing.assert_allclose(p.elbo_grad(x, p.posterior(x)), 0.0, atol=1e-10)


# --------------------------------------------------------------------------- weight second moment


def second_moment_by_quad(p, x, m, s, lp_ref):
    """E_q[(w/p(x))^2] = int p(x,z)^2 / (q(z) p(x)^2) dz for 1-D q = N(m, s^2)."""
    lj = joint_ref(p, x)
    f = lambda z: np.exp(2 * lj(z) - stats.norm.logpdf(z, m, s) - 2 * lp_ref)  # noqa: E731
    return integrate.quad(f, -60, 60, points=[m, 0.0], epsabs=1e-14, epsrel=1e-11, limit=400)[0]


@pytest.mark.parametrize("D, seed", [(1, 0), (3, 1), (5, 2)])
@pytest.mark.parametrize("shift, scale", [(0.0, 1.0), (0.5, 1.0), (1.0, 1.5), (-1.5, 0.8), (0.3, 0.72), (2.0, 3.0)])
def test_weight_second_moment_1d_by_quad(D, seed, shift, scale):
    """q = N(mu + shift * sigma, (scale * sigma)^2) around the posterior N(mu, sigma^2);
    the variance is finite iff scale^2 > 1/2, as it is for every case here."""
    p, x = instance(D, 1, seed)
    lp_ref = marginal_ref(p).logpdf(x)
    # the posterior's moments by quadrature, so the q's below do not rely on p.posterior
    lj = joint_ref(p, x)
    g = lambda z, k: z**k * np.exp(lj(z) - lp_ref)  # noqa: E731
    mu = integrate.quad(g, -30, 30, args=(1,), epsabs=1e-14, epsrel=1e-12)[0]
    sigma = np.sqrt(integrate.quad(g, -30, 30, args=(2,), epsabs=1e-14, epsrel=1e-12)[0] - mu**2)
    m, s = mu + shift * sigma, scale * sigma
    ratio = second_moment_by_quad(p, x, m, s, lp_ref)
    for q in (Gaussian([m], [s]), MultivariateGaussian([m], [[s * s]])):
        np.testing.assert_allclose(p.log_weight_second_moment(x, q), 2 * lp_ref + np.log(ratio), rtol=0, atol=1e-8)
        np.testing.assert_allclose(p.relative_weight_variance(x, q), ratio - 1, rtol=1e-8, atol=1e-12)
    if shift == 0.0 and scale == 1.0:
        assert abs(p.relative_weight_variance(x, q)) < 1e-12


@pytest.mark.parametrize("D, seed", [(1, 0), (3, 1)])
@pytest.mark.parametrize("scale", [0.7, 0.5, 0.3])
def test_weight_second_moment_infinite_when_q_too_narrow(D, seed, scale):
    """scale^2 <= 1/2 (2 S - Sigma not positive definite): the integrand of
    E_q[w^2] grows like exp(+c z^2) or is flat, so its integral over [-L, L]
    keeps growing with L; the library must return +inf.  scale = 0.7 is just
    inside the infinite region (0.49 < 0.5), 0.5 and 0.3 deeper in."""
    p, x = instance(D, 1, seed)
    post = p.posterior(x)
    mu, sigma = post.loc[0], np.sqrt(post.cov[0, 0])
    q = Gaussian([mu + 0.2 * sigma], [scale * sigma])
    assert p.log_weight_second_moment(x, q) == np.inf
    assert p.relative_weight_variance(x, q) == np.inf
    lp_ref = marginal_ref(p).logpdf(x)
    lj = joint_ref(p, x)
    f = lambda z: np.exp(min(2 * lj(z) - stats.norm.logpdf(z, q.loc[0], q.scale[0]) - 2 * lp_ref, 700.0))  # noqa: E731
    partial = [
        integrate.quad(f, mu - L * sigma, mu + L * sigma, points=[mu], limit=400)[0] for L in (10, 20, 40)
    ]
    assert partial[1] > 1.5 * partial[0] and partial[2] > 1.5 * partial[1], partial


@pytest.mark.parametrize("D, d, seed", CASES)
def test_weight_second_moment_multivariate(D, d, seed):
    """d >= 1: the closed form against a Monte Carlo-free identity check --
    E_q[w^2] for q = posterior is p(x)^2; for q = N(mu, c Sigma) it is
    p(x)^2 (c^2 / (2c - 1))^(d/2) (a product of d independent 1-D factors in
    the posterior's whitened coordinates), infinite for c <= 1/2."""
    p, x = instance(D, d, seed)
    post = p.posterior(x)
    lp = marginal_ref(p).logpdf(x)
    np.testing.assert_allclose(p.log_weight_second_moment(x, post), 2 * lp, rtol=0, atol=1e-10)
    for c in (0.6, 1.0, 2.5):
        q = MultivariateGaussian(post.loc, c * post.cov)
        expected = 2 * lp + 0.5 * d * np.log(c * c / (2 * c - 1))
        np.testing.assert_allclose(p.log_weight_second_moment(x, q), expected, rtol=0, atol=1e-9)
    assert p.log_weight_second_moment(x, MultivariateGaussian(post.loc, 0.5 * post.cov)) == np.inf
    assert p.log_weight_second_moment(x, MultivariateGaussian(post.loc, 0.4 * post.cov)) == np.inf


@pytest.mark.parametrize("seed", [0, 1])
def test_weight_second_moment_2d_by_nested_quadrature(seed):
    """A full-covariance 2-D q, against nested quad_vec of p(x,z)^2 / q(z)."""
    p, x = instance(3, 2, seed)
    post = p.posterior(x)
    rng = np.random.default_rng(seed)
    S = post.cov * 1.3 + 0.05 * random_spd(rng, 2)
    m = post.loc + rng.normal(0, 0.3, size=2)
    q = MultivariateGaussian(m, S)
    qd = stats.multivariate_normal(m, S)
    lj = joint_ref(p, x)
    lp_ref = marginal_ref(p).logpdf(x)
    L, opts = 10.0, dict(epsabs=1e-13, epsrel=1e-10)

    def inner(a):
        g = lambda b: np.exp(2 * lj([a, b]) - qd.logpdf([a, b]) - 2 * lp_ref)  # noqa: E731
        return integrate.quad_vec(g, -L, L, **opts)[0]

    ratio = integrate.quad_vec(inner, -L, L, **opts)[0]
    np.testing.assert_allclose(p.relative_weight_variance(x, q), ratio - 1, rtol=1e-7, atol=1e-10)


def test_grad_log_joint_matches_finite_differences():
    """d/dz log p(x, z) against central differences of the log-joint (an independent computation)."""
    p = LinearGaussian.random(4, 3, seed=0)
    x = p.sample(1, seed=1)[0]
    z = np.random.default_rng(0).standard_normal((5, 3))
    h = 1e-6
    fd = np.array([(p.log_joint(x, z + h * e) - p.log_joint(x, z - h * e)) / (2 * h) for e in np.eye(3)]).T
    np.testing.assert_allclose(p.grad_log_joint(x, z), fd, rtol=1e-6, atol=1e-7)
