"""Bad input gets a ValueError whose message starts with the argument's name
(DESIGN.md, "Numerical and statistical rules")."""

import numpy as np
import pytest

import estimators
from estimators import Bernoulli, Categorical, Gaussian, MultivariateGaussian, Uniform
from problems import GaussianMixture, LinearGaussian


def raises(name):
    return pytest.raises(ValueError, match=f"^{name}")


@pytest.fixture(scope="module")
def lg():
    p = LinearGaussian.random(3, 2, seed=0)
    return p, p.sample(1, seed=1)[0]


@pytest.fixture(scope="module")
def gm():
    p = GaussianMixture.random(3, 2, seed=0)
    return p, p.sample(1, seed=1)[0]


# --------------------------------------------------------------------------- shapes


def test_linear_gaussian_parameter_shapes():
    W = np.ones((3, 2))
    with raises("b"):
        LinearGaussian(W, np.zeros(4), np.ones(3))
    with raises("psi"):
        LinearGaussian(W, np.zeros(3), np.ones(2))
    with raises("W"):
        LinearGaussian(np.ones(3), np.zeros(3), np.ones(3))
    with raises("W"):
        LinearGaussian(np.ones((3, 2, 1)), np.zeros(3), np.ones(3))
    with raises("W"):
        LinearGaussian(np.ones((3, 0)), np.zeros(3), np.ones(3))


def test_gaussian_mixture_parameter_shapes():
    w = np.full(3, 1 / 3)
    with raises("means"):
        GaussianMixture(w, np.zeros((2, 2)), np.stack([np.eye(2)] * 3))
    with raises("covs"):
        GaussianMixture(w, np.zeros((3, 2)), np.stack([np.eye(2)] * 2))
    with raises("covs"):
        GaussianMixture(w, np.zeros((3, 2)), np.stack([np.eye(3)] * 3))
    with raises("weights"):
        GaussianMixture(np.full((3, 1), 1 / 3), np.zeros((3, 2)), np.stack([np.eye(2)] * 3))


def test_x_of_the_wrong_length(lg, gm):
    for p, x in (lg, gm):
        bad = np.append(x, 0.0)
        for call in (
            lambda: p.log_marginal(bad),
            lambda: p.log_marginal(np.ones((4, x.size + 1))),
            lambda: p.posterior(bad),
            lambda: p.elbo(bad, p.prior()),
            lambda: p.kl(bad, p.prior()),
            lambda: p.elbo_grad(bad, p.prior() if p.discrete else p.posterior(x)),
            lambda: estimators.importance_sampling(p, bad, p.prior(), 10, 2),
            lambda: estimators.elbo(p, bad, p.prior(), 10, 2),
            lambda: estimators.weight_stats(p, bad, p.prior(), 10, 2),
            lambda: estimators.importance_sampling(p, x[:-1], p.prior(), 10, 2),
            lambda: estimators.importance_sampling(p, x[None, :], p.prior(), 10, 2),
        ):
            with raises("x"):
                call()
    p, x = gm
    with raises("x"):
        estimators.uniform_mc(p, np.append(x, 1.0), 10, 2)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_x(lg, gm, value):
    for p, x in (lg, gm):
        bad = x.copy()
        bad[0] = value
        with raises("x"):
            p.log_marginal(bad)
        with raises("x"):
            p.log_marginal(np.stack([x, bad]))
        with raises("x"):
            p.posterior(bad)
        with raises("x"):
            p.elbo(bad, p.prior())
        with raises("x"):
            estimators.importance_sampling(p, bad, p.prior(), 10, 2)
        with raises("x"):
            estimators.elbo(p, bad, p.prior(), 10, 2)
    p, x = gm
    bad = x.copy()
    bad[-1] = value
    with raises("x"):
        estimators.uniform_mc(p, bad, 10, 2)


def test_non_finite_parameters():
    with raises("W"):
        LinearGaussian([[np.nan]], [0.0], [1.0])
    with raises("b"):
        LinearGaussian([[1.0]], [np.inf], [1.0])
    with raises("loc"):
        Gaussian([np.nan], [1.0])
    with raises("means"):
        GaussianMixture([1.0], [[np.inf]], [[[1.0]]])


# --------------------------------------------------------------------------- positive definite / positive


@pytest.mark.parametrize(
    "cov",
    [
        [[1.0, 2.0], [2.0, 1.0]],  # indefinite
        [[1.0, 1.0], [1.0, 1.0]],  # singular
        [[-1.0, 0.0], [0.0, 1.0]],
        [[1.0, 0.5], [0.0, 1.0]],  # not symmetric
    ],
)
def test_covariance_not_positive_definite(cov):
    with raises("cov"):
        MultivariateGaussian([0.0, 0.0], cov)
    covs = np.stack([np.eye(2), np.asarray(cov)])
    with raises("covs"):
        GaussianMixture([0.5, 0.5], np.zeros((2, 2)), covs)


@pytest.mark.parametrize("scale", [0.0, -1.0])
def test_non_positive_scale(scale):
    with raises("scale"):
        Gaussian([0.0], [scale])
    with raises("scale"):
        Gaussian([0.0, 1.0], [1.0, scale])


@pytest.mark.parametrize("psi", [0.0, -0.5])
def test_non_positive_psi(psi):
    with raises("psi"):
        LinearGaussian(np.ones((2, 1)), np.zeros(2), [1.0, psi])


# --------------------------------------------------------------------------- probabilities


@pytest.mark.parametrize("probs", [[0.2, 0.3], [0.5, 0.6], [0.0, 0.0], [1.2, -0.2], [np.nan, 1.0]])
def test_probabilities_that_do_not_sum_to_one(probs):
    with raises("probs"):
        Categorical(probs)
    with raises("weights"):
        GaussianMixture(probs, np.zeros((2, 1)), np.ones((2, 1, 1)))


def test_bernoulli_probabilities_outside_unit_interval():
    with raises("probs"):
        Bernoulli([0.5, 1.5])
    with raises("probs"):
        Bernoulli([-0.1])


# --------------------------------------------------------------------------- K, R, seed


@pytest.mark.parametrize("K", [0, -3])
def test_k_below_one(lg, gm, K):
    for p, x in (lg, gm):
        for call in (
            lambda: estimators.importance_sampling(p, x, p.prior(), K, 2),
            lambda: estimators.elbo(p, x, p.prior(), K, 2),
            lambda: estimators.weight_stats(p, x, p.prior(), K, 2),
        ):
            with raises("K"):
                call()
    p, x = gm
    with raises("K"):
        estimators.uniform_mc(p, x, K, 2)


@pytest.mark.parametrize("R", [0, -1])
def test_r_below_one(lg, gm, R):
    for p, x in (lg, gm):
        with raises("R"):
            estimators.importance_sampling(p, x, p.prior(), 10, R)
        with raises("R"):
            estimators.elbo(p, x, p.prior(), 10, R)
    p, x = gm
    with raises("R"):
        estimators.uniform_mc(p, x, 10, R)


@pytest.mark.parametrize("K", [10.0, 2.5, "10", None, True, np.float64(4.0)])
def test_non_integer_k(lg, K):
    p, x = lg
    with raises("K"):
        estimators.importance_sampling(p, x, p.prior(), K, 2)
    with raises("R"):
        estimators.importance_sampling(p, x, p.prior(), 10, K)


def test_numpy_integers_are_accepted(lg):
    p, x = lg
    a = estimators.importance_sampling(p, x, p.prior(), np.int64(10), np.int32(2), seed=np.uint8(3))
    np.testing.assert_array_equal(a, estimators.importance_sampling(p, x, p.prior(), 10, 2, seed=3))


@pytest.mark.parametrize("seed", [-1, -(2**40), 1.5, "0", None])
def test_bad_seed(lg, gm, seed):
    for p, x in (lg, gm):
        with raises("seed"):
            estimators.importance_sampling(p, x, p.prior(), 10, 2, seed=seed)
        with raises("seed"):
            estimators.elbo(p, x, p.prior(), 10, 2, seed=seed)
        with raises("seed"):
            p.sample(3, seed=seed)
    p, x = gm
    with raises("seed"):
        estimators.uniform_mc(p, x, 10, 2, seed=seed)
    with raises("seed"):
        Gaussian([0.0], [1.0]).sample(3, seed=seed)


# --------------------------------------------------------------------------- the proposal


def test_q_of_the_wrong_family(lg, gm):
    p, x = lg
    for q in (Categorical([0.5, 0.5]), Bernoulli([0.5, 0.5])):
        with raises("q"):
            estimators.importance_sampling(p, x, q, 10, 2)
        with raises("q"):
            p.elbo(x, q)
        with raises("q"):
            p.kl(x, q)
    p1 = LinearGaussian.random(2, 1, seed=0)  # one latent: the dimension matches, the family does not
    x1 = p1.sample(1, seed=0)[0]
    with raises("q"):
        estimators.importance_sampling(p1, x1, Categorical([0.5, 0.5]), 10, 2)
    with raises("q"):
        p1.elbo(x1, Categorical([0.5, 0.5]))
    p, x = gm
    for q in (Gaussian([0.0], [1.0]), MultivariateGaussian([0.0], [[1.0]]), Uniform([0.0], [2.0])):
        with raises("q"):
            estimators.importance_sampling(p, x, q, 10, 2)
        with raises("q"):
            estimators.elbo(p, x, q, 10, 2)
        with raises("q"):
            p.elbo(x, q)
        with raises("q"):
            p.kl(x, q)
    with raises("q"):
        estimators.importance_sampling(p, x, "prior", 10, 2)


def test_q_of_the_wrong_dimension(lg, gm):
    p, x = lg  # d = 2
    for q in (Gaussian([0.0] * 3, [1.0] * 3), MultivariateGaussian([0.0], [[1.0]]), Uniform([0.0], [1.0])):
        with raises("q"):
            estimators.importance_sampling(p, x, q, 10, 2)
        with raises("q"):
            p.elbo(x, q)
        with raises("q"):
            p.kl(x, q)
        if not isinstance(q, Uniform):
            with raises("q"):
                p.elbo_grad(x, q)
            with raises("q"):
                p.log_weight_second_moment(x, q)
    p, x = gm  # 3 components
    for q in (Categorical([0.5, 0.5]), Categorical([0.25] * 4)):
        with raises("q"):
            estimators.importance_sampling(p, x, q, 10, 2)
        with raises("q"):
            p.elbo(x, q)
        with raises("q"):
            p.kl(x, q)
        with raises("q"):
            p.elbo_grad(x, q)


@pytest.mark.parametrize("low, high", [([0.0], [0.0]), ([1.0], [0.0]), ([0.0, 0.0], [1.0, -1.0])])
def test_uniform_high_not_above_low(low, high):
    with raises("high"):
        Uniform(low, high)


def test_uniform_shapes():
    with raises("high"):
        Uniform([0.0, 0.0], [1.0])


def test_box_for_a_discrete_problem(gm):
    p, x = gm
    with raises("box"):
        estimators.uniform_mc(p, x, 10, 2, box=(0.0, 1.0))


def test_box_for_a_continuous_problem(lg):
    p, x = lg
    with raises("box"):
        estimators.uniform_mc(p, x, 10, 2)
    with raises("box"):
        estimators.uniform_mc(p, x, 10, 2, box=(0.0, 1.0, 2.0))
    with raises("high"):
        estimators.uniform_mc(p, x, 10, 2, box=(1.0, 0.0))


def test_theta_of_the_wrong_shape():
    with raises("theta"):
        Gaussian([0.0, 0.0], [1.0, 1.0]).with_params(np.zeros(3))
    with raises("theta"):
        MultivariateGaussian([0.0, 0.0], np.eye(2)).with_params(np.zeros(4))
    with raises("theta"):
        Categorical([0.5, 0.5]).with_params([0.0, np.nan])
    with raises("theta"):
        Categorical([0.5, 0.5]).with_params([-np.inf, -np.inf])


def test_sample_count(lg):
    p, _ = lg
    with raises("n"):
        p.sample(0)
    with raises("n"):
        Gaussian([0.0], [1.0]).sample(2.0)


def test_random_instance_sizes():
    with raises("D"):
        LinearGaussian.random(0, 1)
    with raises("d"):
        LinearGaussian.random(2, 0)
    with raises("C"):
        GaussianMixture.random(0, 2)
