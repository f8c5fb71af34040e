"""Statistical tests of estimators.importance_sampling, uniform_mc, elbo and
weight_stats against exact answers.

Every statistical assertion is |mean - truth| < 5 SE with SE = sd / sqrt(R)
computed from the R replicates, at a fixed seed.
"""

import numpy as np
import pytest
from scipy import integrate, stats

import estimators
from estimators import Categorical, Gaussian, MultivariateGaussian
from problems import GaussianMixture, LinearGaussian

LOG_2PI = np.log(2.0 * np.pi)


def lg(D, d, seed):
    p = LinearGaussian.random(D, d, seed=seed)
    return p, p.sample(1, seed=1000 + seed)[0]


def gm(C, D, seed):
    p = GaussianMixture.random(C, D, seed=seed)
    return p, p.sample(1, seed=1000 + seed)[0]


def shifted_scaled(p, x, shift, scale):
    """N(mu + shift * sd, (scale * sd)^2) around the posterior N(mu, Sigma), diagonal."""
    post = p.posterior(x)
    sd = np.sqrt(np.diag(post.cov))
    return Gaussian(post.loc + shift * sd, scale * sd)


def z_score(samples, truth):
    samples = np.asarray(samples, dtype=float)
    se = samples.std(ddof=1) / np.sqrt(samples.size)
    assert se > 0
    return (samples.mean() - truth) / se


def assert_within_5se(samples, truth, what=""):
    z = z_score(samples, truth)
    assert abs(z) < 5, f"{what}: mean {np.mean(samples)!r} vs truth {truth!r}: {z:.2f} SE"


# --------------------------------------------------------------------------- exp(IS) is unbiased for p(x)


def lg_proposals():
    """(problem factory, q factory, label): q's with finite weight variance."""
    return [
        ((3, 1, 1), lambda p, x: p.prior(), "LG-3x1-prior"),
        ((3, 1, 1), lambda p, x: shifted_scaled(p, x, 1.0, 1.5), "LG-3x1-shift1-scale1.5"),
        ((4, 2, 2), lambda p, x: p.prior(), "LG-4x2-prior"),
        (
            (4, 2, 2),
            lambda p, x: MultivariateGaussian(p.posterior(x).loc - 0.5, 1.5 * p.posterior(x).cov),
            "LG-4x2-mvg",
        ),
    ]


@pytest.mark.parametrize("K", [1, 10, 100])
@pytest.mark.parametrize("case", lg_proposals(), ids=[c[2] for c in lg_proposals()])
def test_exp_is_unbiased_linear_gaussian(case, K):
    (D, d, seed), make_q, _ = case
    p, x = lg(D, d, seed)
    q = make_q(p, x)
    assert np.isfinite(p.relative_weight_variance(x, q))  # the SE below is meaningful
    R = 20_000
    est = estimators.importance_sampling(p, x, q, K, R, seed=K)
    assert est.shape == (R,)
    ratio = np.exp(est - p.log_marginal(x))
    assert_within_5se(ratio, 1.0, f"exp(IS)/p, K={K}")


@pytest.mark.parametrize("K", [1, 10, 100])
@pytest.mark.parametrize("C, D, seed", [(4, 2, 1), (6, 3, 2)])
@pytest.mark.parametrize("which", ["prior", "random"])
def test_exp_is_unbiased_gaussian_mixture(C, D, seed, which, K):
    p, x = gm(C, D, seed)
    q = p.prior() if which == "prior" else Categorical(np.random.default_rng(seed).dirichlet(np.ones(C)))
    R = 20_000
    ratio = np.exp(estimators.importance_sampling(p, x, q, K, R, seed=K) - p.log_marginal(x))
    assert_within_5se(ratio, 1.0, f"exp(IS)/p, K={K}")


# --------------------------------------------------------------------------- exact under the posterior


@pytest.mark.parametrize("K", [1, 5, 1000, 20_000])
def test_is_under_posterior_is_exact(K):
    for p, x in (lg(3, 1, 0), lg(5, 3, 1), gm(5, 2, 0), gm(3, 4, 1)):
        est = estimators.importance_sampling(p, x, p.posterior(x), K, 4, seed=1)
        np.testing.assert_allclose(est, p.log_marginal(x), rtol=0, atol=1e-10)
        ws = estimators.weight_stats(p, x, p.posterior(x), K, 4, seed=1)
        np.testing.assert_allclose(ws.ess, K, rtol=1e-12)


# --------------------------------------------------------------------------- the bias of log p_hat


# q = N(mu + sigma/2, sigma^2) in a 1-D posterior N(mu, sigma^2): w/p(x) is
# log-normal with log-variance 1/4, so Var[w]/p^2 = e^{1/4} - 1 = 0.284.  The
# next term of E[log p_hat] - log p is (mu3/3 - 3 v^2/4)/K^2 with mu3 the third
# central moment of w/p: +0.028/K^2, i.e. 2.8e-4 at K = 10, against
# SE = sqrt(v/(K R)) = 1.2e-3 at R = 20000 -- a fifth of an SE, and smaller at
# larger K.  (A wider or further-shifted q with v ~ 1 makes that term several
# SE at K = 10; at K = 10 the predicted bias itself is 12 SE from zero, so the
# test also tells a biased estimator from an unbiased one.)
BIAS_K_R = [(10, 20_000), (100, 20_000), (1000, 20_000)]


@pytest.mark.parametrize("K, R", BIAS_K_R)
def test_is_bias_matches_delta_method(K, R):
    p, x = lg(3, 1, 1)
    q = shifted_scaled(p, x, 0.5, 1.0)
    v = p.relative_weight_variance(x, q)
    np.testing.assert_allclose(v, np.expm1(0.25), rtol=1e-10)
    est = estimators.importance_sampling(p, x, q, K, R, seed=100 + K)
    bias = est - p.log_marginal(x)
    predicted = -v / (2 * K)
    assert_within_5se(bias, predicted, f"bias at K={K}")
    if K == 10:
        assert z_score(bias, 0.0) < -5, "the Jensen bias should be clearly visible at K = 10"


@pytest.mark.parametrize("case", [(3, 1, 1), (4, 2, 2)])
def test_is_at_k1_averages_to_the_elbo(case):
    p, x = lg(*case)
    R = 20_000
    for q in (p.prior(), shifted_scaled(p, x, 1.0, 1.5)):
        est = estimators.importance_sampling(p, x, q, 1, R, seed=5)
        assert_within_5se(est, p.elbo(x, q), "IS at K=1")
        # and it is below log p(x) by the KL, clearly
        assert z_score(est, p.log_marginal(x)) < -5


def test_is_at_k1_averages_to_the_elbo_mixture():
    p, x = gm(5, 2, 3)
    q = Categorical(np.random.default_rng(3).dirichlet(np.ones(5)))
    est = estimators.importance_sampling(p, x, q, 1, 20_000, seed=6)
    assert_within_5se(est, p.elbo(x, q), "IS at K=1")


# --------------------------------------------------------------------------- the Monte Carlo ELBO


@pytest.mark.parametrize("K", [1, 10])
@pytest.mark.parametrize("D, d, seed", [(3, 1, 1), (4, 2, 2), (6, 3, 3)])
def test_mc_elbo_is_unbiased_linear_gaussian(D, d, seed, K):
    p, x = lg(D, d, seed)
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(d, d))
    qs = [
        p.prior(),
        Gaussian(rng.normal(size=d), rng.uniform(0.3, 1.5, size=d)),
        MultivariateGaussian(rng.normal(size=d), A @ A.T / d + 0.2 * np.eye(d)),
    ]
    for q in qs:
        est = estimators.elbo(p, x, q, K, 5000, seed=K)
        assert_within_5se(est, p.elbo(x, q), f"ELBO {type(q).__name__}")


@pytest.mark.parametrize("K", [1, 10])
@pytest.mark.parametrize("C, D, seed", [(4, 2, 1), (6, 3, 2)])
def test_mc_elbo_is_unbiased_gaussian_mixture(C, D, seed, K):
    p, x = gm(C, D, seed)
    for q in (p.prior(), Categorical(np.random.default_rng(seed).dirichlet(np.ones(C)))):
        est = estimators.elbo(p, x, q, K, 5000, seed=K)
        assert_within_5se(est, p.elbo(x, q), "ELBO Categorical")


def test_mc_elbo_with_zero_probability_components_stays_finite():
    """A zero-probability component has log w = -inf; it must never be drawn
    (or the ELBO estimate would be -inf).  Zeros first, inside and last."""
    p, x = gm(6, 2, 4)
    rng = np.random.default_rng(0)
    for zeros in ([0], [2, 3], [5], [0, 5]):
        probs = rng.dirichlet(np.ones(6))
        probs[zeros] = 0.0
        q = Categorical(probs / probs.sum())
        est = estimators.elbo(p, x, q, 50_000, 4, seed=1)
        assert np.all(np.isfinite(est))
        assert_within_5se(estimators.elbo(p, x, q, 10, 4000, seed=2), p.elbo(x, q), "ELBO with zeros")


# --------------------------------------------------------------------------- uniform Monte Carlo


@pytest.mark.parametrize("K", [1, 10, 100])
@pytest.mark.parametrize("C, D, seed", [(4, 2, 1), (7, 3, 2)])
def test_uniform_mc_is_unbiased_for_the_mixture(C, D, seed, K):
    p, x = gm(C, D, seed)
    R = 20_000
    est = estimators.uniform_mc(p, x, K, R, seed=K)
    assert est.shape == (R,)
    assert_within_5se(np.exp(est - p.log_marginal(x)), 1.0, f"uniform MC, K={K}")


def box_integral_by_quad(p, x, low, high):
    """int_low^high p(x, z) dz for a 1-D latent, from a hand-written joint."""
    xb, w, psi = x - p.b, p.W[:, 0], p.psi
    c = -0.5 * LOG_2PI - 0.5 * np.sum(np.log(2 * np.pi * psi))
    f = lambda z: np.exp(c - 0.5 * z * z - 0.5 * np.sum((xb - w * z) ** 2 / psi))  # noqa: E731
    return integrate.quad(f, low, high, epsabs=0, epsrel=1e-12, limit=200)[0]


@pytest.mark.parametrize("K", [1, 10, 100])
@pytest.mark.parametrize("D, seed", [(1, 0), (2, 1)])
@pytest.mark.parametrize("edges", [(-1.0, 2.0), (-6.0, 6.0), (0.5, 3.0)])
def test_uniform_mc_on_a_box_linear_gaussian(D, seed, edges, K):
    """The estimate is of the integral of p(x, z) over the box (p(x) only when
    the box holds all the posterior mass); edges are in posterior sd units."""
    p, x = lg(D, 1, seed)
    post = p.posterior(x)
    mu, sd = post.loc[0], np.sqrt(post.cov[0, 0])
    low, high = mu + edges[0] * sd, mu + edges[1] * sd
    truth = box_integral_by_quad(p, x, low, high)
    # the same number from the posterior's normal CDF
    via_cdf = np.exp(p.log_marginal(x)) * (stats.norm.cdf(edges[1]) - stats.norm.cdf(edges[0]))
    np.testing.assert_allclose(truth, via_cdf, rtol=1e-9)
    R = 20_000
    est = estimators.uniform_mc(p, x, K, R, seed=K, box=(low, high))
    assert_within_5se(np.exp(est) / truth, 1.0, f"uniform MC on a box, K={K}")


def test_uniform_mc_needs_a_box_for_a_continuous_latent():
    p, x = lg(3, 2, 0)
    with pytest.raises(ValueError, match="box"):
        estimators.uniform_mc(p, x, 10, 2)


# --------------------------------------------------------------------------- effective sample size


@pytest.mark.parametrize("K", [1, 2, 10, 1000, 40_000])
def test_ess_lies_between_one_and_k(K):
    cases = []
    p, x = lg(4, 2, 1)
    cases += [(p, x, q) for q in (p.prior(), p.posterior(x), Gaussian(np.full(2, 3.0), np.full(2, 0.1)))]
    g, xg = gm(5, 2, 1)
    cases += [(g, xg, q) for q in (g.prior(), g.posterior(xg), Categorical([0.5, 0.0, 0.0, 0.5, 0.0]))]
    for prob, xx, q in cases:
        ess = estimators.weight_stats(prob, xx, q, K, 5, seed=3).ess
        assert ess.shape == (5,)
        assert np.all((ess >= 1.0) & (ess <= K)), (type(q).__name__, ess)
    # the posterior gives K equal weights: ESS = K
    np.testing.assert_allclose(estimators.weight_stats(p, x, p.posterior(x), K, 3, seed=3).ess, K, rtol=1e-12)


def test_weight_stats_agree_with_the_estimators():
    p, x = lg(3, 2, 0)
    q = p.prior()
    ws = estimators.weight_stats(p, x, q, 500, 6, seed=9)
    np.testing.assert_array_equal(ws.log_p_hat, estimators.importance_sampling(p, x, q, 500, 6, seed=9))
    np.testing.assert_array_equal(ws.elbo, estimators.elbo(p, x, q, 500, 6, seed=9))
    np.testing.assert_allclose(ws.log_p_hat, ws.log_sum_w - np.log(500), rtol=1e-15)
