r"""Jackknife variational inference (JVI; Nowozin 2018, *Debiasing evidence
approximations: on importance-weighted autoencoders and jackknife variational
inference*, ICLR).

Importance sampling's :math:`L_K = \log \frac1K \sum_k w_k` has bias
:math:`\mathbb E[L_K] - \log p(x) = a_1/K + a_2/K^2 + \dots` (a_1 = -Var[w]/(2p^2)).
The generalized jackknife of order m combines the leave-j-out means
:math:`\bar L_{K-j}` (the mean of :math:`L_{K-j}` over all subsets of K - j of
the K draws), whose expectations have the same expansion at K - j, so that the
first m terms cancel:

.. math::
    \mathrm{JVI}_m = \sum_{j=0}^m c(K, m, j)\, \bar L_{K-j}, \qquad
    c(K, m, j) = (-1)^j \frac{(K-j)^m}{(m-j)!\, j!},

i.e. :math:`\mathrm{JVI}_1 = K L_K - (K-1) \bar L_{K-1}` and
:math:`\mathrm{JVI}_2 = \tfrac{K^2}2 L_K - (K-1)^2 \bar L_{K-1} + \tfrac{(K-2)^2}2 \bar L_{K-2}`,
with bias O(K^-(m+1)) where IS has O(1/K) (the expansion needs finite
moments; JVI is not a bound and its variance grows with m).

Order 1 streams in two passes over regenerated draws (memory flat in K); order
2 visits all K (K - 1)/2 leave-two-out pairs of each replicate, so it holds the
replicate's K <= ``JACKKNIFE2_MAX_K`` = 16384 log-weights and costs O(K^2)
(about a second per replicate at the limit).  The draws are those of
``weight_stats`` with the same seed; compiled for the built-in problems, on
the generic path (the user's vectorised ``log_joint``, called once per pass)
for any other.  See ``_kernels.diagnostics.jackknife`` for the centred,
cancellation-free formulas.
"""

from __future__ import annotations

from math import factorial

import numpy as np

from ._generic import unit_log_weights
from ._kernels.diagnostics import jackknife as jk
from ._kernels.driver import CHUNK
from ._validation import plain
from .weights import _block, check_call

__all__ = ["jackknife", "JACKKNIFE2_MAX_K", "jackknife_coefficients"]

#: the largest K of the order-2 jackknife (a replicate's draws are one unit)
JACKKNIFE2_MAX_K = jk.JACKKNIFE2_MAX_K


def jackknife_coefficients(K, order):
    """c(K, m, j), j = 0..m: the weights of the leave-j-out means (they sum to 1)."""
    return np.array([(-1) ** j * (K - j) ** order / (factorial(order - j) * factorial(j)) for j in range(order + 1)])


def _check_order(order, K):
    if isinstance(order, (bool, np.bool_)) or not isinstance(order, (int, np.integer)) or order not in (1, 2):
        raise ValueError(f"order: the jackknife is implemented for order 1 or 2, got {plain(order)}")
    order = int(order)
    if K < order + 1:
        raise ValueError(
            f"K: the order-{order} jackknife leaves {order} of the K draws out, so it needs K >= {order + 1}, got {K}"
        )
    if order == 2 and K > JACKKNIFE2_MAX_K:
        raise ValueError(
            f"K: the order-2 jackknife visits all K (K - 1) / 2 leave-two-out pairs and holds a replicate's K "
            f"log-weights; K = {K} is above its limit {JACKKNIFE2_MAX_K} (use order=1, which streams any K)"
        )
    return order


def jackknife(p, x, q, K, R, order=1, seed=0):
    r"""(R,) JVI estimates of log p(x) of the given order (1 or 2), each from K
    draws of q: the draws of ``weight_stats(p, x, q, K, R, seed)``.

    Order 1 needs K >= 2 and streams any K; order 2 needs 3 <= K <= 16384.
    Where one weight is the only non-zero one, leaving it out gives log 0 and
    the estimate is +inf; where every weight is zero, -inf."""
    x, K, R, key = check_call(p, x, K, R, seed)
    order = _check_order(order, K)
    block = _block(p, x, q)
    if block is not None:
        return jk.jackknife_compiled(*block, key, K, R, order)
    if order == 2:  # K <= CHUNK: each replicate is one unit
        return np.array([jk.jvi2(lw) for _, _, _, lw in unit_log_weights(p, x, q, key, K, R)])
    n_chunks = (K + CHUNK - 1) // CHUNK
    parts = np.empty((R * n_chunks, 3))
    for u, _, _, lw in unit_log_weights(p, x, q, key, K, R):
        jk.fold_pass1_unit(lw, parts[u])
    totals = jk.combine_pass1(parts, R, n_chunks)
    sums = np.empty(R * n_chunks)
    for u, r, _, lw in unit_log_weights(p, x, q, key, K, R):  # pass 2: the same draws again
        sums[u] = jk.d1_unit(lw, totals[r], K)
    return jk.finish_order1(totals, sums, R, n_chunks, K)
