"""estimators.elbo(..., kl="analytic"): the reconstruction term by Monte Carlo and
KL(q || p(z)) in closed form.

Truths come from elsewhere: the exact ELBO is LinearGaussian.elbo (a closed form
that never draws), the KL is checked against scipy quadrature / the textbook
diagonal formula, and the exact variances of LinearGaussian.elbo_estimator_variance
are checked against the empirical variance of many replicates (5 SE, the SE of a
variance from the replicates' fourth moment)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats

import estimators
from estimators import Gaussian, MultivariateGaussian, Uniform
from estimators import kl_to_prior
from problems import LinearGaussian

P = LinearGaussian.random(5, 2, seed=1)
X = P.sample(1, seed=2)[0]


def _z(est, truth):
    return abs(est.mean() - truth) / (est.std(ddof=1) / np.sqrt(est.size))


def _var_z(est, exact_var):
    """z-score of the sample variance of the replicates against an exact variance."""
    d = est - est.mean()
    s2 = np.mean(d**2)
    se = np.sqrt((np.mean(d**4) - s2**2) / est.size)
    return abs(s2 - exact_var) / se


QS = {
    "gaussian": Gaussian(np.array([0.3, -0.2]), np.array([0.8, 1.2])),
    "full": MultivariateGaussian(np.array([0.3, -0.2]), np.array([[1.0, 0.3], [0.3, 0.5]])),
    "uniform": Uniform(np.array([-2.0, -1.5]), np.array([1.0, 2.5])),
}


@pytest.mark.parametrize("name", list(QS))
def test_analytic_kl_elbo_is_unbiased(name):
    q = QS[name]
    est = estimators.elbo(P, X, q, K=3, R=4000, seed=5, kl="analytic")
    assert est.shape == (4000,)
    assert _z(est, P.elbo(X, q)) < 5.0


@pytest.mark.parametrize("name", ["gaussian", "full"])
def test_exact_variances_match_the_replicates(name):
    q = QS[name]
    K, R = 3, 6000
    for kl in ("mc", "analytic"):
        est = estimators.elbo(P, X, q, K=K, R=R, seed=7, kl=kl)
        assert _var_z(est, P.elbo_estimator_variance(X, q, K, kl=kl)) < 5.0, kl


def test_variance_closed_form_limits():
    """q = p(z|x): the all-MC log-weight is constant (variance 0) and the analytic
    one is not; q = p(z): both estimators are the same function of the draws."""
    post = P.posterior(X)
    assert P.elbo_estimator_variance(X, post, kl="mc") == pytest.approx(0.0, abs=1e-12)
    assert P.elbo_estimator_variance(X, post, kl="analytic") > 0.1
    prior = P.prior()
    assert P.elbo_estimator_variance(X, prior, kl="mc") == pytest.approx(
        P.elbo_estimator_variance(X, prior, kl="analytic"), rel=1e-12)
    a = estimators.elbo(P, X, prior, K=4, R=50, seed=1, kl="analytic")
    m = estimators.elbo(P, X, prior, K=4, R=50, seed=1)
    np.testing.assert_allclose(a, m, rtol=0, atol=1e-10)  # the same draws, the same numbers


def test_analytic_variance_is_lower_for_a_narrow_q_and_higher_at_the_meanfield_optimum():
    """A q at the posterior mean, 0.2 x the mean-field scale (narrow, the regime of
    a VAE's encoder early in training): the entropy term's fluctuation (about d/2
    per draw) dominates the all-MC variance, and the closed-form KL removes it.  At
    the mean-field optimum it is the other way round: the log-weight is nearly
    constant there, while log p(x|z) is not.  The exact variances are checked
    against the replicates too."""
    p = LinearGaussian(np.array([[3.0, 0.0], [0.0, 2.0], [1.0, 1.0]]), np.zeros(3), np.full(3, 0.5))
    x = np.array([1.0, -2.0, 0.5])
    post = p.posterior(x)
    mf = 1.0 / np.sqrt(np.diag(p._post_precision))
    narrow, optimum = Gaussian(post.loc, 0.2 * mf), Gaussian(post.loc, mf)
    v_mc, v_an = (p.elbo_estimator_variance(x, narrow, 1, kl=k) for k in ("mc", "analytic"))
    assert v_an < 0.1 * v_mc
    assert p.elbo_estimator_variance(x, optimum, kl="analytic") > 10 * p.elbo_estimator_variance(x, optimum)
    m = estimators.elbo(p, x, narrow, K=1, R=20000, seed=3)
    a = estimators.elbo(p, x, narrow, K=1, R=20000, seed=3, kl="analytic")
    assert _var_z(m, v_mc) < 5 and _var_z(a, v_an) < 5
    assert a.var() < m.var()


def test_kl_to_prior_against_quadrature_and_the_diagonal_formula():
    q = QS["gaussian"]
    m, s = q.loc, q.scale
    diag = 0.5 * np.sum(s**2 + m**2 - 1.0 - 2 * np.log(s))
    assert kl_to_prior(P, q) == pytest.approx(diag, rel=1e-12)
    # a user prior N(m0, S0), q full: 2-D quadrature of q log(q/p)
    class Model:
        obs_dim, latent_dim = 1, 2

        def log_joint(self, x, z):
            return np.zeros(len(z))

        def log_likelihood(self, x, z):
            return np.zeros(len(z))

        def prior(self):
            return MultivariateGaussian(np.array([0.5, -1.0]), np.array([[2.0, -0.4], [-0.4, 0.7]]))

    qf = QS["full"]
    def logpdf(mean, cov):
        prec, logdet = np.linalg.inv(cov), np.linalg.slogdet(cov)[1]
        return lambda a, b: (-0.5 * (np.array([a, b]) - mean) @ prec @ (np.array([a, b]) - mean)
                             - np.log(2 * np.pi) - 0.5 * logdet)

    lq, lp = logpdf(qf.loc, qf.cov), logpdf(np.array([0.5, -1.0]), np.array([[2.0, -0.4], [-0.4, 0.7]]))
    val, _ = integrate.dblquad(lambda b, a: np.exp(lq(a, b)) * (lq(a, b) - lp(a, b)), -6, 6.5, -5, 4.5,
                               epsabs=1e-9)
    assert kl_to_prior(Model(), qf) == pytest.approx(val, abs=1e-7)


class UserModel:
    """A user's nonlinear model with a Gaussian prior and its own log_likelihood:
    z ~ N(0, I_2), x | z ~ N(tanh(z1) + z2, 0.3^2) in 1-D.  Its ELBO reference is
    quadrature of the same integrand (independent of the estimator)."""

    obs_dim, latent_dim, latent_type = 1, 2, "continuous"

    def log_likelihood(self, x, z):
        r = (x[0] - np.tanh(z[:, 0]) - z[:, 1]) / 0.3
        return -0.5 * r * r - np.log(0.3 * np.sqrt(2 * np.pi))

    def log_joint(self, x, z):
        return self.log_likelihood(x, z) - 0.5 * np.sum(z * z, axis=1) - np.log(2 * np.pi)

    def log_marginal(self, x):  # not used here
        raise ValueError("log_marginal: not needed in this test")

    def prior(self):
        return Gaussian(np.zeros(2), np.ones(2))


def test_user_model_generic_path_is_unbiased_and_reproducible():
    m, x = UserModel(), np.array([0.7])
    q = Gaussian(np.array([0.2, 0.4]), np.array([0.5, 0.4]))
    def integrand(b, a):
        lq = -0.5 * (((a - q.loc[0]) / q.scale[0]) ** 2 + ((b - q.loc[1]) / q.scale[1]) ** 2)
        lq -= np.log(2 * np.pi * q.scale[0] * q.scale[1])
        r = (x[0] - np.tanh(a) - b) / 0.3
        return np.exp(lq) * (-0.5 * r * r - np.log(0.3 * np.sqrt(2 * np.pi)))

    recon, _ = integrate.dblquad(integrand, -3, 3.5, -2.5, 3.5, epsabs=1e-10)
    truth = recon - kl_to_prior(m, q)
    est = estimators.elbo(m, x, q, K=4, R=1500, seed=2, kl="analytic")
    assert _z(est, truth) < 5.0
    np.testing.assert_array_equal(est, estimators.elbo(m, x, q, K=4, R=1500, seed=2, kl="analytic"))
    # the mc estimator of the same ELBO, same draws: both unbiased for the same number
    assert _z(estimators.elbo(m, x, q, K=4, R=1500, seed=2), truth) < 5.0


def test_compiled_is_thread_count_free_and_large_k_streams():
    """The compiled reconstruction sum: K above one chunk, and the generic path's
    numbers (same draws) to rounding."""
    q = QS["gaussian"]
    est = estimators.elbo(P, X, q, K=40000, R=2, seed=9, kl="analytic")

    class Same:
        obs_dim, latent_dim, latent_type = 5, 2, "continuous"
        log_joint = staticmethod(P.log_joint)
        log_likelihood = staticmethod(P.log_likelihood)
        prior = staticmethod(P.prior)

    gen = estimators.elbo(Same(), X, q, K=40000, R=2, seed=9, kl="analytic")
    np.testing.assert_allclose(est, gen, rtol=1e-12)
    assert np.all(np.abs(est - P.elbo(X, q)) < 0.2)


def test_default_is_unchanged():
    q = QS["gaussian"]
    np.testing.assert_array_equal(estimators.elbo(P, X, q, 8, 10, seed=4),
                                  estimators.weight_stats(P, X, q, 8, 10, seed=4).elbo)
    np.testing.assert_array_equal(estimators.elbo(P, X, q, 8, 10, seed=4),
                                  estimators.elbo(P, X, q, 8, 10, seed=4, kl="mc"))


def test_bad_input_names_kl():
    q = QS["gaussian"]
    with pytest.raises(ValueError, match="^kl: must be one of"):
        estimators.elbo(P, X, q, 4, 2, kl="closed")

    class NoLik:
        obs_dim, latent_dim = 5, 2
        log_joint = staticmethod(P.log_joint)
        prior = staticmethod(P.prior)

    with pytest.raises(ValueError, match="^kl: .*log_likelihood"):
        estimators.elbo(NoLik(), X, q, 4, 2, kl="analytic")

    class NonGaussPrior(NoLik):
        log_likelihood = staticmethod(P.log_likelihood)

        def prior(self):
            return Uniform(-np.ones(2), np.ones(2))

    with pytest.raises(ValueError, match="^kl: .*Gaussian prior"):
        estimators.elbo(NonGaussPrior(), X, q, 4, 2, kl="analytic")
    class StudentT:  # a user's proposal: no closed-form KL to a Gaussian here
        dim, latent_type = 2, "continuous"

        def sample(self, n, seed=0):
            return np.random.default_rng(seed).standard_t(3, size=(n, 2))

        def log_prob(self, z):
            return stats.t.logpdf(z, 3).sum(axis=1)

    qm = StudentT()
    with pytest.raises(ValueError, match="^kl: .*closed form"):
        estimators.elbo(P, X, qm, 4, 2, kl="analytic")
    with pytest.raises(ValueError, match="^kl: "):
        P.elbo_estimator_variance(X, q, kl="x")
    with pytest.raises(ValueError, match="^K: "):
        P.elbo_estimator_variance(X, q, K=0)


def test_compiled_reconstruction_is_bit_identical_for_any_thread_count():
    import numba

    q = QS["full"]
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = estimators.elbo(P, X, q, K=40000, R=3, seed=11, kl="analytic")
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = estimators.elbo(P, X, q, K=40000, R=3, seed=11, kl="analytic")
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(one, many)
    # and the serial driver (small calls) gives the same numbers as the parallel one
    from estimators._kernels.variational import reconstruction as rk

    loc, T, diag, base = q._affine()
    args = (np.array(loc), np.ascontiguousarray(T), bool(diag), base == "normal", np.ascontiguousarray(X - P.b),
            P.W, 1.0 / P.psi, -0.5 * float(np.sum(np.log(2 * np.pi * P.psi))), estimators.weights.seed_key(11),
            40000, 3)
    np.testing.assert_array_equal(rk.recon_sums_serial(*args), rk.recon_sums_parallel(*args))
    np.testing.assert_array_equal(rk.recon_sums_serial(*args) / 40000 - kl_to_prior(P, q), one)
