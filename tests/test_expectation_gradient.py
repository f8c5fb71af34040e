"""estimators.expectation_gradient: mc_gradients' analytic cases, against
closed forms, |mean - truth| < 5 SE (SE from the replicates; + 1e-10 for the
zero-variance cases, where only round-off remains)."""

import numpy as np
import pytest

import estimators
from estimators import Bernoulli, Gaussian

MU = np.array([0.5, -1.0])
SIG = np.array([0.8, 1.5])

CASES = {
    # f, grad_f, hess_f, exact d/d(mu, log sigma) of E[f]
    "linear": (
        lambda z: z.sum(axis=1),
        lambda z: np.ones_like(z),
        lambda z: np.zeros((z.shape[0], 2, 2)),
        np.concatenate([np.ones(2), np.zeros(2)]),
    ),
    "square": (
        lambda z: (z**2).sum(axis=1),
        lambda z: 2 * z,
        lambda z: np.broadcast_to(2 * np.eye(2), (z.shape[0], 2, 2)).copy(),
        np.concatenate([2 * MU, 2 * SIG**2]),
    ),
    # E[z^3] = mu^3 + 3 mu sigma^2: d/dmu = 3 mu^2 + 3 sigma^2, d/dlog sigma = 6 mu sigma^2
    "cubic": (
        lambda z: (z**3).sum(axis=1),
        lambda z: 3 * z**2,
        lambda z: np.stack([np.diag(6 * row) for row in z]),
        np.concatenate([3 * MU**2 + 3 * SIG**2, 6 * MU * SIG**2]),
    ),
}


def _check(est, truth):
    mean = est.mean(axis=0)
    se = est.std(axis=0, ddof=1) / np.sqrt(est.shape[0])
    assert np.all(np.abs(mean - truth) < 5 * se + 1e-10), (mean, truth, se)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("method", ["score", "score_loo", "reparam", "measure_valued", "score_cv"])
def test_gaussian_cases(case, method):
    f, g, h, truth = CASES[case]
    q = Gaussian(MU, SIG)
    est = estimators.expectation_gradient(f, q, 8, 3000, method, seed=3, grad_f=g, hess_f=h)
    assert est.shape == (3000, 4)
    _check(est, truth)


def test_measure_valued_scale_coupling_is_gaussian():
    # the coupling M U of a double-sided Maxwell M and U ~ U(0, 1) is N(0, 1): its
    # variance is 1 and its fourth moment 3 (checked here so a wrong coupling shows)
    from scipy import stats

    rng = np.random.default_rng(0)
    M = np.sqrt(rng.chisquare(3, 200000)) * np.where(rng.random(200000) < 0.5, -1, 1)
    y = M * rng.random(200000)
    assert stats.kstest(y, "norm").pvalue > 1e-3


def test_zero_variance_cases():
    f, g, h, truth = CASES["square"]
    est = estimators.expectation_gradient(f, Gaussian(MU, SIG), 4, 10, "score_cv", grad_f=g, hess_f=h)
    np.testing.assert_allclose(est, np.broadcast_to(truth, est.shape), atol=1e-12)


@pytest.mark.parametrize("method", ["score", "score_loo", "arm", "disarm"])
def test_bernoulli_squared_distance(method):
    # E[sum (b - t)^2] = sum p (1 - 2t) + t^2: d/dlogit = (1 - 2t) p (1 - p)
    p = np.array([0.2, 0.5, 0.9])
    t = np.array([0.3, 0.8, 0.1])
    f = lambda b: ((b - t) ** 2).sum(axis=1)  # noqa: E731
    est = estimators.expectation_gradient(f, Bernoulli(p), 6, 4000, method, seed=1)
    _check(est, (1 - 2 * t) * p * (1 - p))


def test_bernoulli_relaxations_biased_as_computed_exactly():
    # f(b) = sum (b - t)^2 relaxed to z in [0,1]^m: grad_f = 2 (z - t).
    # straight-through: E = 2 (p - t) p (1 - p) (enumeration over each bit);
    # Gumbel-softmax: E = int 2 (zeta - t) zeta (1 - zeta)/tau dF(L), by scipy quad per bit.
    from scipy import integrate
    from scipy.special import expit, logit

    p = np.array([0.2, 0.5, 0.9])
    t = np.array([0.3, 0.8, 0.1])
    f = lambda b: ((b - t) ** 2).sum(axis=1)  # noqa: E731
    g = lambda z: 2 * (z - t)  # noqa: E731
    exact = (1 - 2 * t) * p * (1 - p)
    st = estimators.expectation_gradient(f, Bernoulli(p), 6, 4000, "straight_through", seed=2, grad_f=g)
    _check(st, 2 * (p - t) * p * (1 - p))
    assert np.max(np.abs(st.mean(0) - exact) / (st.std(0) / np.sqrt(4000))) > 10  # measurably biased
    theta = logit(p)
    for tau in (0.2, 1.0, 3.0):
        want = []
        for j in range(3):
            def integrand(L, j=j):
                zeta = expit((theta[j] + L) / tau)
                return 2 * (zeta - t[j]) * zeta * (1 - zeta) / tau * expit(L) * (1 - expit(L))
            want.append(integrate.quad(integrand, -50, 50, points=[-theta[j]], limit=200, epsabs=1e-13)[0])
        gs = estimators.expectation_gradient(f, Bernoulli(p), 6, 4000, "gumbel_softmax", seed=3, grad_f=g,
                                             temperature=tau)
        _check(gs, np.array(want))
    with pytest.raises(ValueError, match="^temperature: "):
        estimators.expectation_gradient(f, Bernoulli(p), 2, 2, "gumbel_softmax", grad_f=g, temperature=0.0)
    with pytest.raises(ValueError, match="^grad_f: "):
        estimators.expectation_gradient(f, Bernoulli(p), 2, 2, "straight_through")


def test_reproducible():
    f, g, h, _ = CASES["cubic"]
    a = estimators.expectation_gradient(f, Gaussian(MU, SIG), 5, 3, "measure_valued", seed=7)
    b = estimators.expectation_gradient(f, Gaussian(MU, SIG), 5, 3, "measure_valued", seed=7)
    c = estimators.expectation_gradient(f, Gaussian(MU, SIG), 5, 3, "measure_valued", seed=8)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_bad_input():
    f = CASES["linear"][0]
    q = Gaussian(MU, SIG)
    with pytest.raises(ValueError, match="^grad_f: "):
        estimators.expectation_gradient(f, q, 4, 2, "reparam")
    with pytest.raises(ValueError, match="^grad_f: "):
        estimators.expectation_gradient(f, q, 4, 2, "score_cv")
    with pytest.raises(ValueError, match="^hess_f: "):
        estimators.expectation_gradient(f, q, 4, 2, "score_cv", grad_f=CASES["linear"][1])
    with pytest.raises(ValueError, match="^q: "):
        estimators.expectation_gradient(f, q, 4, 2, "arm")
    with pytest.raises(ValueError, match="^q: "):
        estimators.expectation_gradient(f, Bernoulli([0.5, 0.5]), 4, 2, "measure_valued")
    with pytest.raises(ValueError, match="^q: "):
        estimators.expectation_gradient(f, Bernoulli([0.5, 0.5]), 4, 2, "reparam", grad_f=lambda z: z)
    with pytest.raises(ValueError, match="^method: "):
        estimators.expectation_gradient(f, q, 4, 2, "nope")
    with pytest.raises(ValueError, match="^K: "):
        estimators.expectation_gradient(f, q, 1, 2, "score_loo")
    with pytest.raises(ValueError, match="^f: "):
        estimators.expectation_gradient(lambda z: z, q, 4, 2, "score")
