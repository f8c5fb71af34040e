r"""The PSIS Pareto k-hat: against ArviZ, against exact tail shapes, streaming.

* ArviZ's ``psislw`` on the same log-weights (``estimators.log_weights``) gives
  the same k-hat to rounding, over problems, proposals, seeds and K.
* ``weight_stats(...).khat`` -- from the M + 1 largest log-weights kept in the
  pass -- equals ``psis.pareto_khat(log_weights(...))`` exactly, and does not
  depend on the thread count.
* Against the exact tail shape.  For a Gaussian posterior
  :math:`p(z|x) = N(\mu, \Sigma)` and :math:`q = N(m, S)`,
  :math:`\log w = \log p(x) + \log N(z; \mu, \Sigma) - \log N(z; m, S)` is a
  quadratic in z, and :math:`E_q[w^s] < \infty` iff
  :math:`s\Sigma^{-1} + (1-s)S^{-1}` is positive definite; with
  :math:`\lambda_{\min}` the smallest eigenvalue of :math:`S\Sigma^{-1}`, that
  holds for all s < 1/(1 - lambda_min) when lambda_min < 1, so the weights have
  a power-law tail of shape :math:`k = 1 - \lambda_{\min}` (up to a slowly
  varying factor in general).  In d = 2 with m = mu and S = c Sigma, c < 1, it is
  exact: with :math:`U = (z-\mu)^T S^{-1} (z-\mu) \sim \chi^2_2`, i.e. U/2 ~ Exp(1),
  :math:`\log w = \log p(x) + \log c + (1 - c) U / 2`, so
  :math:`w / (c\,p(x))` is Pareto with :math:`P(w > t) = (t / c p(x))^{-1/(1-c)}`:
  shape k = 1 - c at every threshold, and the excesses over the threshold are
  exactly generalised Pareto.  The estimator's own prior (k ~ 0.5 with the
  weight of 10 observations) moves its mean to (M k + 5) / (M + 10); the
  tolerance is 5 SE of the mean over R replicates, the SE from their spread.
  For c > 1 the weights are bounded (w / w_max = V^(c-1), V uniform; at c = 2
  uniform, k = -1), where Zhang-Stephens is known to be biased towards 0: only
  the sign is checked.
* The fit alone on exact generalised-Pareto samples (scipy.stats.genpareto).
"""

from __future__ import annotations

import math
import subprocess
import sys

import arviz as az
import numba
import numpy as np
import pytest
from scipy import stats

import estimators
from estimators import Bernoulli, Categorical, Gaussian, MultivariateGaussian, psis
from estimators._kernels.driver import CHUNK
from estimators.weights import WeightStats
from problems import GaussianMixture, LinearGaussian, MissingPixels


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
        "lg-narrow": (lg, x, Gaussian(post.mean, 0.6 * sd)),
        "lg-shifted": (lg, x, Gaussian(post.mean + 1.5 * sd, sd)),
        "lg-wide": (lg, x, Gaussian(post.mean, 2.0 * sd)),
        "lg-prior": (lg, x, lg.prior()),
        "lg-mvg": (lg, x, MultivariateGaussian(post.mean - 0.5 * sd, 0.8 * post.cov)),
        "gm-categorical": (g, xg, Categorical([0.4, 0.3, 0.2, 0.1])),
        "mp-bernoulli": (mp, xm, Bernoulli(np.full(mp.latent_dim, 0.3))),
    }


PAIRS = _pairs()


def test_khat_equals_arviz_on_the_same_log_weights():
    """Over 7 proposals x 3 seeds x 4 K: |ours - ArviZ| < 1e-8 where ArviZ fits
    (the issue asks for 0.01; it is the same estimator, so the difference is
    rounding), and both infinite where the tail has 4 or fewer values."""
    worst, fitted = 0.0, 0
    for name, (p, x, q) in PAIRS.items():
        for seed in (0, 1, 2):
            for K in (30, 500, 20_000, 70_000):
                lw = estimators.log_weights(p, x, q, K, seed=seed)
                _, k_az = az.psislw(lw.copy())
                k_az = float(k_az)
                ours = psis.pareto_khat(lw)
                if math.isinf(k_az):
                    assert math.isinf(ours), (name, seed, K)
                    continue
                fitted += 1
                worst = max(worst, abs(ours - k_az))
                assert abs(ours - k_az) < 1e-8, (name, seed, K, ours, k_az)
                assert ours == estimators.weight_stats(p, x, q, K, 2, seed=seed).khat[0]
    assert fitted >= 60
    assert worst < 1e-8


def _same(a, b):
    return (math.isinf(a) and a == b) or abs(a - b) < 1e-8


def test_khat_equals_arviz_on_heavy_tails():
    """Synthetic log-weights with very heavy tails (k up to ~2, where both
    overflow to inf for the widest) and ties."""
    rng = np.random.default_rng(5)
    for K in (21, 100, 4000, 50_000):
        for scale in (0.3, 1.0, 3.0):
            lw = scale * rng.standard_t(1.5, size=K)
            assert _same(psis.pareto_khat(lw), float(az.psislw(lw.copy())[1])), (K, scale)
        ties = np.round(rng.standard_normal(K), 1)
        assert _same(psis.pareto_khat(ties), float(az.psislw(ties.copy())[1]))
    # batched like arviz: (..., K)
    lw = rng.standard_normal((3, 2, 500))
    np.testing.assert_allclose(psis.pareto_khat(lw), az.psislw(lw.copy())[1], atol=1e-8, rtol=0)


@pytest.mark.parametrize("K", [1, 20, 21, 1000, 3 * CHUNK + 7])
def test_streaming_khat_equals_khat_of_log_weights(K):
    for name, (p, x, q) in PAIRS.items():
        ws = estimators.weight_stats(p, x, q, K, 3, seed=11)
        k0 = psis.pareto_khat(estimators.log_weights(p, x, q, K, seed=11))
        assert ws.khat.shape == (3,)
        assert ws.khat[0] == k0 or (math.isinf(k0) and math.isinf(ws.khat[0])), (name, K)
        if K <= 20:  # M = ceil(min(K/5, 3 sqrt K)) <= 4: no fit, as ArviZ
            assert np.all(np.isinf(ws.khat))


def test_khat_bit_identical_for_one_and_two_threads():
    K, R = 3 * CHUNK + 5, 3
    n_max = numba.config.NUMBA_NUM_THREADS
    for name in ("lg-narrow", "gm-categorical"):
        p, x, q = PAIRS[name]
        try:
            numba.set_num_threads(1)
            one = estimators.weight_stats(p, x, q, K, R, seed=13)
            numba.set_num_threads(n_max)
            many = estimators.weight_stats(p, x, q, K, R, seed=13)
        finally:
            numba.set_num_threads(n_max)
        np.testing.assert_array_equal(one.top_log_w, many.top_log_w)
        np.testing.assert_array_equal(one.khat, many.khat)
        np.testing.assert_array_equal(one.log_sum_w, many.log_sum_w)


def _exact_pareto_pair(c):
    p = LinearGaussian.random(3, 2, seed=0)
    x = p.sample(1, seed=1)[0]
    post = p.posterior(x)
    return p, x, MultivariateGaussian(post.mean, c * post.cov)


@pytest.mark.parametrize("c", [0.3, 0.5, 0.7])
def test_khat_against_the_exact_pareto_tail(c):
    """q = N(mu, c Sigma) in d = 2: w is exactly Pareto with shape k = 1 - c
    (module docstring).  Mean k-hat over R = 200 replicates of K = 1e5 against
    (M k + 5) / (M + 10), within 5 SE."""
    p, x, q = _exact_pareto_pair(c)
    K, R = 100_000, 200
    k = 1.0 - c
    M = psis.tail_size(K)
    want = (M * k + 5.0) / (M + 10.0)
    khat = estimators.weight_stats(p, x, q, K, R, seed=17).khat
    se = khat.std(ddof=1) / np.sqrt(R)
    assert abs(khat.mean() - want) < 5 * se, (khat.mean(), want, se)
    # and the sampling spread is what the fit's asymptotics say: sd ~ (1 + k) / sqrt(M)
    assert 0.7 < khat.std(ddof=1) / ((1 + k) / np.sqrt(M)) < 1.5


def test_exact_pareto_k_of_linear_gaussian():
    """p.pareto_k: 1 - c for q = N(mu, c Sigma), c < 1; it is the moment
    boundary: E_q[w^s] finite just below s = 1/k and infinite just above
    (log_weight_moment, checked against quadrature in test_bounds); -2/d for a
    q wider in every direction; 0 for a pure shift (log-normal weights)."""
    for c in (0.3, 0.5, 0.7):
        p, x, q = _exact_pareto_pair(c)
        k = p.pareto_k(x, q)
        assert abs(k - (1 - c)) < 1e-12
        assert math.isfinite(p.log_weight_moment(x, q, 0.999 / k))
        assert p.log_weight_moment(x, q, 1.001 / k) == math.inf
    p, x, q = _exact_pareto_pair(2.0)
    assert p.pareto_k(x, q) == -1.0
    post = p.posterior(x)
    assert p.pareto_k(x, MultivariateGaussian(post.mean + 0.5, post.cov)) == 0.0
    assert math.isnan(p.pareto_k(x, post))
    # a general q: 1 - the smallest eigenvalue of S Sigma^-1
    S = np.array([[0.5, 0.1], [0.1, 1.4]]) * np.diag(post.cov).mean()
    q = MultivariateGaussian(post.mean + 0.2, S)
    lam = np.linalg.eigvals(S @ np.linalg.inv(post.cov)).real.min()
    assert abs(p.pareto_k(x, q) - (1 - lam)) < 1e-10


def test_khat_is_negative_for_bounded_weights():
    """q = N(mu, 2 Sigma) in d = 2: w / w_max is uniform on (0, 1] (shape -1)."""
    p, x, q = _exact_pareto_pair(2.0)
    khat = estimators.weight_stats(p, x, q, 20_000, 20, seed=19).khat
    assert np.all(khat < -0.5)


@pytest.mark.parametrize("k", [-0.3, 0.2, 0.6, 1.2])
def test_gpd_fit_on_exact_generalised_pareto_samples(k):
    """The fit alone: n = 2000 excesses from scipy's genpareto(c=k), 100 sets;
    the mean fitted k against (n k + 5)/(n + 10) within 5 SE."""
    n, sets = 2000, 100
    rng = np.random.default_rng(23)
    fits = np.array([psis.gpd_fit(np.sort(stats.genpareto(c=k).rvs(n, random_state=rng)))[0] for _ in range(sets)])
    want = (n * k + 5.0) / (n + 10.0)
    se = fits.std(ddof=1) / np.sqrt(sets)
    assert abs(fits.mean() - want) < 5 * se, (fits.mean(), want, se)


def test_tail_size_and_threshold():
    for K in (1, 2, 20, 21, 24, 25, 26, 100, 225, 226, 10**6, 10**8):
        assert psis.tail_size(K) == math.ceil(min(0.2 * K, 3 * math.sqrt(K)))
    assert psis.tail_size(10**6) == 3000
    assert psis.khat_threshold(10**6) == pytest.approx(0.7)
    assert psis.khat_threshold(100) == pytest.approx(0.5)
    assert psis.khat_threshold(1000) == pytest.approx(1 - 1 / 3)


def test_khat_of_constant_weights_is_inf_not_an_error():
    """q = p(z|x): every weight is p(x) to rounding; no tail to fit."""
    p, x, _ = PAIRS["lg-narrow"]
    ws = estimators.weight_stats(p, x, p.posterior(x), 5000, 3, seed=1)
    assert np.all(np.abs(ws.top_log_w - p.log_marginal(x)) < 1e-12)
    assert np.all(ws.khat == np.inf)


def test_khat_edge_cases_and_bad_input():
    # every weight zero: NaN, not an error or a number
    assert math.isnan(psis.pareto_khat(np.full(100, -np.inf)))
    # a few -inf weights are fine (ArviZ floors the threshold at log(tiny))
    lw = np.random.default_rng(1).standard_normal(1000)
    lw[:10] = -np.inf
    assert abs(psis.pareto_khat(lw) - float(az.psislw(lw.copy())[1])) < 1e-8
    with pytest.raises(ValueError, match=r"^log_weights: contains NaN"):
        psis.pareto_khat(np.array([0.0, np.nan, 1.0]))
    with pytest.raises(ValueError, match=r"^log_weights: contains \+inf"):
        psis.pareto_khat(np.array([0.0, np.inf, 1.0]))
    with pytest.raises(ValueError, match=r"^log_weights: "):
        psis.pareto_khat(np.array(1.0))
    with pytest.raises(ValueError, match=r"^y: "):
        psis.gpd_fit(np.array([3.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match=r"^top: "):
        psis.khat_from_top(np.zeros((2, 5)), 10**6)
    ws = WeightStats(10, np.zeros(2), np.zeros(2), np.zeros(2))
    with pytest.raises(ValueError, match=r"^khat: "):
        ws.khat


_MEMORY_SCRIPT = """
import numpy as np, estimators
from problems import LinearGaussian
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
p = LinearGaussian.random(2, 2, seed=0)
x = p.sample(1, seed=1)[0]
q = p.prior()
estimators.weight_stats(p, x, q, 3 * 16384, 1, seed=0).khat  # the same compiled path, warm
before = hwm()
ws = estimators.weight_stats(p, x, q, {K}, 1, seed=0)
k = ws.khat[0]
print(before, hwm(), ws.top_log_w.shape[1], k)
"""


def test_memory_flat_in_k_with_khat():
    """K = 1e7 with k-hat in a fresh interpreter: the peak RSS (VmHWM) grows by
    under 50 MB over the warm-up call (the K log-weights alone would be 80 MB;
    what is kept is M + 1 = 9488 of them).  K = 1e8 measured the same way: 238 MB
    peak in all, 16 MB over the warm-up."""
    K = 10**7
    out = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT.format(K=K)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    before, after, kept, k = (float(v) for v in out.stdout.split())
    assert kept == psis.tail_size(K) + 1
    assert after - before < 50, (before, after)
    assert math.isfinite(k)
