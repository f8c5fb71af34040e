"""estimators.log_weights: the raw (K,) log-weights of replicate 0 of weight_stats.

The same draws as weight_stats' replicate 0 on every path (compiled kernels,
the generic path of a user's model, a user's compiled_log_joint): their
log-sum-exp and sum equal weight_stats' sums to rounding, and their largest
values are exactly the ones weight_stats keeps for k-hat.  They are draws from
q: exp(lw) / p(x) has mean 1 (to 5 SE).  Bad input and K above the memory
limit are ValueErrors naming K.
"""

from __future__ import annotations

import numba
import numpy as np
import pytest
from numba import njit
from scipy.special import logsumexp

import estimators
import problems
from estimators import Bernoulli, Categorical, Gaussian, MultivariateGaussian, Uniform
from estimators._kernels.driver import CHUNK
from estimators.psis import tail_size
from problems import GaussianMixture, LinearGaussian, MissingPixels, MixturePrior

_LOG_2PI = float(np.log(2 * np.pi))


class UserLinearGaussian(problems.Problem):
    """A LinearGaussian as a user writes it: plain NumPy, no registered kernel."""

    latent_type = "continuous"

    def __init__(self, lg):
        self.W, self.b, self.psi = lg.W, lg.b, lg.psi
        self.obs_dim, self.latent_dim = lg.W.shape
        self._lg = lg

    def log_joint(self, x, z):
        r = x - (z @ self.W.T + self.b)
        return (
            -0.5 * np.sum(z**2, axis=-1)
            - 0.5 * self.latent_dim * _LOG_2PI
            - 0.5 * np.sum(r**2 / self.psi, axis=-1)
            - 0.5 * np.sum(np.log(2 * np.pi * self.psi))
        )

    def log_marginal(self, x):
        return self._lg.log_marginal(x)

    def prior(self):
        return Gaussian(np.zeros(self.latent_dim), np.ones(self.latent_dim))


class UserLinearGaussianCompiled(UserLinearGaussian):
    def __init__(self, lg):
        super().__init__(lg)
        W, b, psi = self.W, self.b, self.psi
        const = -0.5 * W.shape[1] * _LOG_2PI - 0.5 * float(np.sum(np.log(2 * np.pi * psi)))

        @njit
        def log_joint_one(x, z):
            s = const
            for i in range(z.shape[0]):
                s -= 0.5 * z[i] * z[i]
            for j in range(x.shape[0]):
                m = b[j]
                for i in range(z.shape[0]):
                    m += W[j, i] * z[i]
                r = x[j] - m
                s -= 0.5 * r * r / psi[j]
            return s

        self.compiled_log_joint = log_joint_one


def _cases():
    lg = LinearGaussian.random(4, 2, seed=0)
    x = lg.sample(1, seed=1)[0]
    post = lg.posterior(x)
    sd = np.sqrt(np.diag(post.cov))
    g = GaussianMixture.random(4, 2, seed=2)
    xg = g.sample(1, seed=3)[0]
    mp = MissingPixels.digits(latent_rows=2)
    xm = mp.sample(1, seed=4)[0]
    mix = MixturePrior([0.3, 0.7], [-2.0, 1.0], [0.5, 1.0], 0.8)
    xp = np.array([0.4])
    return {
        "lg-gaussian": (lg, x, Gaussian(post.mean + 0.2, 1.3 * sd)),
        "lg-mvg": (lg, x, MultivariateGaussian(post.mean, 1.5 * post.cov)),
        "lg-uniform": (lg, x, Uniform(post.mean - 5 * sd, post.mean + 5 * sd)),
        "gm-categorical": (g, xg, Categorical([0.4, 0.3, 0.2, 0.1])),
        "mp-bernoulli": (mp, xm, Bernoulli(np.full(mp.latent_dim, 0.3))),
        "mixture-prior": (mix, xp, Gaussian([0.5], [1.5])),
        "user-generic": (UserLinearGaussian(lg), x, Gaussian(post.mean + 0.2, 1.3 * sd)),
        "user-compiled": (UserLinearGaussianCompiled(lg), x, Gaussian(post.mean + 0.2, 1.3 * sd)),
    }


CASES = _cases()
PATHS = {"user-generic": "generic", "user-compiled": "compiled-user"}


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("K", [1, 37, 2 * CHUNK + 11])
def test_log_weights_are_weight_stats_replicate_0(name, K):
    p, x, q = CASES[name]
    assert estimators.execution_path(p, x, q) == PATHS.get(name, "compiled")
    lw = estimators.log_weights(p, x, q, K, seed=5)
    assert lw.shape == (K,) and lw.dtype == np.float64
    ws = estimators.weight_stats(p, x, q, K, 3, seed=5)
    tol = 1e-12 * max(1.0, abs(ws.log_p_hat[0]))
    assert abs((logsumexp(lw) - np.log(K)) - ws.log_p_hat[0]) < tol
    assert abs(logsumexp(2 * lw) - ws.log_sum_w2[0]) < 2 * tol
    assert abs(np.sum(lw) - ws.sum_log_w[0]) < 1e-12 * K * max(1.0, np.abs(lw).max())
    # the values weight_stats keeps for k-hat are exactly the largest of these
    keep = min(K, tail_size(K) + 1)
    np.testing.assert_array_equal(ws.top_log_w[0], np.sort(lw)[K - keep :])
    # replicate 0 does not depend on R, and other replicates are other draws
    ws1 = estimators.weight_stats(p, x, q, K, 1, seed=5)
    assert ws1.log_sum_w[0] == ws.log_sum_w[0]
    if K > 1:
        assert ws.log_sum_w[1] != ws.log_sum_w[0]
    # the same seed gives the same bits; another seed, other draws
    np.testing.assert_array_equal(estimators.log_weights(p, x, q, K, seed=5), lw)
    if K > 1:
        assert not np.array_equal(estimators.log_weights(p, x, q, K, seed=6), lw)


@pytest.mark.parametrize("name", ["lg-gaussian", "gm-categorical", "mp-bernoulli", "user-generic"])
def test_log_weights_are_importance_weights_of_q(name):
    """E_q[w] = p(x): the mean of exp(lw - log p(x)) over K draws is 1 within 5 SE
    (SE from the draws).  A log-weight with the wrong q term, or draws not from
    q, moves the mean by far more at this K."""
    p, x, q = CASES[name]
    K = 200_000
    r = np.exp(estimators.log_weights(p, x, q, K, seed=7) - p.log_marginal(x))
    se = r.std(ddof=1) / np.sqrt(K)
    assert abs(r.mean() - 1.0) < 5 * se, (r.mean(), se)


@pytest.mark.parametrize("name", ["lg-gaussian", "gm-categorical", "user-compiled"])
def test_log_weights_bit_identical_for_one_and_two_threads(name):
    p, x, q = CASES[name]
    K = 3 * CHUNK + 5
    n_max = numba.config.NUMBA_NUM_THREADS
    try:
        numba.set_num_threads(1)
        one = estimators.log_weights(p, x, q, K, seed=9)
        numba.set_num_threads(n_max)
        many = estimators.log_weights(p, x, q, K, seed=9)
    finally:
        numba.set_num_threads(n_max)
    np.testing.assert_array_equal(one, many)


def test_log_weights_bad_input():
    p, x, q = CASES["lg-gaussian"]
    limit = estimators.weights.LOG_WEIGHTS_MAX_K
    assert limit == 10**8
    with pytest.raises(ValueError, match=r"^K: log_weights holds all K log-weights.*100000001"):
        estimators.log_weights(p, x, q, limit + 1)
    for bad in (0, -3, 2.5, "10"):
        with pytest.raises(ValueError, match=r"^K: "):
            estimators.log_weights(p, x, q, bad)
    with pytest.raises(ValueError, match=r"^seed: "):
        estimators.log_weights(p, x, q, 10, seed=-1)
    with pytest.raises(ValueError, match=r"^x: "):
        estimators.log_weights(p, x[:-1], q, 10)
    with pytest.raises(ValueError, match=r"^q: "):
        estimators.log_weights(p, x, Gaussian([0.0], [1.0]), 10)
