"""bench.metrics on analytic cases (values worked out by hand), plus two
Monte Carlo checks of the standard-error formulas with SE-based tolerances."""

import math

import numpy as np
import pytest

from bench import metrics


def test_mean_se_by_hand():
    m, se = metrics.mean_se([1.0, 2.0, 3.0, 4.0])
    assert m == 2.5
    # sd (ddof=1) = sqrt(5/3); SE = sd / sqrt(4)
    assert se == pytest.approx(math.sqrt(5.0 / 3.0) / 2.0, rel=1e-14)


def test_variance_se_by_hand():
    # y = (-1, 1, -1, 1): mean 0, s^2 = 4/3, m4 = 1,
    # SE^2 = (m4 - (R-3)/(R-1) s^4) / R = (1 - (1/3)(16/9)) / 4 = 11/108
    s2, se = metrics.variance_se([-1.0, 1.0, -1.0, 1.0])
    assert s2 == pytest.approx(4.0 / 3.0, rel=1e-14)
    assert se == pytest.approx(math.sqrt(11.0 / 108.0), rel=1e-14)


def test_variance_se_has_its_analytic_expectation_on_normal_data():
    """For N(0, s^2) samples of size R: E[m4] = 3 s^4 (R-1)^2 / R^2 and
    E[s^4] = s^4 (R+1)/(R-1), so the plug-in SE^2 has expectation
    s^4/R [3(R-1)^2/R^2 - (R-3)(R+1)/(R-1)^2] -- close to (and, by O(1/R),
    below) the true Var(s^2) = 2 s^4/(R-1).  Checked by Monte Carlo within 5 SE."""
    rng = np.random.default_rng(1)
    R, n, sigma2 = 50, 4000, 2.0
    ys = rng.normal(0.0, math.sqrt(sigma2), size=(n, R))
    se2 = np.array([metrics.variance_se(y)[1] ** 2 for y in ys])
    expected = sigma2**2 / R * (3 * (R - 1) ** 2 / R**2 - (R - 3) * (R + 1) / (R - 1) ** 2)
    assert abs(se2.mean() - expected) < 5 * se2.std(ddof=1) / math.sqrt(n)
    assert expected == pytest.approx(2 * sigma2**2 / (R - 1), rel=0.1)
    # and the spread of s^2 itself is the true Var(s^2)
    s2 = ys.var(axis=1, ddof=1)
    exact_sd = sigma2 * math.sqrt(2.0 / (R - 1))
    assert abs(s2.std(ddof=1) - exact_sd) < 5 * exact_sd / math.sqrt(2 * (n - 1))


def test_mse_se_by_hand():
    mse, se = metrics.mse_se([0.0, 2.0], truth=1.0)
    assert (mse, se) == (1.0, 0.0)
    mse, se = metrics.mse_se([0.0, 3.0], truth=1.0)  # squared errors 1, 4
    assert mse == 2.5 and se == pytest.approx(np.std([1.0, 4.0], ddof=1) / math.sqrt(2))


def test_ratio_bias_by_hand():
    rb, se = metrics.ratio_bias(np.log([0.5, 1.5]), 0.0)
    assert rb == pytest.approx(0.0, abs=1e-15)
    assert se == pytest.approx(0.5, rel=1e-14)  # sd(0.5, 1.5) = 1/sqrt(2); / sqrt(2)
    rb, _ = metrics.ratio_bias(np.log([2.0, 4.0]) + 5.0, 5.0)
    assert rb == pytest.approx(2.0, rel=1e-14)


def test_snr_and_floor():
    g = np.array([[1.0, 0.0, -2.0], [3.0, 0.0, -2.0]])
    s = metrics.snr(g)
    assert s[0] == pytest.approx(2.0 / math.sqrt(2.0))  # mean 2, sd sqrt 2
    assert math.isnan(s[1])  # 0 / 0
    assert math.isinf(s[2])  # |mean| > 0, sd 0
    assert metrics.snr_floor(100) == pytest.approx(math.sqrt(2 / math.pi) / 10)


def test_snr_floor_is_what_zero_signal_measures():
    """Zero-mean normal coordinates: mean and sd are independent, E|mean| = sigma
    sqrt(2/(pi R)) (the floor) and E[sigma/s] = sqrt((R-1)/2) Gamma((R-2)/2) /
    Gamma((R-1)/2), so E[SNR] = floor * E[sigma/s] exactly."""
    from scipy.special import gammaln

    rng = np.random.default_rng(2)
    R, n = 64, 20000
    g = rng.standard_normal((R, n))  # n coordinates with true mean 0
    s = metrics.snr(g)
    floor = metrics.snr_floor(R)
    expected = floor * math.sqrt((R - 1) / 2) * math.exp(gammaln((R - 2) / 2) - gammaln((R - 1) / 2))
    assert abs(s.mean() - expected) < 5 * s.std(ddof=1) / math.sqrt(n)
    assert expected == pytest.approx(floor, rel=0.02)  # the floor is the R -> inf value


def test_trace_cov_by_hand():
    g = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0]])
    tr, se = metrics.trace_cov(g)
    # per-column variance (ddof=1) = 4/3 each
    assert tr == pytest.approx(8.0 / 3.0, rel=1e-14)
    # squared distances to the mean (1, 1): all 2 -> sd 0
    assert se == 0.0


def test_bias_t_by_hand():
    g = np.array([[1.0, 10.0], [3.0, 10.0]])
    t = metrics.bias_t(g, truth=[1.0, 10.0])
    # coord 0: mean 2, sd sqrt 2 -> SE 1, t = 1; coord 1: exact match -> 0
    assert t == pytest.approx([1.0, 0.0])
    t = metrics.bias_t(g, truth=[1.0, 10.0], truth_se=[math.sqrt(3.0), 0.0])
    assert t[0] == pytest.approx(0.5)  # sqrt(1 + 3) = 2


def test_variance_ratio_by_hand():
    r, se = metrics.variance_ratio(2.0, 0.2, 1.0, 0.1)
    assert r == 2.0 and se == pytest.approx(2.0 * math.sqrt(0.01 + 0.01))


def test_pooled_mean_by_hand():
    assert metrics.pooled_mean([1.0, 3.0], [1.0, 1.0]) == pytest.approx((2.0, 1 / math.sqrt(2)))
    m, se = metrics.pooled_mean([1.0, 3.0], [1.0, 2.0])  # weights 1, 1/4
    assert m == pytest.approx(1.75 / 1.25) and se == pytest.approx(1 / math.sqrt(1.25))


def test_wls_line_by_hand():
    x = np.array([0.0, 1.0, 2.0])
    fit = metrics.wls_line(x, 2.0 + 3.0 * x, np.ones(3))
    assert fit["slope"] == pytest.approx(3.0) and fit["intercept"] == pytest.approx(2.0)
    assert fit["chi2"] == pytest.approx(0.0, abs=1e-20) and fit["dof"] == 1
    # equal SEs: SE(b) = 1/sqrt(Sxx), SE(a) = sqrt(1/n + xbar^2/Sxx), Sxx = 2
    assert fit["slope_se"] == pytest.approx(1 / math.sqrt(2.0))
    assert fit["intercept_se"] == pytest.approx(math.sqrt(1 / 3 + 1 / 2))
    # halving every SE halves the parameter SEs
    half = metrics.wls_line(x, 2.0 + 3.0 * x, 0.5 * np.ones(3))
    assert half["slope_se"] == pytest.approx(fit["slope_se"] / 2)


def test_wls_line_slope_is_unbiased_with_its_se():
    """Repeated noisy lines: the slopes scatter with the SD the formula gives."""
    rng = np.random.default_rng(3)
    x = np.linspace(0, 5, 8)
    se = 0.1 + 0.05 * x
    slopes = [metrics.wls_line(x, 1.0 * x + rng.normal(0, se), se)["slope"] for _ in range(2000)]
    sd = metrics.wls_line(x, x, se)["slope_se"]
    assert abs(np.mean(slopes) - 1.0) < 5 * sd / math.sqrt(2000)
    assert abs(np.std(slopes, ddof=1) - sd) < 5 * sd / math.sqrt(2 * 1999)


def test_categorical_relative_weight_variance_by_hand():
    assert metrics.categorical_relative_weight_variance([0.9, 0.1], [0.9, 0.1]) == pytest.approx(0.0, abs=1e-15)
    # q uniform: sum pi^2 / q - 1 = (0.81 + 0.01) / 0.5 - 1 = 0.64
    assert metrics.categorical_relative_weight_variance([0.9, 0.1], [0.5, 0.5]) == pytest.approx(0.64)
    # q misses a category: sum over q's support pi^2/q - (sum over support pi)^2 = 0.81 - 0.81
    assert metrics.categorical_relative_weight_variance([0.9, 0.1], [1.0, 0.0]) == pytest.approx(0.0)


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: metrics.mean_se([1.0]), "y"),
        (lambda: metrics.variance_se([1.0, 2.0, 3.0]), "y"),
        (lambda: metrics.snr(np.ones(3)), "g"),
        (lambda: metrics.bias_t(np.ones((3, 2)), [0.0]), "truth"),
        (lambda: metrics.pooled_mean([1.0], [0.0]), "se"),
        (lambda: metrics.wls_line([1.0], [1.0], [1.0]), "x"),
        (lambda: metrics.snr_floor(0), "R"),
    ],
)
def test_bad_input_names_the_argument(call, name):
    with pytest.raises(ValueError, match=rf"^{name}:"):
        call()
