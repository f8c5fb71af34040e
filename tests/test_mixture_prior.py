r"""MixturePrior (1-D z ~ sum_j w_j N(m_j, s_j^2), x | z ~ N(z, sigma^2)) against
computations written here, independently of the library:

* every density from ``scipy.stats.norm`` pdfs, summed by hand;
* every integral by ``scipy.integrate.quad`` of an integrand written in this
  file (the library's elbo/kl are quadratures too, but of its own integrands);
* ``elbo_grad`` against central finite differences of ``elbo``;
* the Monte Carlo estimators at 5 standard errors with fixed seeds.
"""

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.stats import norm

import estimators
from estimators import Gaussian, MixtureOfGaussians, Uniform
from problems import MixturePrior

Z = 5.0  # statistical tolerance in standard errors

CASES = {
    "lecture": (MixturePrior.lecture(), MixturePrior.lecture_x),
    "three": (MixturePrior([0.2, 0.5, 0.3], [-3.0, 0.0, 4.0], [0.5, 1.0, 0.7], 1.3), np.array([1.1])),
}


# --------------------------------------------------------------------------- independent densities
def prior_pdf(p, z):
    return sum(w * norm.pdf(z, m, s) for w, m, s in zip(p.weights, p.locs, p.scales))


def log_prior_pdf(p, z):
    """log p(z), by np.logaddexp over the components (no underflow in the far tails)."""
    terms = [np.log(w) + norm.logpdf(z, m, s) for w, m, s in zip(p.weights, p.locs, p.scales)]
    out = terms[0]
    for t in terms[1:]:
        out = np.logaddexp(out, t)
    return out


def lik_pdf(p, x0, z):
    return norm.pdf(x0, loc=z, scale=p.noise)


def joint_pdf(p, x0, z):
    return prior_pdf(p, z) * lik_pdf(p, x0, z)


def quad_all(f, lo=-np.inf, hi=np.inf, points=None):
    if points is not None:
        val, err = quad(f, lo, hi, points=points, epsabs=1e-13, epsrel=1e-12, limit=500)
    else:
        val, err = quad(f, lo, hi, epsabs=1e-13, epsrel=1e-12, limit=500)
    assert err < 1e-9, err
    return val


def marginal_quad(p, x0):
    """p(x) = int p(z) p(x|z) dz, over a range holding all but ~e-100 of the mass."""
    lo = min(p.locs.min(), x0) - 40 * max(p.scales.max(), p.noise)
    hi = max(p.locs.max(), x0) + 40 * max(p.scales.max(), p.noise)
    return quad_all(lambda z: joint_pdf(p, x0, z), lo, hi, points=sorted(set(p.locs.tolist() + [x0])))


def q_support(q):
    if isinstance(q, Uniform):
        return float(q.low[0]), float(q.high[0])
    if isinstance(q, Gaussian):
        return float(q.loc[0] - 30 * q.scale[0]), float(q.loc[0] + 30 * q.scale[0])
    return float((q.locs - 30 * q.scales).min()), float((q.locs + 30 * q.scales).max())


def q_pdf(q, z):
    if isinstance(q, Uniform):
        return 1.0 / float(q.high[0] - q.low[0])
    if isinstance(q, Gaussian):
        return norm.pdf(z, q.loc[0], q.scale[0])
    return sum(w * norm.pdf(z, m, s) for w, m, s in zip(q.weights, q.locs, q.scales))


def elbo_quad(p, x0, q):
    """ELBO(q) = int q(z) [log p(z) + log p(x|z) - log q(z)] dz."""
    lo, hi = q_support(q)

    def f(z):
        qz = q_pdf(q, z)
        if qz == 0.0:
            return 0.0
        return qz * (log_prior_pdf(p, z) + norm.logpdf(x0, loc=z, scale=p.noise) - np.log(qz))

    return quad_all(f, lo, hi)


def kl_quad(p, x0, q):
    """KL(q || p(z|x)) = int q(z) log(q(z) / p(z|x)) dz, with p(z|x) = p(z) p(x|z) / p(x)
    and p(x) by quadrature (never the library's posterior or log_marginal)."""
    px = marginal_quad(p, x0)
    lo, hi = q_support(q)

    def f(z):
        qz = q_pdf(q, z)
        if qz == 0.0:
            return 0.0
        log_post = log_prior_pdf(p, z) + norm.logpdf(x0, loc=z, scale=p.noise) - np.log(px)
        return qz * (np.log(qz) - log_post)

    return quad_all(f, lo, hi)


QS = {
    "N(2, sd 2)": Gaussian([2.0], [2.0]),
    "N(-4, sd 0.75)": Gaussian([-4.0], [0.75]),
    "N(0.5, sd 0.3)": Gaussian([0.5], [0.3]),
    "N(-1, sd 5)": Gaussian([-1.0], [5.0]),
    "U(-10, 10)": Uniform([-10.0], [10.0]),
    "U(-1, 3)": Uniform([-1.0], [3.0]),
}


# --------------------------------------------------------------------------- exact quantities
@pytest.mark.parametrize("case", CASES)
def test_log_marginal_matches_quadrature(case):
    p, x = CASES[case]
    assert p.log_marginal(x) == pytest.approx(np.log(marginal_quad(p, x[0])), rel=1e-10, abs=1e-10)
    xs = np.array([[-6.0], [0.0], [3.3]])
    want = [np.log(marginal_quad(p, v)) for v in xs[:, 0]]
    np.testing.assert_allclose(p.log_marginal(xs), want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("case", CASES)
def test_posterior_density_is_prior_times_likelihood_over_evidence(case):
    p, x = CASES[case]
    post = p.posterior(x)
    px = marginal_quad(p, x[0])
    zs = np.array([-7.0, -4.0, -3.8, -1.0, 0.0, 0.5, 2.0, 4.0, 9.0])
    want = joint_pdf(p, x[0], zs) / px
    np.testing.assert_allclose(np.exp(post.log_prob(zs[:, None])), want, rtol=1e-9, atol=1e-300)
    # and it is a density: it integrates to one
    assert quad_all(lambda z: np.exp(post.log_prob(np.array([[z]])))[0], -60, 60) == pytest.approx(1.0, abs=1e-10)


# (case, q): every q on the lecture instance, a few on the three-component one
# (each library elbo/kl is itself an adaptive quadrature: ~0.1 s a call)
ELBO_CASES = [("lecture", q) for q in QS] + [("three", "N(2, sd 2)"), ("three", "U(-1, 3)")]
GRAD_CASES = [("lecture", "N(2, sd 2)"), ("lecture", "N(-4, sd 0.75)"), ("three", "N(-1, sd 5)")]


@pytest.mark.parametrize("case, qname", ELBO_CASES)
def test_elbo_and_kl_match_quadrature_of_their_definitions(case, qname):
    """elbo and kl against this file's quadratures, and log p(x) = ELBO + KL to 1e-9."""
    p, x = CASES[case]
    q = QS[qname]
    elbo, kl = p.elbo(x, q), p.kl(x, q)
    assert elbo == pytest.approx(elbo_quad(p, x[0], q), abs=1e-8)
    assert kl == pytest.approx(kl_quad(p, x[0], q), abs=1e-8)
    assert kl > 0
    assert abs(p.log_marginal(x) - (elbo + kl)) < 1e-9


@pytest.mark.parametrize("case, qname", GRAD_CASES)
def test_elbo_grad_matches_finite_differences(case, qname):
    p, x = CASES[case]
    q = QS[qname]
    theta = q.params
    h = 1e-4
    fd = np.empty_like(theta)
    for i in range(theta.size):
        e = np.zeros_like(theta)
        e[i] = h
        fd[i] = (p.elbo(x, q.with_params(theta + e)) - p.elbo(x, q.with_params(theta - e))) / (2 * h)
    # quadrature error <= 1e-10 per call -> <= 1e-6 in the difference quotient; truncation O(h^2)
    np.testing.assert_allclose(p.elbo_grad(x, q), fd, rtol=1e-6, atol=2e-6)


def test_lecture_posterior_is_bimodal():
    """Two local maxima of p(z|x) on a fine grid: a minor one near -4 and a major one near 2."""
    p, x = CASES["lecture"]
    z = np.linspace(-12, 12, 24001)
    dens = joint_pdf(p, x[0], z)  # proportional to the posterior
    interior = (dens[1:-1] > dens[:-2]) & (dens[1:-1] > dens[2:])
    modes = z[1:-1][interior]
    assert len(modes) == 2, modes
    assert -5 < modes[0] < -3 and 1 < modes[1] < 3
    minor, major = dens[1:-1][interior]
    assert minor < major
    # a real trough between them
    between = (z > modes[0]) & (z < modes[1])
    assert dens[between].min() < 0.2 * minor


def test_lecture_question_both_readings():
    """The lecture's question -- is N(2, 2) or N(-4, 0.75) closer to p(z|x)? --
    by KL(q || p(z|x)) from this file's quadrature, reading the second
    parameter as a variance and as a standard deviation."""
    p, x = CASES["lecture"]
    for read in (np.sqrt, lambda s: s):  # N(mu, sigma^2), then N(mu, sigma)
        good = Gaussian([2.0], [read(2.0)])
        bad = Gaussian([-4.0], [read(0.75)])
        assert kl_quad(p, x[0], good) < kl_quad(p, x[0], bad)
        assert p.kl(x, good) == pytest.approx(kl_quad(p, x[0], good), abs=1e-8)


# --------------------------------------------------------------------------- Monte Carlo estimators
MC_QS = {
    "gaussian": Gaussian([2.0], [2.0]),
    "uniform": Uniform([-12.0], [12.0]),
    "mixture": MixtureOfGaussians([0.5, 0.5], [-4.0, 2.0], [1.0, 2.0]),
}


@pytest.mark.parametrize("K", [1, 10])
@pytest.mark.parametrize("qname", MC_QS)
def test_importance_sampling_p_hat_is_unbiased(qname, K):
    """E[p_hat] = int over q's support of p(x, z) dz (= p(x) up to < 1e-10 of mass
    outside the box): mean of p_hat / truth within 5 SE of 1."""
    p, x = CASES["lecture"]
    q = MC_QS[qname]
    lo, hi = q_support(q)
    truth = quad_all(lambda z: joint_pdf(p, x[0], z), lo, hi, points=[-4.0, 2.0])
    est = estimators.importance_sampling(p, x, q, K, 20000, seed=11)
    u = np.exp(est - np.log(truth))
    assert abs(u.mean() - 1) < Z * u.std(ddof=1) / np.sqrt(u.size), (u.mean(), u.std())
    if isinstance(q, Uniform):
        assert abs(np.log(truth) - p.log_marginal(x)) < 1e-9  # the box holds the mass


@pytest.mark.parametrize("K", [1, 10])
@pytest.mark.parametrize("qname", MC_QS)
def test_elbo_estimator_is_unbiased(qname, K):
    p, x = CASES["lecture"]
    q = MC_QS[qname]
    truth = elbo_quad(p, x[0], q)
    est = estimators.elbo(p, x, q, K, 20000, seed=12)
    assert abs(est.mean() - truth) < Z * est.std(ddof=1) / np.sqrt(est.size)
    if not isinstance(q, MixtureOfGaussians):
        assert p.elbo(x, q) == pytest.approx(truth, abs=1e-8)


def test_single_sample_log_estimate_has_mean_elbo_not_log_p():
    """K = 1: E[log p_hat] = ELBO(q) < log p(x) -- the estimate of log p is biased."""
    p, x = CASES["lecture"]
    q = MC_QS["gaussian"]
    est = estimators.importance_sampling(p, x, q, 1, 40000, seed=13)
    se = est.std(ddof=1) / np.sqrt(est.size)
    assert abs(est.mean() - elbo_quad(p, x[0], q)) < Z * se
    assert p.log_marginal(x) - est.mean() > Z * se


@pytest.mark.parametrize("K", [1, 7, 100])
def test_importance_sampling_under_the_exact_posterior_is_exact(K):
    """q = p(z|x) (a MixtureOfGaussians) makes every weight p(x, z)/p(z|x) = p(x)."""
    for case in CASES:
        p, x = CASES[case]
        post = p.posterior(x)
        assert isinstance(post, MixtureOfGaussians)
        est = estimators.importance_sampling(p, x, post, K, 50, seed=3)
        np.testing.assert_allclose(est, np.log(marginal_quad(p, x[0])), rtol=0, atol=1e-10)
        el = estimators.elbo(p, x, post, K, 50, seed=3)
        np.testing.assert_allclose(el, p.log_marginal(x), rtol=0, atol=1e-10)


# --------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(weights=[0.5, 0.6], locs=[0, 1], scales=[1, 1], noise=1), "weights"),
        (dict(weights=[0.5, 0.5], locs=[0, 1, 2], scales=[1, 1], noise=1), "locs"),
        (dict(weights=[0.5, 0.5], locs=[0, 1], scales=[1, -1], noise=1), "scales"),
        (dict(weights=[0.5, 0.5], locs=[0, 1], scales=[1, 1], noise=0.0), "noise"),
        (dict(weights=[0.5, 0.5], locs=[0, np.nan], scales=[1, 1], noise=1), "locs"),
    ],
)
def test_bad_construction_names_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        MixturePrior(**kwargs)


def test_bad_q_and_x_name_the_argument():
    p, x = CASES["lecture"]
    with pytest.raises(ValueError, match="q"):
        p.elbo(x, MixtureOfGaussians([1.0], [0.0], [1.0]))
    with pytest.raises(ValueError, match="q"):
        p.elbo_grad(x, Uniform([-1.0], [1.0]))
    with pytest.raises(ValueError, match="x"):
        p.log_marginal(np.array([np.inf]))
    with pytest.raises(ValueError, match="x"):
        p.elbo(np.array([0.0, 1.0]), Gaussian([0.0], [1.0]))
