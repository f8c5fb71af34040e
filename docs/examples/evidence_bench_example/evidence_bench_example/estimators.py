r"""Two estimators of a user's own, in plain NumPy, registered with evidence-bench.

Importing this module registers them (the decorator); the package's entry
points (group ``evidence_bench.estimators`` in pyproject.toml) make
``python -m bench`` and config files find them by name once it is installed.

Both take the call every estimator takes, ``fn(p, x, q, K, R, seed, **options)``,
use only the problem and proposal protocols (``p.log_joint``, ``p.prior()``,
``q.sample``, ``q.log_prob``, ``q.grad_log_prob``), and so run on any problem
and proposal, built-in or not.  They are vectorised over blocks of replicates
(about 2^18 draws at a time, at least one replicate's K): memory O(K), not
O(K R).
"""

from __future__ import annotations

import numbers

import numpy as np
from scipy.special import logsumexp

import bench

__all__ = ["defensive_is", "score_cv"]


def _check_count(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name}: expected an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {value}")
    return int(value)


def _for_log_joint(p, z, n):
    """z as p.log_joint takes it: a categorical latent's (n,) indices as (n, 1)."""
    z = np.asarray(z)
    if getattr(p, "latent_type", "continuous") == "categorical" and z.ndim == 1:
        return z.reshape(n, 1)
    return z


def _replicate_blocks(R, K, max_draws=1 << 18):
    """[r0, r1) blocks of replicates, about ``max_draws`` draws each (memory O(max(K, max_draws)))."""
    step = max(1, max_draws // K)
    return [(r0, min(R, r0 + step)) for r0 in range(0, R, step)]


def _log_joint(p, x, z, n):
    lj = np.asarray(p.log_joint(x, _for_log_joint(p, z, n)), dtype=np.float64)
    if lj.shape != (n,):
        raise ValueError(f"p.log_joint: returned shape {lj.shape}, expected ({n},)")
    return lj


@bench.estimator("defensive_is", target="log_marginal")
def defensive_is(p, x, q, K, R, seed, alpha=0.1):
    r"""Defensive importance sampling: log p_hat(x) with the mixture (1 - alpha) q + alpha p(z).

    Each of the K draws of a replicate comes from the defensive mixture
    :math:`m(z) = (1-\alpha)\, q(z) + \alpha\, p(z)` (p(z) = ``p.prior()``),
    and

    .. math::
        \log \hat p(x) = \log \frac1K \sum_{k=1}^K w_k, \qquad
        \log w_k = \log p(x, z_k) - \log\big((1-\alpha)\, q(z_k) + \alpha\, p(z_k)\big),

    the denominator computed as a log-sum-exp.  :math:`\hat p(x)` is unbiased
    for p(x) for any q once alpha > 0 (m > 0 wherever p(x, z) > 0), and the
    weights are bounded, :math:`w \le p(x \mid z)/\alpha \le \max_z p(x \mid z)/\alpha`,
    so its variance is finite even when q's tails are too light or q misses a
    mode (Hesterberg, 1995).  alpha = 0 is plain importance sampling with q
    (unbiased only if q covers the posterior), alpha = 1 the prior.

    Sampling: the number of prior draws of each replicate is Binomial(K,
    alpha), the rest come from q; the draws are i.i.d. from m, so their order
    does not matter.  One ``numpy.random.default_rng(seed)`` draws for the
    replicates in order, a block of replicates at a time.
    Returns (R,) estimates of log p(x).
    """
    K = _check_count("K", K, 1)
    R = _check_count("R", R, 1)
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha: must be a number in [0, 1], got {alpha!r}")
    alpha = float(alpha)
    prior = p.prior()
    rng = np.random.default_rng(seed)
    with np.errstate(divide="ignore"):  # log 0 = -inf for alpha 0 or 1: the logaddexp below is exact
        log_a, log_1ma = np.log(alpha), np.log1p(-alpha)

    def log_w(z, n):
        z = np.asarray(z)
        log_mix = np.logaddexp(log_1ma + np.asarray(q.log_prob(z), dtype=np.float64),
                               log_a + np.asarray(prior.log_prob(z), dtype=np.float64))
        return _log_joint(p, x, z, n) - log_mix

    out = np.empty(R)
    for r0, r1 in _replicate_blocks(R, K):
        n_prior = rng.binomial(K, alpha, size=r1 - r0)  # prior draws of each replicate
        from_q = np.arange(K)[None, :] < (K - n_prior)[:, None]  # slots [0, K - n_prior) come from q
        lw = np.empty((r1 - r0, K))
        n_q = int(from_q.sum())
        if n_q:
            lw[from_q] = log_w(q.sample(n_q, rng), n_q)  # row-major: replicate r0's draws first
        if n_q < lw.size:
            lw[~from_q] = log_w(prior.sample(lw.size - n_q, rng), lw.size - n_q)
        out[r0:r1] = logsumexp(lw, axis=1) - np.log(K)
    return out


def _leave_one_out_sums(a):
    """a of shape (B, K, m) -> [b, k] = sum_{i != k} a[b, i], as (sum_{i < k}) +
    (sum_{i > k}): no cancellation, unlike sum_i a_i - a_k when a_k dominates."""
    before = np.zeros_like(a)
    np.cumsum(a[:, :-1], axis=1, out=before[:, 1:])
    after = np.zeros_like(a)
    np.cumsum(a[:, :0:-1], axis=1, out=after[:, -2::-1])
    return before + after


@bench.estimator("score_cv", target="elbo_grad")
def score_cv(p, x, q, K, R, seed):
    r"""Score-function ELBO gradient, the score as control variate with a leave-one-out coefficient per coordinate.

    The coefficient is the per-coordinate optimum estimated from the other
    draws, which keeps the estimator unbiased.

    With :math:`z_k \sim q_\theta` i.i.d., :math:`f_k = \log p(x, z_k) - \log q_\theta(z_k)`
    and the score :math:`s_k = \nabla_\theta \log q_\theta(z_k)` (``q.grad_log_prob``),
    :math:`\nabla_\theta \mathrm{ELBO} = \mathbb E_q[f\, s]` because
    :math:`\mathbb E_q[s] = 0`; for the same reason :math:`s_j` is a control
    variate of coordinate j, and for any constant :math:`b_j`

    .. math:: \hat g_j = \frac1K \sum_{k=1}^K (f_k - b_{j,-k})\, s_{kj},
              \qquad b_{j,-k} = \frac{\sum_{i \ne k} f_i\, s_{ij}^2}{\sum_{i \ne k} s_{ij}^2}

    is unbiased as long as :math:`b_{j,-k}` does not depend on :math:`z_k`.
    The variance of :math:`(f - b_j) s_j` is smallest at
    :math:`b_j^* = \mathbb E[f s_j^2] / \mathbb E[s_j^2]`; :math:`b_{j,-k}`
    estimates it from the other K - 1 draws (leave-one-out keeps the estimator
    unbiased; a baseline fitted on all K draws would not be).  Where
    :math:`\sum_{i \ne k} s_{ij}^2 = 0` the baseline is 0 (still a function of
    the other draws only).  Compare the built-in "score_loo", whose baseline
    is the plain mean of the other :math:`f_i`, the same for every coordinate.

    Needs K >= 2.  One ``numpy.random.default_rng(seed)`` draws for the
    replicates in order, a block of replicates at a time.  Returns (R, len(q.params)).
    """
    K = _check_count("K", K, 2)
    R = _check_count("R", R, 1)
    n_params = len(q.params)
    rng = np.random.default_rng(seed)
    out = np.empty((R, n_params))
    for r0, r1 in _replicate_blocks(R, K):
        n = (r1 - r0) * K
        z = np.asarray(q.sample(n, rng))  # row-major: replicate r0's K draws first
        f = (_log_joint(p, x, z, n) - np.asarray(q.log_prob(z), dtype=np.float64)).reshape(r1 - r0, K, 1)
        s = np.asarray(q.grad_log_prob(z), dtype=np.float64)
        if s.shape != (n, n_params):
            raise ValueError(f"q.grad_log_prob: returned shape {s.shape}, expected ({n}, {n_params})")
        s = s.reshape(r1 - r0, K, n_params)
        s2 = s * s
        num = _leave_one_out_sums(f * s2)  # sum_{i != k} f_i s_ij^2
        den = _leave_one_out_sums(s2)  # sum_{i != k} s_ij^2
        with np.errstate(divide="ignore", invalid="ignore"):
            b = np.where(den > 0, num / den, 0.0)
        out[r0:r1] = np.mean((f - b) * s, axis=1)
    return out
