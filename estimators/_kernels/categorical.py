r"""Log-weights for a finite discrete latent under a Categorical proposal.

For a fixed x the log-weight of category k is a table entry,
:math:`\log w_k = \log p(x, k) - \log q_k`, so a draw is an inverse-CDF lookup
(binary search in the cumulative probabilities) and a table read.
"""

import numpy as np
from numba import njit

from .rng import fill_uniform


@njit(cache=True)
def block(state, lw, n, args):
    """Block function for ``driver.log_weight_stats``; args = (cum_probs, table)."""
    cum, table = args
    u = np.empty(n)
    fill_uniform(state, u, n)
    C = cum.shape[0]
    for k in range(n):
        lo = 0
        hi = C - 1
        while lo < hi:
            mid = (lo + hi) >> 1
            if cum[mid] > u[k]:
                hi = mid
            else:
                lo = mid + 1
        lw[k] = table[lo]
