r"""Jackknife variational inference (Nowozin 2018): values and bias orders.

* Against the definition: on the raw log-weights of ``estimators.log_weights``
  (the same draws), :math:`\sum_j c_j \bar L_{K-j}` with every leave-j-out
  mean formed by brute force (scipy's logsumexp over each subset), on the
  compiled path, the generic path and across chunks; with one weight
  dominating, where :math:`\sum w - w_{\max}` would lose every digit.
* Bias orders on a problem whose log-weights are exactly Gaussian: a 1-D
  LinearGaussian with q = N(mu + delta, Sigma), the posterior's covariance
  shifted, so :math:`\log w` is linear in z and :math:`\log w \sim N(\log p(x) -
  \sigma^2/2, \sigma^2)`, :math:`\sigma^2 = \delta^2/\Sigma = 0.25`; the weights
  are log-normal with central moments :math:`\mu_r` of y = w/p(x) in closed form.
  With :math:`\bar y` the mean of the K values of y,
  :math:`E[\log \bar y] = a_1/K + a_2/K^2 + a_3/K^3 + \dots`,
  :math:`a_1 = -\mu_2/2`, :math:`a_2 = \mu_3/3 - 3\mu_2^2/4` (the moments of a
  mean of K iid values), so IS's bias is a_1/K + ..., JVI_1's is
  :math:`a_2 (1/K - 1/(K-1)) + \dots \approx -a_2/K^2` and JVI_2's O(K^-3).

  To measure biases of 1e-6 with 1e5 replicates, each estimate has subtracted
  from it control variates with an exactly known mean of zero, built from the
  same draws' power sums (``weight_stats``' sum w and sum w^2,
  ``bounds.log_power_sums`` at s = 3): the linear term :math:`\bar y - 1`
  (mean 0 because E_q[w] = p(x)), the quadratic term
  :math:`\sum_j c_j \overline{(\bar y_{S} - 1)^2}` over the leave-j-out subsets S
  (mean :math:`\sum_j c_j \mu_2/(K-j) = 0` for orders >= 1; for IS
  :math:`(\bar y - 1)^2 - \mu_2/K`), and for order 2 the cubic term (mean
  :math:`\sum_j c_j \mu_3/(K-j)^2 = 0`); subset means of powers of :math:`\bar y_S - 1`
  follow from :math:`\sum d, \sum d^2, \sum d^3`, d = y - 1.  The mean of what
  is left is the bias, its SE from the replicates.  The bias is fitted as
  c_1/K + c_2/K^2 + c_3/K^3 over K = 4..32 (weighted least squares), and the
  test checks what the SEs resolve: IS's c_1 = a_1; JVI_1's c_1 = 0 and
  c_2 = -a_2; JVI_2's c_1 = c_2 = 0 -- each within 5 SE, and the non-zero ones
  more than 5 SE from 0.
"""

from __future__ import annotations

import itertools
import math

import numba
import numpy as np
import pytest
from scipy.special import logsumexp

import estimators
import problems
from estimators import Categorical, Gaussian
from estimators._kernels.diagnostics import jackknife as jk
from estimators._kernels.driver import CHUNK
from estimators.bounds import log_power_sums
from estimators.jackknife import JACKKNIFE2_MAX_K, jackknife_coefficients
from problems import GaussianMixture, LinearGaussian, MissingPixels

Z = 5.0


def _brute(lw, order):
    """sum_j c_j mean over subsets of size K - j of log mean_S w (logsumexp per subset)."""
    K = len(lw)
    means = []
    for j in range(order + 1):
        subsets = itertools.combinations(range(K), j)
        vals = [logsumexp(np.delete(lw, list(s))) - math.log(K - j) for s in subsets]
        means.append(math.fsum(vals) / len(vals))
    return math.fsum(c * m for c, m in zip(jackknife_coefficients(K, order), means))


def _pairs():
    lg = LinearGaussian.random(4, 2, seed=0)
    x = lg.sample(1, seed=1)[0]
    post = lg.posterior(x)
    sd = np.sqrt(np.diag(post.cov))
    g = GaussianMixture.random(4, 2, seed=2)
    xg = g.sample(1, seed=3)[0]
    mp = MissingPixels.digits(latent_rows=2)
    xm = mp.sample(1, seed=4)[0]
    return {
        "lg": (lg, x, Gaussian(post.mean + 0.3 * sd, 0.8 * sd)),
        "gm": (g, xg, Categorical([0.4, 0.3, 0.2, 0.1])),
        "mp": (mp, xm, estimators.Bernoulli(np.full(mp.latent_dim, 0.4))),
    }


PAIRS = _pairs()


class _UserModel(problems.Problem):
    def __init__(self, lg):
        self._lg = lg
        self.obs_dim, self.latent_dim = lg.obs_dim, lg.latent_dim

    def log_joint(self, x, z):
        return self._lg.log_joint(x, z)

    def log_marginal(self, x):
        return self._lg.log_marginal(x)

    def prior(self):
        return self._lg.prior()


@pytest.mark.parametrize("name", list(PAIRS))
@pytest.mark.parametrize("order, K", [(1, 2), (1, 9), (1, 40), (2, 3), (2, 9), (2, 40)])
def test_jackknife_equals_the_definition_on_the_same_draws(name, order, K):
    p, x, q = PAIRS[name]
    est = estimators.jackknife(p, x, q, K, 3, order=order, seed=5)
    lw = estimators.log_weights(p, x, q, K, seed=5)
    want = _brute(lw, order)
    assert abs(est[0] - want) < 1e-11 * K**order * max(1.0, abs(want)), (est[0], want)
    if name == "lg" or K >= 9:  # a few draws of a discrete q can repeat across replicates
        assert len(np.unique(est)) == 3


def test_generic_path_equals_compiled_order_1_across_chunks_and_order_2():
    p, x, q = PAIRS["lg"]
    user = _UserModel(p)
    assert estimators.execution_path(user, x, q) == "generic"
    for order, K in ((1, 2 * CHUNK + 7), (2, 300)):
        a = estimators.jackknife(p, x, q, K, 2, order=order, seed=6)
        b = estimators.jackknife(user, x, q, K, 2, order=order, seed=6)
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    # order 1 across chunks against the definition in extended precision
    K = 2 * CHUNK + 7
    lw = estimators.log_weights(p, x, q, K, seed=6).astype(np.longdouble)
    w = np.exp(lw - lw.max())
    S = w.sum()
    L = np.log(S / K)
    L1 = np.mean(np.log((S - w) / (K - 1)))
    want = float(K * L - (K - 1) * L1 + lw.max())
    assert abs(estimators.jackknife(p, x, q, K, 1, order=1, seed=6)[0] - want) < 1e-9


def test_bit_identical_for_one_and_two_threads():
    p, x, q = PAIRS["lg"]
    n_max = numba.config.NUMBA_NUM_THREADS
    for order, K, R in ((1, 3 * CHUNK + 1, 2), (2, 600, 1), (2, 200, 3)):
        try:
            numba.set_num_threads(1)
            one = estimators.jackknife(p, x, q, K, R, order=order, seed=7)
            numba.set_num_threads(n_max)
            many = estimators.jackknife(p, x, q, K, R, order=order, seed=7)
        finally:
            numba.set_num_threads(n_max)
        np.testing.assert_array_equal(one, many)


def test_one_dominant_weight_keeps_its_digits():
    """lw = (0, -40, -41, ...): sum w - w_max would be rounding noise; the
    kernels' directly accumulated sums of the others keep full precision."""
    lw = np.concatenate([[0.0], -40.0 - np.arange(30) * 0.37])
    K = len(lw)
    parts = np.empty((1, 3))
    jk.fold_pass1_unit(lw, parts[0])
    totals = jk.combine_pass1(parts, 1, 1)
    sums = np.array([jk.d1_unit(lw, totals[0], K)])
    got1 = jk.finish_order1(totals, sums, 1, 1, K)[0]
    assert abs(got1 - _brute(lw, 1)) < 1e-9 * abs(_brute(lw, 1))
    got2 = jk.jvi2(lw)
    assert abs(got2 - _brute(lw, 2)) < 1e-7 * abs(_brute(lw, 2))
    # leaving out the only non-zero weight gives log 0: +inf, not NaN
    lone = np.array([0.0] + [-np.inf] * 5)
    parts = np.empty((1, 3))
    jk.fold_pass1_unit(lone, parts[0])
    totals = jk.combine_pass1(parts, 1, 1)
    assert jk.finish_order1(totals, np.array([jk.d1_unit(lone, totals[0], 6)]), 1, 1, 6)[0] == np.inf


def test_all_weights_zero_is_minus_inf():
    g = GaussianMixture(np.array([0.5, 0.5, 0.0]), np.zeros((3, 1)), np.ones((3, 1, 1)))
    x = np.array([0.3])
    q = Categorical([0.0, 0.0, 1.0])
    for order in (1, 2):
        assert np.all(estimators.jackknife(g, x, q, 50, 2, order=order, seed=0) == -np.inf)


def test_bad_input():
    p, x, q = PAIRS["lg"]
    for bad in (0, 3, -1, 1.0, True, "1", None):
        with pytest.raises(ValueError, match=r"^order: "):
            estimators.jackknife(p, x, q, 10, 2, order=bad)
    with pytest.raises(ValueError, match=r"^K: .*K >= 2"):
        estimators.jackknife(p, x, q, 1, 2, order=1)
    with pytest.raises(ValueError, match=r"^K: .*K >= 3"):
        estimators.jackknife(p, x, q, 2, 2, order=2)
    assert JACKKNIFE2_MAX_K == 16384
    with pytest.raises(ValueError, match=r"^K: .*16384"):
        estimators.jackknife(p, x, q, JACKKNIFE2_MAX_K + 1, 1, order=2)
    with pytest.raises(ValueError, match=r"^K: "):
        estimators.jackknife(p, x, q, 0, 2)
    with pytest.raises(ValueError, match=r"^R: "):
        estimators.jackknife(p, x, q, 10, 0)


def test_coefficients():
    for K in (3, 10, 1000):
        for order in (1, 2):
            c = jackknife_coefficients(K, order)
            assert abs(c.sum() - 1) < 1e-9 * K**order
            for r in range(1, order + 1):  # they cancel the K^-1 .. K^-order terms
                assert abs(sum(c[j] / (K - j) ** r for j in range(order + 1))) < 1e-12 * K**order
    np.testing.assert_array_equal(jackknife_coefficients(10, 1), [10, -9])
    np.testing.assert_array_equal(jackknife_coefficients(10, 2), [50, -81, 32])


# =========================================================================== bias orders


def _subset_power_means(n, K, B, A, C):
    """Means over the subsets S of size n of the K values d of (mean_S d)^2 and
    (mean_S d)^3, from B = sum d, A = sum d^2, C = sum d^3 (inclusion
    probabilities of 1, 2, 3 distinct indices: n/K, n(n-1)/(K(K-1)), ...)."""
    P1 = n / K
    P2 = n * (n - 1) / (K * (K - 1))
    P3 = n * (n - 1) * (n - 2) / (K * (K - 1) * (K - 2))
    m2 = (P1 * A + P2 * (B * B - A)) / n**2
    m3 = (P1 * C + 3 * P2 * (A * B - C) + P3 * (B**3 - 3 * A * B + 2 * C)) / n**3
    return m2, m3


def test_bias_orders_on_exactly_lognormal_weights():
    p = LinearGaussian(np.array([[1.0]]), np.array([0.0]), np.array([1.0]))
    x = np.array([0.7])
    post = p.posterior(x)
    sigma2 = 0.25
    q = Gaussian(post.mean + math.sqrt(sigma2 * post.cov[0, 0]), np.sqrt(np.diag(post.cov)))
    log_p = p.log_marginal(x)
    e = math.exp(sigma2)
    mu2, mu3 = e - 1, e**3 - 3 * e + 2  # central moments of y = w / p(x), log y ~ N(-s2/2, s2)
    assert abs(p.relative_weight_variance(x, q) - mu2) < 1e-12  # the weights are the stated log-normal
    a1, a2 = -mu2 / 2, mu3 / 3 - 0.75 * mu2**2
    Ks, R = np.array([4, 6, 8, 12, 16, 24, 32]), 100_000
    bias = {0: [], 1: [], 2: []}
    for K in Ks:
        ws = estimators.weight_stats(p, x, q, K, R, seed=int(K))
        y1 = np.exp(ws.log_sum_w - log_p)
        y2 = np.exp(ws.log_sum_w2 - 2 * log_p)
        y3 = np.exp(log_power_sums(p, x, q, K, R, 3.0, seed=int(K)) - 3 * log_p)
        B, A, C = y1 - K, y2 - 2 * y1 + K, y3 - 3 * y2 + 3 * y1 - K
        for order in (0, 1, 2):
            est = ws.log_p_hat if order == 0 else estimators.jackknife(p, x, q, K, R, order=order, seed=int(K))
            c = jackknife_coefficients(K, order) if order else np.array([1.0])
            m = [_subset_power_means(K - j, K, B, A, C) for j in range(order + 1)]
            quad = sum(c[j] * m[j][0] for j in range(order + 1)) - (mu2 / K if order == 0 else 0.0)
            cv = (y1 / K - 1) - 0.5 * quad
            if order == 2:
                cv = cv + sum(c[j] * m[j][1] for j in range(3)) / 3.0
            d = est - log_p - cv
            bias[order].append((d.mean(), d.std(ddof=1) / math.sqrt(R)))
    fits = {}
    for order, rows in bias.items():
        b, se = np.array(rows).T
        X = np.vstack([1.0 / Ks, 1.0 / Ks**2, 1.0 / Ks**3]).T
        W = 1.0 / se**2
        cov = np.linalg.inv(X.T @ (X * W[:, None]))
        coef = cov @ (X.T @ (W * b))
        fits[order] = (coef, np.sqrt(np.diag(cov)), b, se)
    (c0, s0, b0, e0), (c1, s1, b1, e1), (c2, s2, b2, e2) = fits[0], fits[1], fits[2]
    # IS: bias a_1 / K + ..., a_1 = -mu2 / 2 exactly
    assert abs(c0[0] - a1) < Z * s0[0] and abs(c0[0]) > Z * s0[0], (c0, s0, a1)
    # JVI_1: the 1/K term is gone; the 1/K^2 term is -a_2
    assert abs(c1[0]) < Z * s1[0], (c1, s1)
    assert abs(c1[1] + a2) < Z * s1[1] and abs(c1[1]) > Z * s1[1], (c1, s1, -a2)
    # JVI_2: the 1/K and 1/K^2 terms are gone (its K^-3 term is below what 1e5 replicates resolve)
    assert abs(c2[0]) < Z * s2[0] and abs(c2[1]) < Z * s2[1], (c2, s2)
    # and every bias is resolved at the smallest K, shrinking with K for the jackknife
    assert np.all(np.abs(b0) > Z * e0) and abs(b1[0]) > Z * e1[0] and abs(b2[0]) > Z * e2[0]
    assert abs(b2[0]) < abs(b1[0]) < abs(b0[0])


def test_a_sweep_skips_jackknife_cells_with_too_few_draws(tmp_path):
    """K < order + 1 is a cell the jackknife cannot serve: skipped with its reason when the
    sweep is planned (not a failed cell); K = order + 1 runs."""
    import bench
    from bench.runner import plan

    sweep = bench.Sweep(problems={"lg": {"family": "LinearGaussian", "D": 3, "d": 2}}, estimators=["jackknife"],
                        q=["prior"], K=[2, 3], R=10, options={"order": [1, 2]})
    cells, skipped = plan(sweep)
    assert sorted((c.K, dict(c.options)["order"]) for c in cells) == [(2, 1), (3, 1), (3, 2)]
    assert len(skipped) == 1 and "needs K >= 3, got 2" in skipped[0]["reason"]
