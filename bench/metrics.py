r"""Metrics of R replicate estimates, each with its standard error.

Small pure functions on NumPy arrays; every formula is in the docstring.
Notation: :math:`y_1..y_R` the replicate estimates, :math:`\bar y` their mean,
:math:`s^2 = \frac{1}{R-1}\sum_r (y_r - \bar y)^2`, :math:`\theta` the exact
value.

Scalar estimators (log p-hat, the ELBO) use ``mean_se``, ``variance_se``,
``mse_se``, ``ratio_bias``; gradient estimators (rows of an (R, P) array) use
``snr``, ``snr_floor``, ``trace_cov``, ``bias_t`` and ``variance_ratio``;
fits across cells use ``pooled_mean`` and ``wls_line``.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "mean_se",
    "variance_se",
    "mse_se",
    "ratio_bias",
    "snr",
    "snr_floor",
    "trace_cov",
    "bias_t",
    "variance_ratio",
    "pooled_mean",
    "wls_line",
    "categorical_relative_weight_variance",
]


def _vector(name, y, min_len=2):
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array of replicates, got shape {y.shape}")
    if y.shape[0] < min_len:
        raise ValueError(f"{name}: need at least {min_len} replicates, got {y.shape[0]}")
    return y


def _matrix(name, g):
    g = np.asarray(g, dtype=np.float64)
    if g.ndim != 2:
        raise ValueError(f"{name}: expected an (R, P) array of replicate gradients, got shape {g.shape}")
    if g.shape[0] < 2:
        raise ValueError(f"{name}: need at least 2 replicates, got {g.shape[0]}")
    return g


def mean_se(y):
    r"""Mean and its standard error: :math:`(\bar y,\ s/\sqrt R)`."""
    y = _vector("y", y)
    return float(np.mean(y)), float(np.std(y, ddof=1) / math.sqrt(y.shape[0]))


def variance_se(y):
    r"""Sample variance :math:`s^2` and its standard error.

    .. math::
        \mathrm{SE}(s^2)^2 = \frac1R\Big(m_4 - \frac{R-3}{R-1}\, s^4\Big),
        \qquad m_4 = \frac1R \sum_r (y_r - \bar y)^4,

    the plug-in form of :math:`\mathrm{Var}(s^2) = \frac1R(\mu_4 - \frac{R-3}{R-1}\sigma^4)`
    (for normal data :math:`\approx s^2\sqrt{2/(R-1)}`).  Clipped at 0.
    """
    y = _vector("y", y, min_len=4)
    R = y.shape[0]
    d = y - np.mean(y)
    s2 = float(np.sum(d * d) / (R - 1))
    m4 = float(np.mean(d**4))
    var_s2 = (m4 - (R - 3) / (R - 1) * s2 * s2) / R
    return s2, math.sqrt(max(var_s2, 0.0))


def mse_se(y, truth):
    r"""Mean squared error :math:`\frac1R\sum_r (y_r-\theta)^2` and its SE
    :math:`\mathrm{sd}_r\big((y_r-\theta)^2\big)/\sqrt R`."""
    y = _vector("y", y)
    e2 = (y - float(truth)) ** 2
    return float(np.mean(e2)), float(np.std(e2, ddof=1) / math.sqrt(y.shape[0]))


def ratio_bias(log_y, log_truth):
    r"""Bias of :math:`\hat p/p` from log estimates: with
    :math:`u_r = \exp(\log\hat p_r - \log p)`, returns
    :math:`(\bar u - 1,\ \mathrm{sd}(u)/\sqrt R)`.

    :math:`\hat p` is unbiased, so this is 0 in expectation whenever
    :math:`E[\hat p]` exists; its SE is meaningful only if :math:`\mathrm{Var}_q[w]`
    is finite.
    """
    log_y = _vector("log_y", log_y)
    with np.errstate(over="ignore"):
        u = np.exp(log_y - float(log_truth))
    return float(np.mean(u) - 1.0), float(np.std(u, ddof=1) / math.sqrt(u.shape[0]))


def snr(g):
    r"""Per-coordinate signal-to-noise ratio :math:`|\bar g_j| / s_j` of (R, P)
    replicate gradients (NaN where :math:`s_j = 0` and :math:`\bar g_j = 0`,
    inf where only :math:`s_j = 0`)."""
    g = _matrix("g", g)
    m = np.abs(np.mean(g, axis=0))
    s = np.std(g, axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return m / s


def snr_floor(R):
    r"""The SNR measured when the true mean is 0: :math:`E|\bar g|/\sigma =
    \sqrt{2/\pi}/\sqrt R` (the mean of R normal draws).  A measured SNR near
    this value is indistinguishable from zero signal."""
    if R < 1:
        raise ValueError(f"R: must be >= 1, got {R}")
    return math.sqrt(2.0 / math.pi) / math.sqrt(R)


def trace_cov(g):
    r"""Trace of the sample covariance of (R, P) gradients and its SE.

    .. math::
        \operatorname{tr}\hat\Sigma = \frac{1}{R-1}\sum_r \|g_r - \bar g\|^2,
        \qquad \mathrm{SE} \approx \mathrm{sd}_r\big(\|g_r - \bar g\|^2\big)\,\frac{\sqrt R}{R-1}.
    """
    g = _matrix("g", g)
    R = g.shape[0]
    d2 = np.sum((g - np.mean(g, axis=0)) ** 2, axis=1)
    return float(np.sum(d2) / (R - 1)), float(np.std(d2, ddof=1) * math.sqrt(R) / (R - 1))


def bias_t(g, truth, truth_se=None):
    r"""Per-coordinate bias t-statistics of (R, P) gradients against an exact
    or reference gradient:

    .. math::
        t_j = \frac{\bar g_j - \theta_j}{\sqrt{s_j^2/R + \mathrm{SE}(\theta_j)^2}}

    (``truth_se`` = None for an exact :math:`\theta`).  Coordinates with a zero
    denominator give 0 when the difference is 0, else inf.
    """
    g = _matrix("g", g)
    truth = np.asarray(truth, dtype=np.float64)
    if truth.shape != (g.shape[1],):
        raise ValueError(f"truth: expected shape ({g.shape[1]},), got {truth.shape}")
    var = np.var(g, axis=0, ddof=1) / g.shape[0]
    if truth_se is not None:
        truth_se = np.asarray(truth_se, dtype=np.float64)
        if truth_se.shape != truth.shape:
            raise ValueError(f"truth_se: expected shape {truth.shape}, got {truth_se.shape}")
        var = var + truth_se**2
    diff = np.mean(g, axis=0) - truth
    with np.errstate(divide="ignore", invalid="ignore"):
        t = diff / np.sqrt(var)
    return np.where(diff == 0, 0.0, t)


def variance_ratio(a, a_se, b, b_se):
    r"""Ratio :math:`a/b` of two independent variance estimates and its
    delta-method SE :math:`\frac ab \sqrt{(\mathrm{SE}_a/a)^2 + (\mathrm{SE}_b/b)^2}`."""
    if b == 0:
        return (math.nan, math.nan) if a == 0 else (math.inf, math.nan)
    r = a / b
    if a == 0:
        return 0.0, abs(a_se / b)
    return r, abs(r) * math.sqrt((a_se / a) ** 2 + (b_se / b) ** 2)


def pooled_mean(values, se):
    r"""Inverse-variance pooled mean of independent estimates:
    :math:`\hat\mu = \sum_i w_i v_i / \sum_i w_i`, :math:`w_i = 1/\mathrm{SE}_i^2`,
    :math:`\mathrm{SE}(\hat\mu) = (\sum_i w_i)^{-1/2}`.  Every SE must be > 0."""
    v = np.asarray(values, dtype=np.float64)
    se = np.asarray(se, dtype=np.float64)
    if v.shape != se.shape or v.ndim != 1 or v.size == 0:
        raise ValueError(f"se: expected the shape of values {v.shape}, got {se.shape}")
    if not (se > 0).all():
        raise ValueError("se: every standard error must be > 0")
    w = 1.0 / se**2
    return float(np.sum(w * v) / np.sum(w)), float(1.0 / math.sqrt(np.sum(w)))


def wls_line(x, y, se):
    r"""Weighted least-squares line :math:`y = a + b x` with known standard
    errors (weights :math:`1/\mathrm{SE}_i^2`).

    With :math:`X = [1, x]`, :math:`W = \mathrm{diag}(\mathrm{SE}^{-2})`:
    :math:`(a, b) = (X^TWX)^{-1}X^TWy`, covariance :math:`(X^TWX)^{-1}` (the
    SEs are taken as known, not rescaled by the residuals), and
    :math:`\chi^2 = \sum_i ((y_i - a - b x_i)/\mathrm{SE}_i)^2` on n - 2 degrees
    of freedom as the goodness of fit.

    Returns a dict with intercept, intercept_se, slope, slope_se, chi2, dof.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    se = np.asarray(se, dtype=np.float64)
    if not (x.shape == y.shape == se.shape) or x.ndim != 1:
        raise ValueError(f"y: x, y and se must be 1-D of one length, got {x.shape}, {y.shape}, {se.shape}")
    if x.size < 2:
        raise ValueError(f"x: need at least 2 points, got {x.size}")
    if not (se > 0).all():
        raise ValueError("se: every standard error must be > 0")
    w = 1.0 / se**2
    X = np.column_stack([np.ones_like(x), x])
    A = X.T @ (w[:, None] * X)
    cov = np.linalg.inv(A)
    beta = cov @ (X.T @ (w * y))
    resid = (y - X @ beta) / se
    return {
        "intercept": float(beta[0]),
        "intercept_se": float(math.sqrt(cov[0, 0])),
        "slope": float(beta[1]),
        "slope_se": float(math.sqrt(cov[1, 1])),
        "chi2": float(resid @ resid),
        "dof": int(x.size - 2),
    }


def categorical_relative_weight_variance(post_probs, q_probs):
    r"""Exact :math:`\mathrm{Var}_q[w]/p(x)^2` for a discrete latent, by enumeration.

    With :math:`w_k = p(x,k)/q_k` and :math:`\pi_k = p(k|x)`, over the support
    S of q:

    .. math::
        \frac{\mathrm{Var}_q[w]}{p(x)^2} = \sum_{k\in S} \frac{\pi_k^2}{q_k}
            - \Big(\sum_{k \in S} \pi_k\Big)^2 .

    (For a q that covers the posterior's support the second term is 1.)
    """
    post = np.asarray(post_probs, dtype=np.float64)
    q = np.asarray(q_probs, dtype=np.float64)
    if post.shape != q.shape or post.ndim != 1:
        raise ValueError(f"q_probs: expected shape {post.shape}, got {q.shape}")
    s = q > 0
    return float(max(np.sum(post[s] ** 2 / q[s]) - np.sum(post[s]) ** 2, 0.0))
