r"""Importance weights :math:`w_k = p(x, z_k) / q(z_k)`, :math:`z_k \sim q`,
reduced in log space by the compiled driver.

Every estimator of log p(x) and of the ELBO is a function of three sums over
the K weights of one replicate, which the kernel computes in one pass:

.. math::
    A = \log \sum_k w_k, \qquad B = \log \sum_k w_k^2, \qquad
    C = \sum_k \log w_k .

Then :math:`\log \hat p(x) = A - \log K`, :math:`\widehat{\mathrm{ELBO}} = C / K`
and the effective sample size is :math:`\mathrm{ESS} = e^{2A - B} \in [1, K]`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _targets  # noqa: F401  (registers the built-in problems' kernels)
from ._generic import check_problem, check_proposal, check_x, user_compiled, weight_sums
from ._kernels.driver import log_weight_stats
from ._validation import check_count, check_seed
from .kernels import compiled_block

__all__ = ["WeightStats", "weight_stats", "seed_key", "execution_path"]


def seed_key(seed):
    """The 64-bit key of a seed: SeedSequence(seed)'s first uint64 word."""
    seed = check_seed(seed)
    return np.random.SeedSequence(seed).generate_state(1, dtype=np.uint64)[0]


def check_call(p, x, K, R, seed):
    """Validate the arguments every estimator shares; returns (x, K, R, key)."""
    p = check_problem(p)
    x = check_x(p, x)
    return x, check_count("K", K), check_count("R", R), seed_key(seed)


def _block(p, x, q):
    """(kind, args) of the compiled kernel of a validated (p, x, q), or None."""
    check_proposal(p, q)
    return compiled_block(p, x, q)


def execution_path(p, x, q):
    """Which path an estimator call on (p, x, q) takes: "compiled" (a built-in
    problem's registered kernel), "compiled-user" (the problem's own
    ``compiled_log_joint`` in the compiled driver) or "generic" (the user's
    vectorised ``log_joint``, unit by unit; see ``estimators._generic``).
    Gradients of a pair without a compiled gradient kernel run on the
    generic path whatever this says."""
    p = check_problem(p)
    x = check_x(p, x)
    if _block(p, x, q) is not None:
        return "compiled"
    return "compiled-user" if user_compiled(p, q) else "generic"


@dataclass(frozen=True)
class WeightStats:
    """Per-replicate sums of the K importance weights (arrays of shape (R,))."""

    K: int
    log_sum_w: np.ndarray
    log_sum_w2: np.ndarray
    sum_log_w: np.ndarray

    @property
    def log_p_hat(self):
        """log (1/K) sum_k w_k."""
        return self.log_sum_w - np.log(self.K)

    @property
    def elbo(self):
        """(1/K) sum_k log w_k."""
        return self.sum_log_w / self.K

    @property
    def ess(self):
        """(sum w)^2 / sum w^2, in [1, K]; NaN where every weight is zero.

        Clipped to [1, K]: the bounds hold exactly (Cauchy-Schwarz), but
        exp(2A - B) can overshoot them by rounding (e.g. K + 2e-10 for K
        equal weights at K = 50000)."""
        with np.errstate(invalid="ignore"):
            ess = np.where(np.isfinite(self.log_sum_w), np.exp(2 * self.log_sum_w - self.log_sum_w2), np.nan)
        return np.clip(ess, 1.0, float(self.K))


def weight_stats(p, x, q, K, R, seed=0):
    """The sums A, B, C above for R independent replicates of K draws from q.

    The same (p, x, q, K, R, seed) gives bit-identical output whatever the
    number of threads; ``importance_sampling`` and ``elbo`` with the same seed
    see the same draws.  Any problem and proposal that follow the protocols
    (``problems.Problem``, ``estimators.Proposal``) work: a built-in pair runs
    its compiled kernel, any other the generic path (``execution_path``).
    """
    x, K, R, key = check_call(p, x, K, R, seed)
    block = _block(p, x, q)
    out = log_weight_stats(*block, key, K, R) if block is not None else weight_sums(p, x, q, key, K, R)
    return WeightStats(K, out[:, 0].copy(), out[:, 1].copy(), out[:, 2].copy())
