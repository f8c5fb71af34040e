r"""Log-weights for a finite discrete latent under a Categorical proposal.

For a fixed x the log-weight of category k is a table entry,
:math:`\log w_k = \log p(x, k) - \log q_k`, so a draw is a category and a
table read.  Categories are drawn by Walker's alias method (Vose's
construction, ``alias_table``): one uniform u gives a column
:math:`i = \lfloor uC \rfloor` and a coin :math:`uC - i`, which keeps i when it is
below ``keep[i]`` and takes ``alias[i]`` otherwise -- O(1) and branch-free,
whatever C.
"""

from collections import namedtuple

import numpy as np
from numba import njit

from .driver import register_block
from .rng import fill_uniform


def alias_table(probs):
    """(keep, alias) for Walker's alias method, by Vose's stable construction.

    Column i holds category i with probability keep[i] and alias[i] otherwise;
    each column carries 1/C of the mass, so category k is drawn with
    probability (keep[k] + sum_{i: alias[i]=k} (1 - keep[i])) / C = probs[k].
    A zero-probability category gets keep = 0 and is never an alias.
    """
    probs = np.asarray(probs, dtype=np.float64)
    C = probs.shape[0]
    scaled = probs * (C / probs.sum())
    keep = np.ones(C)
    alias = np.arange(C, dtype=np.int64)
    small = [i for i in range(C) if scaled[i] < 1.0]
    large = [i for i in range(C) if scaled[i] >= 1.0]
    while small and large:
        s, g = small.pop(), large.pop()
        keep[s] = scaled[s]
        alias[s] = g
        scaled[g] = (scaled[g] + scaled[s]) - 1.0
        (small if scaled[g] < 1.0 else large).append(g)
    for i in large + small:  # what is left is 1 up to rounding
        keep[i] = 1.0
        alias[i] = i
    return np.ascontiguousarray(keep), np.ascontiguousarray(alias)


@njit(cache=True)
def block(state, lw, n, args):
    """Block function for ``driver.log_weight_stats``; args = (keep, alias, table)."""
    keep, alias, table = args
    C = keep.shape[0]
    u = np.empty(n)
    fill_uniform(state, u, n)
    for k in range(n):
        v = u[k] * C
        i = min(int(v), C - 1)
        j = i if v - i < keep[i] else alias[i]
        lw[k] = table[j]


#: the type of ``block``'s arguments; the driver dispatches on it.  Its name must
#: be the attribute it is bound to: numba's cache pickles it by reference.
CategoricalArgs = namedtuple("CategoricalArgs", "keep alias table")
KIND = register_block(CategoricalArgs, block)
