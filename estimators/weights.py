r"""Importance weights :math:`w_k = p(x, z_k) / q(z_k)`, :math:`z_k \sim q`,
reduced in log space by the compiled driver.

Every estimator of log p(x) and of the ELBO is a function of three sums over
the K weights of one replicate, which the kernel computes in one pass:

.. math::
    A = \log \sum_k w_k, \qquad B = \log \sum_k w_k^2, \qquad
    C = \sum_k \log w_k .

Then :math:`\log \hat p(x) = A - \log K`, :math:`\widehat{\mathrm{ELBO}} = C / K`
and the effective sample size is :math:`\mathrm{ESS} = e^{2A - B} \in [1, K]`.

The same pass keeps each replicate's M + 1 largest log-weights
(M = ``psis.tail_size(K)``, about 3 sqrt K), from which ``.khat`` fits the PSIS
Pareto k-hat when it is first read (``estimators.psis``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property, lru_cache

import numpy as np

from . import _targets  # noqa: F401  (registers the built-in problems' kernels)
from . import psis
from ._generic import check_problem, check_proposal, check_x, replicate_log_weights, user_compiled, weight_sums, weight_sums_top
from ._kernels import driver as sums_driver
from ._kernels.diagnostics import tail as tail_kernel
from ._validation import check_count, check_seed
from .kernels import compiled_block

__all__ = ["WeightStats", "weight_stats", "log_weights", "seed_key", "execution_path", "LOG_WEIGHTS_MAX_K"]

#: the largest K ``log_weights`` returns: it holds all K log-weights (8 bytes each, 800 MB at 1e8)
LOG_WEIGHTS_MAX_K = 10**8


def seed_key(seed):
    """The 64-bit key of a seed: SeedSequence(seed)'s first uint64 word."""
    return _key_of(check_seed(seed))


@lru_cache(maxsize=4096)
def _key_of(seed):
    # a pure function of the integer: building the SeedSequence costs ~15 us, a
    # tenth of a small call's overhead
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
    """Per-replicate sums of the K importance weights (arrays of shape (R,)).

    ``top_log_w`` (R, min(K, M + 1)): each replicate's M + 1 largest
    log-weights in ascending order, M = ``psis.tail_size(K)`` (None when the
    stats were built without them; ``.khat`` then raises)."""

    K: int
    log_sum_w: np.ndarray
    log_sum_w2: np.ndarray
    sum_log_w: np.ndarray
    top_log_w: np.ndarray | None = field(default=None, repr=False, compare=False)

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

    @cached_property
    def khat(self):
        """(R,) the PSIS Pareto k-hat of each replicate's weights (``estimators.psis``):
        the generalised-Pareto shape fitted to the M largest weights above the
        (M+1)-th, as ArviZ's ``psislw``.  inf where 4 or fewer weights lie above
        the threshold (K <= 20, or ties), NaN where every weight is zero.  Fitted
        on first access (the pass kept only the M + 1 largest log-weights)."""
        if self.top_log_w is None:
            raise ValueError(
                "khat: this WeightStats holds no largest log-weights (top_log_w is None); "
                "estimators.weight_stats keeps them"
            )
        return psis.khat_from_top(self.top_log_w, self.K)


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
    cap = psis.tail_size(K) + 1
    if block is not None:
        out, top = tail_kernel.top_stats(*block, key, K, R, cap)
    else:
        out, top = weight_sums_top(p, x, q, key, K, R, cap)
    return WeightStats(K, out[:, 0].copy(), out[:, 1].copy(), out[:, 2].copy(), top)


def weight_sums_only(p, x, q, K, R, seed=0):
    """``weight_stats`` without the largest log-weights (``top_log_w`` None, so no
    ``.khat``): the same draws and, bit for bit, the same sums A, B, C, from
    ``driver.log_weight_stats`` alone.  For the estimators that read only the
    sums (``importance_sampling``, ``elbo``): the k-hat buffer costs a per-sample
    comparison and, for a counted (categorical) kernel, the per-sample work the
    counting fold saves."""
    x, K, R, key = check_call(p, x, K, R, seed)
    block = _block(p, x, q)
    if block is not None:
        out = sums_driver.log_weight_stats(*block, key, K, R)
    else:
        out = weight_sums(p, x, q, key, K, R)
    return WeightStats(K, out[:, 0].copy(), out[:, 1].copy(), out[:, 2].copy(), None)


def log_weights(p, x, q, K, seed=0):
    """(K,) the raw log-weights log p(x, z_k) - log q(z_k) of one replicate:
    the draws of replicate 0 of ``weight_stats(p, x, q, K, R, seed)`` (any R),
    in draw order, for a user's own diagnostics (``psis.pareto_khat`` of them
    is ``weight_stats(...).khat[0]``).

    It holds all K values, 8 K bytes, so K above ``LOG_WEIGHTS_MAX_K`` = 1e8
    (800 MB) is a ValueError; ``weight_stats`` streams any K."""
    x, K, _, key = check_call(p, x, K, 1, seed)
    if K > LOG_WEIGHTS_MAX_K:
        raise ValueError(
            f"K: log_weights holds all K log-weights in memory (8 bytes each); K = {K} is above the "
            f"limit {LOG_WEIGHTS_MAX_K:.0e} (800 MB); weight_stats streams the sums and k-hat for any K"
        )
    block = _block(p, x, q)
    if block is not None:
        return tail_kernel.replicate_log_weights(*block, key, K)
    return replicate_log_weights(p, x, q, key, K)
