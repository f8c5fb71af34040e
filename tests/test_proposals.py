"""Proposals q: densities against scipy.stats, sampling moments within 5 SE,
params/with_params round trips, entropies, and the reparameterizable flags.

Expected values come from scipy.stats (an independent implementation); the
statistical checks use fixed seeds and a 5-standard-error tolerance whose
SE is computed from the draws themselves.
"""

import numpy as np
import pytest
from scipy import stats

from estimators import Bernoulli, Categorical, Gaussian, MultivariateGaussian, Uniform

SEEDS = [0, 1, 2]
N_DRAWS = 20_000


def random_spd(rng, d):
    A = rng.standard_normal((d, d))
    S = A @ A.T / d + 0.3 * np.eye(d)
    return 0.5 * (S + S.T)


def assert_within_5se(samples, truth, what):
    """Mean of each column of ``samples`` within 5 SE of ``truth`` (SE from the samples)."""
    samples = np.asarray(samples, dtype=float)
    n = samples.shape[0]
    mean = samples.mean(axis=0)
    se = samples.std(axis=0, ddof=1) / np.sqrt(n)
    assert np.all(se > 0), f"{what}: zero standard error -- degenerate draws"
    z = np.abs(mean - truth) / se
    assert np.all(z < 5), f"{what}: |mean - truth| / SE = {z} (mean {mean}, truth {truth})"


def check_moments(z, mean, cov, what):
    """First and second central moments of draws z (n, d) against mean and cov."""
    n, d = z.shape
    assert_within_5se(z, mean, f"{what} mean")
    c = z - mean
    prods = np.stack([c[:, i] * c[:, j] for i in range(d) for j in range(i, d)], axis=1)
    truth = np.array([cov[i, j] for i in range(d) for j in range(i, d)])
    assert_within_5se(prods, truth, f"{what} covariance")


# --------------------------------------------------------------------------- Gaussian


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("d", [1, 3])
def test_gaussian_log_prob_matches_scipy_norm(seed, d):
    rng = np.random.default_rng(seed)
    loc, scale = rng.normal(size=d), rng.uniform(0.2, 3.0, size=d)
    q = Gaussian(loc, scale)
    z = rng.normal(size=(7, d)) * 3
    expected = stats.norm(loc, scale).logpdf(z).sum(axis=-1)
    np.testing.assert_allclose(q.log_prob(z), expected, rtol=1e-12, atol=1e-12)
    # a single point of shape (d,) gives a scalar
    np.testing.assert_allclose(q.log_prob(z[0]), expected[0], rtol=1e-12)
    # leading batch axes are kept
    assert q.log_prob(z.reshape(1, 7, d)).shape == (1, 7)


@pytest.mark.parametrize("seed", SEEDS)
def test_gaussian_sample_moments(seed):
    rng = np.random.default_rng(100 + seed)
    d = 3
    loc, scale = rng.normal(size=d), rng.uniform(0.2, 3.0, size=d)
    z = Gaussian(loc, scale).sample(N_DRAWS, seed=seed)
    assert z.shape == (N_DRAWS, d)
    check_moments(z, loc, np.diag(scale**2), "Gaussian")


@pytest.mark.parametrize("seed", SEEDS)
def test_gaussian_params_round_trip_and_convention(seed):
    rng = np.random.default_rng(seed)
    loc, scale = rng.normal(size=4), rng.uniform(0.2, 3.0, size=4)
    q = Gaussian(loc, scale)
    np.testing.assert_array_equal(q.params, np.concatenate([loc, np.log(scale)]))
    q2 = q.with_params(q.params)
    np.testing.assert_allclose(q2.loc, loc, rtol=0, atol=0)
    np.testing.assert_allclose(q2.scale, scale, rtol=1e-14)
    z = rng.normal(size=(5, 4))
    np.testing.assert_allclose(q2.log_prob(z), q.log_prob(z), rtol=1e-13)
    # with_params at another point builds that distribution
    theta = rng.normal(size=8)
    q3 = q.with_params(theta)
    np.testing.assert_allclose(q3.log_prob(z), stats.norm(theta[:4], np.exp(theta[4:])).logpdf(z).sum(-1), rtol=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_gaussian_entropy_mean_cov(seed):
    rng = np.random.default_rng(seed)
    loc, scale = rng.normal(size=3), rng.uniform(0.2, 3.0, size=3)
    q = Gaussian(loc, scale)
    np.testing.assert_allclose(q.entropy, stats.norm(loc, scale).entropy().sum(), rtol=1e-12)
    np.testing.assert_array_equal(q.mean, loc)
    np.testing.assert_allclose(q.cov, np.diag(scale**2), rtol=1e-15)


# --------------------------------------------------------------------------- MultivariateGaussian


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("d", [1, 2, 4])
def test_mvg_log_prob_matches_scipy(seed, d):
    rng = np.random.default_rng(seed)
    loc, cov = rng.normal(size=d), random_spd(rng, d)
    q = MultivariateGaussian(loc, cov)
    z = rng.normal(size=(6, d)) * 2
    expected = stats.multivariate_normal(loc, cov).logpdf(z)
    np.testing.assert_allclose(q.log_prob(z), np.atleast_1d(expected), rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(q.log_prob(z.reshape(2, 3, d)), np.reshape(expected, (2, 3)), rtol=1e-11)


@pytest.mark.parametrize("seed", SEEDS)
def test_mvg_sample_moments(seed):
    rng = np.random.default_rng(200 + seed)
    d = 3
    loc, cov = rng.normal(size=d), random_spd(rng, d)
    z = MultivariateGaussian(loc, cov).sample(N_DRAWS, seed=seed)
    assert z.shape == (N_DRAWS, d)
    check_moments(z, loc, cov, "MultivariateGaussian")


def test_mvg_params_convention_by_hand():
    """params = concat(loc, vech(L~)): L the lower Cholesky factor, its diagonal
    replaced by log(diag L), lower triangle listed row by row (tril_indices)."""
    loc = np.array([0.5, -1.0, 2.0])
    L = np.array([[2.0, 0.0, 0.0], [0.3, 0.5, 0.0], [-1.2, 0.7, 1.5]])
    q = MultivariateGaussian(loc, L @ L.T)
    expected = np.array(
        [0.5, -1.0, 2.0, np.log(2.0), 0.3, np.log(0.5), -1.2, 0.7, np.log(1.5)]
    )
    np.testing.assert_allclose(q.params, expected, rtol=1e-12, atol=1e-14)
    # and with_params reads the same convention
    theta = np.array([1.0, 2.0, 3.0, 0.1, -0.4, 0.2, 0.3, 0.5, -0.3])
    Lt = np.array(
        [[np.exp(0.1), 0.0, 0.0], [-0.4, np.exp(0.2), 0.0], [0.3, 0.5, np.exp(-0.3)]]
    )
    q2 = q.with_params(theta)
    np.testing.assert_array_equal(q2.loc, theta[:3])
    np.testing.assert_allclose(q2.cov, Lt @ Lt.T, rtol=1e-13)
    np.testing.assert_allclose(q2.params, theta, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("d", [1, 3])
def test_mvg_params_round_trip(seed, d):
    rng = np.random.default_rng(seed)
    loc, cov = rng.normal(size=d), random_spd(rng, d)
    q = MultivariateGaussian(loc, cov)
    assert q.params.shape == (d + d * (d + 1) // 2,)
    q2 = q.with_params(q.params)
    np.testing.assert_allclose(q2.loc, loc, rtol=0, atol=0)
    np.testing.assert_allclose(q2.cov, cov, rtol=1e-12, atol=1e-14)
    z = rng.normal(size=(5, d))
    np.testing.assert_allclose(q2.log_prob(z), q.log_prob(z), rtol=1e-12)
    # any theta maps to a valid distribution, and back to itself
    theta = rng.normal(size=q.params.shape)
    np.testing.assert_allclose(q.with_params(theta).params, theta, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("seed", SEEDS)
def test_mvg_entropy_and_moments(seed):
    rng = np.random.default_rng(seed)
    loc, cov = rng.normal(size=3), random_spd(rng, 3)
    q = MultivariateGaussian(loc, cov)
    np.testing.assert_allclose(q.entropy, stats.multivariate_normal(loc, cov).entropy(), rtol=1e-12)
    np.testing.assert_array_equal(q.mean, loc)
    np.testing.assert_array_equal(q.cov, cov)


# --------------------------------------------------------------------------- Categorical


def random_probs(rng, C, zeros=()):
    p = rng.dirichlet(np.ones(C))
    p[list(zeros)] = 0.0
    return p / p.sum()


@pytest.mark.parametrize("seed", SEEDS)
def test_categorical_log_prob_matches_scipy(seed):
    rng = np.random.default_rng(seed)
    probs = random_probs(rng, 5)
    q = Categorical(probs)
    k = np.arange(5)
    expected = stats.multinomial(1, probs).logpmf(np.eye(5, dtype=int))
    np.testing.assert_allclose(q.log_prob(k), expected, rtol=1e-12)
    np.testing.assert_allclose(q.log_prob(np.array([[3], [1]])), expected[[[3], [1]]], rtol=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_categorical_sample_frequencies(seed):
    rng = np.random.default_rng(300 + seed)
    probs = random_probs(rng, 6)
    z = Categorical(probs).sample(N_DRAWS, seed=seed)
    assert z.shape == (N_DRAWS,)
    onehot = (z[:, None] == np.arange(6)).astype(float)
    assert_within_5se(onehot, probs, "Categorical frequencies")


@pytest.mark.parametrize("zeros", [(0,), (2,), (5,), (0, 3, 5)])
def test_categorical_zero_probability_never_sampled(zeros):
    rng = np.random.default_rng(7)
    probs = random_probs(rng, 6, zeros)
    q = Categorical(probs)
    z = q.sample(200_000, seed=11)
    assert not np.isin(z, zeros).any()
    assert set(np.unique(z)) == set(range(6)) - set(zeros)
    assert np.all(np.isneginf(q.log_prob(np.array(zeros))))


@pytest.mark.parametrize("seed", SEEDS)
def test_categorical_params_round_trip(seed):
    rng = np.random.default_rng(seed)
    for probs in (random_probs(rng, 5), random_probs(rng, 5, zeros=(1, 4))):
        q = Categorical(probs)
        with np.errstate(divide="ignore"):
            # -inf exactly where a probability is 0; the constructor renormalises,
            # so elsewhere equal up to rounding
            np.testing.assert_allclose(q.params, np.log(probs), rtol=1e-14, atol=0)
        q2 = q.with_params(q.params)
        np.testing.assert_allclose(q2.probs, probs, rtol=1e-13, atol=0)
    # logits are defined up to a constant: with_params normalises (a softmax)
    theta = rng.normal(size=5)
    np.testing.assert_allclose(q.with_params(theta + 3.7).probs, np.exp(theta) / np.exp(theta).sum(), rtol=1e-13)


@pytest.mark.parametrize("seed", SEEDS)
def test_categorical_entropy(seed):
    rng = np.random.default_rng(seed)
    for probs in (random_probs(rng, 5), random_probs(rng, 5, zeros=(0, 2))):
        np.testing.assert_allclose(Categorical(probs).entropy, stats.entropy(probs), rtol=1e-12)


# --------------------------------------------------------------------------- Bernoulli


@pytest.mark.parametrize("seed", SEEDS)
def test_bernoulli_log_prob_matches_scipy(seed):
    rng = np.random.default_rng(seed)
    probs = rng.uniform(0.05, 0.95, size=4)
    q = Bernoulli(probs)
    z = (rng.random((10, 4)) < 0.5).astype(np.int8)
    expected = stats.bernoulli(probs).logpmf(z).sum(axis=-1)
    np.testing.assert_allclose(q.log_prob(z), expected, rtol=1e-12)


def test_bernoulli_log_prob_with_certain_bits():
    q = Bernoulli([0.0, 1.0, 0.3])
    z = np.array([[0, 1, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]])
    expected = stats.bernoulli([0.0, 1.0, 0.3]).logpmf(z).sum(axis=-1)
    np.testing.assert_array_equal(np.isneginf(q.log_prob(z)), np.isneginf(expected))
    finite = np.isfinite(expected)
    np.testing.assert_allclose(q.log_prob(z)[finite], expected[finite], rtol=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_bernoulli_sample_frequencies(seed):
    rng = np.random.default_rng(400 + seed)
    probs = rng.uniform(0.05, 0.95, size=5)
    z = Bernoulli(probs).sample(N_DRAWS, seed=seed)
    assert z.shape == (N_DRAWS, 5)
    assert set(np.unique(z)) <= {0, 1}
    assert_within_5se(z, probs, "Bernoulli frequencies")


@pytest.mark.parametrize("seed", SEEDS)
def test_bernoulli_params_round_trip_and_entropy(seed):
    rng = np.random.default_rng(seed)
    probs = rng.uniform(0.05, 0.95, size=4)
    q = Bernoulli(probs)
    np.testing.assert_allclose(q.params, np.log(probs / (1 - probs)), rtol=1e-12)
    np.testing.assert_allclose(q.with_params(q.params).probs, probs, rtol=1e-13)
    np.testing.assert_allclose(q.entropy, stats.bernoulli(probs).entropy().sum(), rtol=1e-12)
    edge = Bernoulli([0.0, 1.0, 0.25])
    np.testing.assert_allclose(edge.with_params(edge.params).probs, [0.0, 1.0, 0.25], rtol=1e-14, atol=0)
    np.testing.assert_allclose(edge.entropy, stats.bernoulli(0.25).entropy(), rtol=1e-12)


# --------------------------------------------------------------------------- Uniform


@pytest.mark.parametrize("seed", SEEDS)
def test_uniform_log_prob_matches_scipy_inside(seed):
    rng = np.random.default_rng(seed)
    low = rng.normal(size=3)
    high = low + rng.uniform(0.1, 4.0, size=3)
    q = Uniform(low, high)
    z = low + (high - low) * rng.random((8, 3))
    expected = stats.uniform(loc=low, scale=high - low).logpdf(z).sum(axis=-1)
    np.testing.assert_allclose(q.log_prob(z), expected, rtol=1e-12)


def test_uniform_log_prob_is_minus_inf_outside():
    q = Uniform([0.0, -1.0], [1.0, 2.0])
    outside = np.array([[-0.1, 0.0], [0.5, 2.5], [1.0001, 0.0], [5.0, -3.0], [0.5, -1.0 - 1e-12]])
    out = q.log_prob(outside)
    assert np.all(np.isneginf(out))
    inside = np.array([[0.5, 0.0], [0.0, -1.0], [1.0, 2.0]])  # the boundary belongs to the box
    np.testing.assert_allclose(q.log_prob(inside), -np.log(3.0), rtol=1e-14)


@pytest.mark.parametrize("seed", SEEDS)
def test_uniform_sample_moments_and_support(seed):
    rng = np.random.default_rng(500 + seed)
    low = rng.normal(size=2)
    high = low + rng.uniform(0.1, 4.0, size=2)
    q = Uniform(low, high)
    z = q.sample(N_DRAWS, seed=seed)
    assert z.shape == (N_DRAWS, 2)
    assert np.all((z >= low) & (z < high))
    check_moments(z, 0.5 * (low + high), np.diag((high - low) ** 2 / 12), "Uniform")
    np.testing.assert_allclose(q.mean, 0.5 * (low + high), rtol=1e-15)
    np.testing.assert_allclose(q.cov, np.diag((high - low) ** 2 / 12), rtol=1e-14)


@pytest.mark.parametrize("seed", SEEDS)
def test_uniform_params_round_trip_and_entropy(seed):
    rng = np.random.default_rng(seed)
    low = rng.normal(size=3)
    high = low + rng.uniform(0.1, 4.0, size=3)
    q = Uniform(low, high)
    np.testing.assert_array_equal(q.params, np.concatenate([low, high]))
    q2 = q.with_params(q.params)
    np.testing.assert_array_equal(q2.low, low)
    np.testing.assert_array_equal(q2.high, high)
    np.testing.assert_allclose(q.entropy, stats.uniform(loc=low, scale=high - low).entropy().sum(), rtol=1e-12)


# --------------------------------------------------------------------------- flags


@pytest.mark.parametrize(
    "q, expected",
    [
        (Gaussian([0.0, 1.0], [1.0, 2.0]), True),
        (MultivariateGaussian([0.0, 1.0], np.eye(2)), True),
        (Categorical([0.2, 0.8]), False),
        (Bernoulli([0.2, 0.8]), False),
        (Uniform([0.0], [1.0]), False),
    ],
    ids=["Gaussian", "MultivariateGaussian", "Categorical", "Bernoulli", "Uniform"],
)
def test_reparameterizable_flags(q, expected):
    assert q.reparameterizable is expected


@pytest.mark.parametrize(
    "q",
    [
        Gaussian([0.0, 1.0], [1.0, 2.0]),
        MultivariateGaussian([0.0, 1.0], [[2.0, 0.5], [0.5, 1.0]]),
        Categorical([0.2, 0.3, 0.5]),
        Bernoulli([0.2, 0.8]),
        Uniform([0.0, 1.0], [1.0, 3.0]),
    ],
    ids=["Gaussian", "MultivariateGaussian", "Categorical", "Bernoulli", "Uniform"],
)
def test_sample_is_reproducible_per_seed(q):
    a, b, c = q.sample(50, seed=3), q.sample(50, seed=3), q.sample(50, seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
