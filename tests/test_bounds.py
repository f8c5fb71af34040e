r"""Renyi (VR) bounds and CUBO: exact values and their Monte Carlo estimators.

Exact values (``p.renyi_bound``, ``p.cubo``, ``p.log_weight_moment``,
``p.ess_limit``) against independent computations: adaptive quadrature of
:math:`\int p(x,z)^{s} q(z)^{1-s} dz` in one and two dimensions
(scipy.integrate.quad / dblquad on LinearGaussian), enumeration through the
public log_joint / log_prob on GaussianMixture and MissingPixels, and the
identities alpha = 0 -> log p(x), alpha -> 1 -> ELBO (with the slope
Var_q[log w] / 2 from quadrature), CUBO_1 = log p(x), CUBO_2 = half the second
moment.  Divergent integrals are +inf / -inf exactly where the stated
condition fails.

Estimators: the mean inside the log is unbiased, so exp(s (L_hat - L)) has mean
1 (s = 1 - alpha or n), tested to 5 SE with the SE from the replicates, where
E_q[w^{2s}] is finite (so the SE means something).  alpha = 0 and n = 1 equal
importance sampling on the same draws; alpha -> 1 the ELBO estimate.
"""

from __future__ import annotations

import itertools
import math

import numba
import numpy as np
import pytest
from scipy import integrate
from scipy.special import logsumexp

import estimators
import problems
from estimators import Bernoulli, Categorical, Gaussian, MultivariateGaussian
from estimators._kernels.driver import CHUNK
from problems import GaussianMixture, LinearGaussian, MissingPixels

Z = 5.0
_LOG_2PI = math.log(2 * math.pi)


def _lg1():
    p = LinearGaussian(np.array([[1.3], [0.4]]), np.array([0.2, -0.5]), np.array([0.7, 1.1]))
    x = np.array([1.1, 0.3])
    return p, x


def _lg2():
    p = LinearGaussian(np.array([[1.0, 0.3], [-0.4, 0.8], [0.5, 0.5]]), np.array([0.1, 0.0, -0.2]), np.array([0.6, 0.9, 1.2]))
    x = np.array([0.8, -0.6, 0.4])
    return p, x


def _log_integrand(p, x, q, s):
    """z -> s log p(x, z) + (1 - s) log q(z) for a 1-D LinearGaussian and a
    Gaussian q, written out in plain floats (independent of the library)."""
    W, b, psi = p.W[:, 0], p.b, p.psi
    c_p = -0.5 * _LOG_2PI - 0.5 * float(np.sum(np.log(2 * np.pi * psi)))
    m, sd = float(q.loc[0]), float(q.scale[0])
    c_q = -0.5 * _LOG_2PI - math.log(sd)

    def f(z):
        lp = c_p - 0.5 * z * z
        for i in range(len(b)):
            r = x[i] - b[i] - W[i] * z
            lp -= 0.5 * r * r / psi[i]
        u = (z - m) / sd
        return s * lp + (1.0 - s) * (c_q - 0.5 * u * u)

    return f


def _quad_log_moment_1d(p, x, q, s):
    """log int p(x,z)^s q(z)^(1-s) dz by adaptive quadrature, scaled at the mode."""
    f = _log_integrand(p, x, q, s)
    grid = np.linspace(-30, 30, 6001)
    vals = np.array([f(z) for z in grid])
    c, center = vals.max(), grid[vals.argmax()]
    val, err = integrate.quad(lambda z: math.exp(f(z) - c), center - 40, center + 40, epsabs=0, epsrel=1e-12, limit=500)
    assert err < 1e-10 * val
    return c + math.log(val)


def _quad_log_moment_2d(p, x, q, s):
    """The same in 2-D (dblquad), with the log densities written out in plain
    floats: log N(z; 0, I) + log N(x; W z + b, diag psi) and q's Gaussian."""
    W, b, psi = p.W, p.b, p.psi
    c_p = -_LOG_2PI - 0.5 * float(np.sum(np.log(2 * np.pi * psi)))
    S_inv = np.linalg.inv(q.cov)
    c_q = -_LOG_2PI - 0.5 * math.log(np.linalg.det(q.cov))
    (a11, a12), (_, a22) = S_inv
    m1, m2 = q.mean

    def f(z1, z2):
        lp = c_p - 0.5 * (z1 * z1 + z2 * z2)
        for i in range(len(b)):
            r = x[i] - b[i] - W[i, 0] * z1 - W[i, 1] * z2
            lp -= 0.5 * r * r / psi[i]
        d1, d2 = z1 - m1, z2 - m2
        lq = c_q - 0.5 * (a11 * d1 * d1 + 2 * a12 * d1 * d2 + a22 * d2 * d2)
        return s * lp + (1.0 - s) * lq

    m = p.posterior(x).mean
    c = f(*m)
    val, err = integrate.dblquad(
        lambda z2, z1: math.exp(f(z1, z2) - c), m[0] - 12, m[0] + 12, m[1] - 12, m[1] + 12, epsabs=0, epsrel=1e-10
    )
    assert err < 1e-8 * val
    return c + math.log(val)


# =========================================================================== exact values


def _converges_1d(var_post, var_q, s):
    """int N(z; mu, v)^s N(z; m, S)^(1-s) dz < inf iff s/v + (1-s)/S > 0 (1-D)."""
    return s / var_post + (1.0 - s) / var_q > 0


def test_exact_renyi_and_cubo_against_quadrature_1d():
    p, x = _lg1()
    post = p.posterior(x)
    var = float(post.cov[0, 0])
    sd = math.sqrt(var)
    checked = 0
    for q in (Gaussian(post.mean + 0.4 * sd, [1.3 * sd]), Gaussian(post.mean - 0.2 * sd, [0.9 * sd])):
        vq = float(q.scale[0]) ** 2
        for alpha in (-1.5, -0.5, 0.3, 0.5, 0.9, 2.0, 3.0):
            s = 1.0 - alpha
            got = p.renyi_bound(x, q, alpha)
            if not _converges_1d(var, vq, s):
                assert got == (math.inf if s > 0 else -math.inf), (alpha, got)
                continue
            want = _quad_log_moment_1d(p, x, q, s) / s
            assert abs(got - want) < 1e-9 * max(1.0, abs(want)), (alpha, got, want)
            checked += 1
        for n in (1, 1.5, 2, 3):
            want = _quad_log_moment_1d(p, x, q, n) / n
            assert abs(p.cubo(x, q, n) - want) < 1e-9 * max(1.0, abs(want)), (n,)
            checked += 1
    assert checked >= 18


def test_exact_renyi_and_cubo_against_quadrature_2d():
    p, x = _lg2()
    post = p.posterior(x)
    q = MultivariateGaussian(post.mean + np.array([0.2, -0.1]), np.array([[1.2, 0.3], [0.3, 0.9]]) * np.diag(post.cov).mean())
    for alpha in (-0.5, 0.5, 2.0):
        want = _quad_log_moment_2d(p, x, q, 1.0 - alpha) / (1.0 - alpha)
        assert abs(p.renyi_bound(x, q, alpha) - want) < 1e-7 * max(1.0, abs(want)), alpha
    want = _quad_log_moment_2d(p, x, q, 2.0) / 2.0
    assert abs(p.cubo(x, q, 2) - want) < 1e-7 * max(1.0, abs(want))


def test_divergence_exactly_where_the_condition_fails():
    """s > 1 (alpha < 0, CUBO): finite iff S - (1 - 1/s) Sigma is positive definite;
    s < 0 (alpha > 1): iff Sigma - (-s / (1 - s)) S is.  Checked at q's variance
    just inside and just outside each boundary, in 1-D, and the log integrand's
    growth far out confirms the divergence independently."""
    p, x = _lg1()
    post = p.posterior(x)
    var = float(post.cov[0, 0])
    m = post.mean
    for s in (1.5, 2.0, 4.0):  # alpha = 1 - s < 0; boundary S = (1 - 1/s) var
        edge = (1.0 - 1.0 / s) * var
        inside, outside = Gaussian(m, [math.sqrt(edge * 1.01)]), Gaussian(m, [math.sqrt(edge * 0.99)])
        assert math.isfinite(p.renyi_bound(x, inside, 1.0 - s)) and math.isfinite(p.cubo(x, inside, s))
        assert p.renyi_bound(x, outside, 1.0 - s) == math.inf and p.cubo(x, outside, s) == math.inf
        f = _log_integrand(p, x, outside, s)
        assert f(m[0] + 200.0) > f(m[0] + 100.0) > f(m[0])  # the integrand grows without bound
    for s in (-0.5, -2.0):  # alpha = 1 - s > 1; boundary S = var (1 - s) / (-s)
        edge = var * (1.0 - s) / (-s)
        inside, outside = Gaussian(m, [math.sqrt(edge * 0.99)]), Gaussian(m, [math.sqrt(edge * 1.01)])
        assert math.isfinite(p.renyi_bound(x, inside, 1.0 - s))
        assert p.renyi_bound(x, outside, 1.0 - s) == -math.inf
        f = _log_integrand(p, x, outside, s)
        assert f(m[0] + 200.0) > f(m[0] + 100.0) > f(m[0])
    # the ESS limit: 0 exactly where Var_q[w] is infinite (2 S <= Sigma)
    assert p.ess_limit(x, Gaussian(m, [math.sqrt(0.49 * var)])) == 0.0
    assert p.ess_limit(x, Gaussian(m, [math.sqrt(0.51 * var)])) > 0.0


def test_identities_and_limits():
    p, x = _lg1()
    post = p.posterior(x)
    sd = float(np.sqrt(post.cov[0, 0]))
    q = Gaussian(post.mean + 0.5 * sd, [1.4 * sd])
    log_p = p.log_marginal(x)
    assert abs(p.renyi_bound(x, q, 0.0) - log_p) < 1e-12
    assert abs(p.cubo(x, q, 1) - log_p) < 1e-12
    assert abs(p.cubo(x, q, 2) - 0.5 * p.log_weight_second_moment(x, q)) < 1e-12
    assert abs(p.ess_limit(x, q) - math.exp(2 * log_p - p.log_weight_second_moment(x, q))) < 1e-12
    assert abs(p.ess_limit(x, post) - 1.0) < 1e-12
    # alpha -> 1: L_alpha = ELBO + (1 - alpha) Var_q[log w] / 2 + O((1 - alpha)^2), the
    # mean and variance of log w by quadrature (independent of the closed forms)
    lw = lambda z: float(p.log_joint(x, np.array([[z]]))[0] - q.log_prob(np.array([[z]]))[0])  # noqa: E731
    dens = lambda z: math.exp(float(q.log_prob(np.array([[z]]))[0]))  # noqa: E731
    lo, hi = post.mean[0] - 40 * sd, post.mean[0] + 40 * sd
    mean = integrate.quad(lambda z: dens(z) * lw(z), lo, hi, epsabs=1e-13, limit=400)[0]
    var = integrate.quad(lambda z: dens(z) * (lw(z) - mean) ** 2, lo, hi, epsabs=1e-13, limit=400)[0]
    assert abs(mean - p.elbo(x, q)) < 1e-9
    for eps in (1e-3, 1e-4, 1e-5):
        slope = (p.renyi_bound(x, q, 1.0 - eps) - p.elbo(x, q)) / eps
        assert abs(slope - var / 2) < 2 * eps * (1 + var) ** 2 + 1e-6, (eps, slope, var / 2)
    # non-increasing in alpha, through log p(x) at 0
    alphas = np.array([-2.0, -1.0, -0.5, 0.0, 0.25, 0.5, 0.75, 0.99, 1.5, 3.0])
    L = np.array([p.renyi_bound(x, q, a) for a in alphas])
    assert np.all(np.diff(L) < 0)
    assert p.elbo(x, q) < log_p < p.cubo(x, q, 2) < p.cubo(x, q, 3)


def test_exact_values_by_enumeration_gaussian_mixture():
    g = GaussianMixture.random(5, 2, seed=3)
    x = g.sample(1, seed=4)[0]
    for probs in ([0.3, 0.1, 0.2, 0.25, 0.15], [0.5, 0.0, 0.2, 0.3, 0.0]):
        q = Categorical(probs)
        ks = np.flatnonzero(q.probs > 0)
        lw = g.log_joint(x, ks[:, None]) - q.log_prob(ks)
        lq = q.log_prob(ks)
        for s in (-1.0, 0.5, 2.0, 3.0):
            want = logsumexp(lq + s * lw)  # sum_k q_k w_k^s
            assert abs(g.log_weight_moment(x, q, s) - want) < 1e-12 * max(1, abs(want))
            assert abs(g.renyi_bound(x, q, 1 - s) - want / s) < 1e-12 * max(1, abs(want))
            if s >= 1:
                assert abs(g.cubo(x, q, s) - want / s) < 1e-12 * max(1, abs(want))
        # alpha = 0 is log sum_{k: q_k > 0} p(x, k): log p(x) when q covers every component
        covered = logsumexp(g.log_joint(x, ks[:, None]))
        assert abs(g.renyi_bound(x, q, 0.0) - covered) < 1e-12 * max(1, abs(covered))
        if len(ks) == 5:
            assert abs(covered - g.log_marginal(x)) < 1e-12 * max(1, abs(covered))
        assert abs(g.renyi_bound(x, q, 1 - 1e-7) - g.elbo(x, q)) < 1e-5
        # ESS / K -> E_q[w]^2 / E_q[w^2] (= p(x)^2 / E_q[w^2] when q covers every component)
        assert abs(g.ess_limit(x, q) - math.exp(2 * logsumexp(lq + lw) - logsumexp(lq + 2 * lw))) < 1e-12


def test_exact_values_by_enumeration_missing_pixels():
    mp = MissingPixels.digits(latent_rows=1)  # 8 latent bits: 256 completions
    x = mp.sample(1, seed=5)[0]
    q = Bernoulli(np.linspace(0.2, 0.8, mp.latent_dim))
    z = np.array(list(itertools.product([0, 1], repeat=mp.latent_dim)), dtype=np.int8)
    lq = q.log_prob(z)
    lw = mp.log_joint(x, z) - lq
    for s in (-0.5, 0.5, 2.0):
        want = logsumexp(lq + s * lw)
        assert abs(mp.log_weight_moment(x, q, s) - want) < 1e-12 * max(1, abs(want))
    assert abs(mp.cubo(x, q, 2) - logsumexp(lq + 2 * lw) / 2) < 1e-12 * 50
    assert abs(mp.renyi_bound(x, q, 0.0) - mp.log_marginal(x)) < 1e-12 * 50
    assert abs(mp.ess_limit(x, q) - math.exp(2 * mp.log_marginal(x) - logsumexp(lq + 2 * lw))) < 1e-12


def test_exact_bad_input():
    p, x = _lg1()
    q = p.prior()
    with pytest.raises(ValueError, match=r"^alpha: .*use p\.elbo"):
        p.renyi_bound(x, q, 1)
    for bad in (math.nan, math.inf, "a", None, True):
        with pytest.raises(ValueError, match=r"^alpha: "):
            p.renyi_bound(x, q, bad)
    for bad in (0.99, 0, -2, math.nan):
        with pytest.raises(ValueError, match=r"^n: "):
            p.cubo(x, q, bad)
    with pytest.raises(ValueError, match=r"^q: "):
        p.renyi_bound(x, estimators.Uniform([-1.0], [1.0]), 0.5)
    mp = MissingPixels.digits(latent_rows=3)  # 24 bits: beyond enumeration
    with pytest.raises(ValueError, match=r"^q: "):
        mp.cubo(mp.sample(1, seed=0)[0], Bernoulli(np.full(24, 0.5)), 2)


# =========================================================================== estimators


def _lg_case(factor=1.3):
    p, x = _lg2()
    post = p.posterior(x)
    sd = np.sqrt(np.diag(post.cov))
    return p, x, Gaussian(post.mean + 0.3 * sd, factor * sd)


def _relative_variance(p, x, q, s):
    """Var_q[w^s] / E_q[w^s]^2 from the exact moments (inf if infinite)."""
    return math.expm1(p.log_weight_moment(x, q, 2 * s) - 2 * p.log_weight_moment(x, q, s))


def _assert_mean_one(ratio, label):
    se = ratio.std(ddof=1) / math.sqrt(len(ratio))
    assert abs(ratio.mean() - 1.0) < Z * se, f"{label}: mean {ratio.mean():.5f}, SE {se:.5f}"


@pytest.mark.parametrize("alpha, factor", [(0.5, 1.3), (-0.5, 1.3), (2.0, 0.9)])
def test_renyi_estimator_unbiased_inside_the_log(alpha, factor):
    """(1/K) sum w^s is unbiased for E_q[w^s]: exp(s (L_hat - L)) has mean 1.
    q is chosen so that Var_q[w^s] is finite and moderate (from the exact
    moments), so the SE from the replicates is meaningful."""
    p, x, q = _lg_case(factor)
    s = 1.0 - alpha
    assert _relative_variance(p, x, q, s) < 3.0
    K, R = 20, 2000
    est = estimators.renyi_bound(p, x, q, K, R, alpha, seed=3)
    _assert_mean_one(np.exp(s * (est - p.renyi_bound(x, q, alpha))), f"renyi alpha={alpha}")


@pytest.mark.parametrize("n", [1.5, 2, 3])
def test_cubo_estimator_unbiased_inside_the_log_and_biased_low(n):
    """At K = 4 the log's bias (about -Var[w^n] / (2 n K E[w^n]^2), 0.04 here)
    is ten SEs: the CUBO estimate falls below the exact CUBO on average."""
    p, x, q = _lg_case(1.3)
    assert _relative_variance(p, x, q, n) < 3.0
    K, R = 4, 4000
    est = estimators.cubo(p, x, q, K, R, n=n, seed=4)
    truth = p.cubo(x, q, n)
    _assert_mean_one(np.exp(n * (est - truth)), f"cubo n={n}")
    assert est.mean() < truth - Z * est.std(ddof=1) / math.sqrt(R)


def test_discrete_estimators_against_enumeration():
    g = GaussianMixture.random(4, 2, seed=7)
    xg = g.sample(1, seed=8)[0]
    qg = Categorical(0.5 * g.posterior(xg).probs + 0.5 * np.full(4, 0.25))
    mp = MissingPixels.digits(latent_rows=2)
    xm = mp.sample(1, seed=9)[0]
    qm = Bernoulli(np.clip(mp.posterior_marginals(xm), 0.1, 0.9))
    for p, x, q in ((g, xg, qg), (mp, xm, qm)):
        for alpha in (0.5, -1.0):
            s = 1 - alpha
            assert _relative_variance(p, x, q, s) < 5.0, (type(p).__name__, alpha)
            est = estimators.renyi_bound(p, x, q, 20, 2000, alpha, seed=10)
            _assert_mean_one(np.exp(s * (est - p.renyi_bound(x, q, alpha))), f"{type(p).__name__} alpha={alpha}")
        est = estimators.cubo(p, x, q, 20, 2000, n=2, seed=11)
        _assert_mean_one(np.exp(2 * (est - p.cubo(x, q, 2))), f"{type(p).__name__} cubo")


def test_alpha_zero_is_importance_sampling_and_alpha_to_one_the_elbo():
    p, x, q = _lg_case()
    for K in (7, 2 * CHUNK + 3):
        is_ = estimators.importance_sampling(p, x, q, K, 3, seed=12)
        np.testing.assert_allclose(estimators.renyi_bound(p, x, q, K, 3, 0.0, seed=12), is_, rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(estimators.cubo(p, x, q, K, 3, n=1, seed=12), is_, rtol=1e-13, atol=1e-13)
        elbo = estimators.elbo(p, x, q, K, 3, seed=12)
        near = estimators.renyi_bound(p, x, q, K, 3, 1 - 1e-7, seed=12)
        assert np.all(np.abs(near - elbo) < 1e-5), (near, elbo)
        # the estimator is non-increasing in alpha on the same draws (power means)
        vals = np.array([estimators.renyi_bound(p, x, q, K, 3, a, seed=12) for a in (-1.0, 0.0, 0.5, 0.999)])
        assert np.all(np.diff(vals, axis=0) <= 1e-12)


class _UserLG(problems.Problem):
    def __init__(self, lg):
        self._lg = lg
        self.obs_dim, self.latent_dim = lg.obs_dim, lg.latent_dim

    def log_joint(self, x, z):
        return self._lg.log_joint(x, z)

    def log_marginal(self, x):
        return self._lg.log_marginal(x)

    def prior(self):
        return self._lg.prior()


def test_generic_path_equals_compiled_and_threads_do_not_matter():
    p, x, q = _lg_case()
    user = _UserLG(p)
    assert estimators.execution_path(user, x, q) == "generic"
    K, R = 2 * CHUNK + 9, 3
    for fn, kw in ((estimators.renyi_bound, dict(alpha=0.5)), (estimators.cubo, dict(n=2))):
        a = fn(p, x, q, K, R, seed=13, **kw)
        b = fn(user, x, q, K, R, seed=13, **kw)
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
        n_max = numba.config.NUMBA_NUM_THREADS
        try:
            numba.set_num_threads(1)
            one = fn(p, x, q, K, R, seed=13, **kw)
        finally:
            numba.set_num_threads(n_max)
        np.testing.assert_array_equal(one, a)


def test_zero_weights_with_negative_power():
    """A weight of exactly 0 (a categorical q with mass on a component of mixture
    weight 0): w^s with s < 0 is +inf, so the bound with alpha > 1 is -inf, in
    the estimate and the exact value, never NaN."""
    g = GaussianMixture(np.array([0.5, 0.5, 0.0]), np.zeros((3, 1)), np.ones((3, 1, 1)))
    x = np.array([0.3])
    q = Categorical([0.4, 0.3, 0.3])
    est = estimators.renyi_bound(g, x, q, 100, 3, 2.0, seed=0)
    assert np.all(est == -np.inf)
    assert g.renyi_bound(x, q, 2.0) == -np.inf
    ok = estimators.renyi_bound(g, x, q, 100, 3, 0.5, seed=0)
    assert np.all(np.isfinite(ok))


def test_estimator_bad_input():
    p, x, q = _lg_case()
    with pytest.raises(ValueError, match=r"^alpha: .*use estimators\.elbo"):
        estimators.renyi_bound(p, x, q, 10, 2, 1.0)
    with pytest.raises(ValueError, match=r"^alpha: "):
        estimators.renyi_bound(p, x, q, 10, 2, math.nan)
    for bad in (0.5, 0, -1, "two"):
        with pytest.raises(ValueError, match=r"^n: "):
            estimators.cubo(p, x, q, 10, 2, n=bad)
    with pytest.raises(ValueError, match=r"^K: "):
        estimators.cubo(p, x, q, 0, 2)
    with pytest.raises(ValueError, match=r"^R: "):
        estimators.renyi_bound(p, x, q, 10, 0, 0.5)


# =========================================================================== ESS and its limit


def test_ess_over_k_tends_to_the_exact_limit():
    """ESS / K = (mean w)^2 / mean(w^2) -> E_q[w]^2 / E_q[w^2] (law of large
    numbers); at K = 1e5 its O(1/K) bias is far below the 5-SE tolerance (SE
    from R = 20 replicates)."""
    p, x, q = _lg_case(1.3)
    g = GaussianMixture.random(4, 2, seed=7)
    xg = g.sample(1, seed=8)[0]
    mp = MissingPixels.digits(latent_rows=2)
    xm = mp.sample(1, seed=9)[0]
    cases = [
        (p, x, q),
        (g, xg, Categorical([0.4, 0.3, 0.2, 0.1])),
        (mp, xm, Bernoulli(np.clip(mp.posterior_marginals(xm), 0.1, 0.9))),
    ]
    K, R = 100_000, 20
    for prob, xx, qq in cases:
        limit = prob.ess_limit(xx, qq)
        assert 0.0 < limit < 1.0
        r = estimators.weight_stats(prob, xx, qq, K, R, seed=21).ess / K
        se = r.std(ddof=1) / math.sqrt(R)
        assert abs(r.mean() - limit) < Z * se + 10.0 / K, (type(prob).__name__, r.mean(), limit, se)
    # 1-D: the limit against quadrature of E_q[w^2] (s = 2) and p(x) (s = 1)
    p1, x1 = _lg1()
    post = p1.posterior(x1)
    q1 = Gaussian(post.mean + 0.3, [1.2 * math.sqrt(post.cov[0, 0])])
    want = math.exp(2 * _quad_log_moment_1d(p1, x1, q1, 1.0) - _quad_log_moment_1d(p1, x1, q1, 2.0))
    assert abs(p1.ess_limit(x1, q1) - want) < 1e-10


def test_ess_limit_is_zero_where_the_variance_is_infinite():
    """2 S < Sigma: Var_q[w] = inf, the limit is 0, and ESS/K keeps falling with K."""
    p, x = _lg1()
    post = p.posterior(x)
    q = Gaussian(post.mean, [math.sqrt(0.3 * post.cov[0, 0])])
    assert p.ess_limit(x, q) == 0.0 and p.relative_weight_variance(x, q) == math.inf
    R = 20
    small = estimators.weight_stats(p, x, q, 1_000, R, seed=22).ess / 1_000
    large = estimators.weight_stats(p, x, q, 100_000, R, seed=23).ess / 100_000
    se = math.hypot(small.std(ddof=1), large.std(ddof=1)) / math.sqrt(R)
    assert small.mean() - large.mean() > Z * se, (small.mean(), large.mean(), se)
