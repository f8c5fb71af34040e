"""Extreme inputs: each gets a correct answer or a clear ValueError, never
silent garbage."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from scipy.stats import multivariate_normal

import estimators
from problems import LinearGaussian


@pytest.mark.parametrize("D, d", [(1, 1), (500, 5)])
def test_dimensions_one_and_five_hundred(D, d):
    p = LinearGaussian.random(D, d, seed=11)
    x = p.sample(1, seed=12)[0]
    truth = multivariate_normal(p.b, p.W @ p.W.T + np.diag(p.psi)).logpdf(x)
    assert abs(p.log_marginal(x) - truth) < 1e-8 * max(1.0, abs(truth))
    # IS under the exact posterior is exact, whatever D
    est = estimators.importance_sampling(p, x, p.posterior(x), 10, 2, seed=0)
    assert np.allclose(est, truth, rtol=1e-10, atol=1e-8)
    q = p.prior()
    assert abs(p.elbo(x, q) + p.kl(x, q) - truth) < 1e-8 * max(1.0, abs(truth))


def test_k_equal_one_is_the_elbo_in_expectation():
    p = LinearGaussian.random(3, 2, seed=4)
    x = p.sample(1, seed=5)[0]
    q = p.prior()
    est = estimators.importance_sampling(p, x, q, 1, 4000, seed=1)
    same = estimators.elbo(p, x, q, 1, 4000, seed=1)
    assert np.array_equal(est, same)  # at K = 1 log w is both estimates
    se = est.std(ddof=1) / np.sqrt(est.size)
    assert abs(est.mean() - p.elbo(x, q)) < 5 * se


def test_k_ten_million_streams():
    """K = 10^7 in one replicate: a finite estimate within 5 SE of the truth,
    SE from the exact weight variance (delta method: sd of log p_hat ~ sqrt(v/K))."""
    p = LinearGaussian.random(2, 2, seed=8)
    x = p.sample(1, seed=9)[0]
    post = p.posterior(x)
    q = estimators.Gaussian(post.loc, 1.3 * np.sqrt(np.diag(post.cov)))
    K = 10**7
    rel_var = p.relative_weight_variance(x, q)
    est = estimators.importance_sampling(p, x, q, K, 1, seed=2)[0]
    assert np.isfinite(est)
    assert abs(est - p.log_marginal(x)) < 5 * np.sqrt(rel_var / K)


def test_far_proposal_gives_finite_log_weights_near_minus_a_million():
    p = LinearGaussian(np.eye(2), np.zeros(2), np.ones(2))
    x = np.zeros(2)
    q = estimators.Gaussian([1400.0, 0.0], [1.0, 1.0])  # log w ~ -0.5 * 1400^2 ~ -1e6
    est = estimators.importance_sampling(p, x, q, 1000, 3, seed=0)
    elbo = estimators.elbo(p, x, q, 1000, 3, seed=0)
    assert np.all(np.isfinite(est)) and np.all(np.isfinite(elbo))
    assert np.all(est < -9e5)
    # exact reference for the ELBO of this q: the closed form
    assert np.all(np.abs(elbo - p.elbo(x, q)) < 1e-3 * abs(p.elbo(x, q)))


@pytest.mark.parametrize("psi", [1e-300, 1e-30])
def test_numerically_singular_model_is_a_clear_error(psi):
    with pytest.raises(ValueError, match="^psi: the model is numerically singular"):
        LinearGaussian(np.ones((3, 2)), np.zeros(3), np.full(3, psi))


def test_nearly_singular_but_representable_model_is_exact():
    """W = ones(3, 2), psi = 1e-10: the marginal covariance 2 11^T + psi I has
    condition number 6e10.  Reference by its eigendecomposition, derived by
    hand: eigenvalue 6 + psi along u = 1/sqrt(3), psi on u's complement, so
    log p(x) = -1/2 [3 log 2pi + log(6 + psi) + 2 log psi
                     + (u.x)^2 / (6 + psi) + |x - u u.x|^2 / psi]."""
    psi = 1e-10
    p = LinearGaussian(np.ones((3, 2)), np.zeros(3), np.full(3, psi))
    e = np.array([0.0, 1e-6, 0.0])
    x = 1.0 + e
    u_dot_x_sq = (x.sum()) ** 2 / 3.0
    perp_sq = float(np.sum((e - e.mean()) ** 2))  # x's component off u is e's
    truth = -0.5 * (
        3 * np.log(2 * np.pi) + np.log(6 + psi) + 2 * np.log(psi) + u_dot_x_sq / (6 + psi) + perp_sq / psi
    )
    assert abs(p.log_marginal(x) - truth) < 1e-6 * abs(truth)


def test_nearly_singular_proposal_covariance():
    cov = np.array([[1.0, 1.0], [1.0, 1.0 + 1e-17]])
    with pytest.raises(ValueError, match="^cov: is not positive definite"):
        estimators.MultivariateGaussian([0.0, 0.0], cov)
    cov = np.array([[1.0, 1.0 - 1e-9], [1.0 - 1e-9, 1.0]])  # condition number ~ 2e9
    q = estimators.MultivariateGaussian([0.0, 0.0], cov)
    z = q.sample(5, seed=0)
    assert np.allclose(q.log_prob(z), multivariate_normal([0.0, 0.0], cov).logpdf(z), rtol=1e-6)


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda p, x, q: estimators.importance_sampling(p, x, q, 0, 1), "K"),
        (lambda p, x, q: estimators.importance_sampling(p, x, q, 1, 0), "R"),
        (lambda p, x, q: estimators.importance_sampling(p, x, q, 2.5, 1), "K"),
        (lambda p, x, q: estimators.importance_sampling(p, x, q, "10", 1), "K"),
        (lambda p, x, q: estimators.elbo(p, np.array(["a", "b"]), q, 10, 1), "x"),
        (lambda p, x, q: estimators.elbo(p, x + 0j, q, 10, 1), "x"),
        (lambda p, x, q: estimators.elbo(p, x[:, None], q, 10, 1), "x"),
        (lambda p, x, q: estimators.elbo(p, x, q, 10, 1, seed=-1), "seed"),
        (lambda p, x, q: estimators.elbo(p, x, "prior", 10, 1), "q"),
        (lambda p, x, q: estimators.gradient(p, x, q, 10, 1, "magic"), "method"),
        (lambda p, x, q: estimators.gradient(p, x, q, 10, 1, "reparam", objective="bound"), "objective"),
    ],
)
def test_bad_input_names_the_argument(call, name):
    p = LinearGaussian.random(2, 2, seed=0)
    x = p.sample(1, seed=1)[0]
    with pytest.raises(ValueError, match=f"^{name}:"):
        call(p, x, p.prior())


def test_same_results_dir_is_not_shared_state():
    """Two processes computing with the same seed agree bit for bit (nothing
    global, e.g. the numba cache, leaks between them)."""
    script = textwrap.dedent(
        """
        import numpy as np, estimators
        from problems import GaussianMixture
        p = GaussianMixture.random(5, 3, seed=1); x = p.sample(1, seed=2)[0]
        print(estimators.importance_sampling(p, x, p.prior(), 20000, 3, seed=9).tobytes().hex())
        """
    )
    outs = [
        subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
        for _ in range(2)
    ]
    assert outs[0] == outs[1] and outs[0].strip()


def test_counts_beyond_int64_are_a_clear_error():
    p = LinearGaussian.random(2, 2, seed=0)
    x = p.sample(1, seed=1)[0]
    with pytest.raises(ValueError, match="^K: must fit in a 64-bit integer"):
        estimators.importance_sampling(p, x, p.prior(), 2**63, 1)
    with pytest.raises(ValueError, match="^R: must fit in a 64-bit integer"):
        estimators.gradient(p, x, p.prior(), 10, 2**64, "reparam")
