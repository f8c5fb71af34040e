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
from .reduce import exps_below_top, fold_counts
from .rng import fill_uniform


def alias_table(probs):
    """(keep, alias) for Walker's alias method, by Vose's stable construction.

    Column i holds category i with probability keep[i] and alias[i] otherwise;
    each column carries 1/C of the mass, so category k is drawn with
    probability (keep[k] + sum_{i: alias[i]=k} (1 - keep[i])) / C = probs[k].
    A zero-probability category gets keep = 0 and is never an alias.
    (Compiled: a table is built on every estimator call.)
    """
    probs = np.ascontiguousarray(probs, dtype=np.float64)
    return _alias_table(probs, float(probs.sum()))  # NumPy's pairwise sum: the table does not depend on the path


@njit(cache=True)
def _alias_table(probs, total):
    C = probs.shape[0]
    scaled = probs * (C / total)
    keep = np.ones(C)
    alias = np.arange(C)
    small = np.empty(C, dtype=np.int64)  # two stacks, popped from the top
    large = np.empty(C, dtype=np.int64)
    ns = 0
    nl = 0
    for i in range(C):
        if scaled[i] < 1.0:
            small[ns] = i
            ns += 1
        else:
            large[nl] = i
            nl += 1
    while ns > 0 and nl > 0:
        ns -= 1
        nl -= 1
        s, g = small[ns], large[nl]
        keep[s] = scaled[s]
        alias[s] = g
        scaled[g] = (scaled[g] + scaled[s]) - 1.0
        if scaled[g] < 1.0:
            small[ns] = g
            ns += 1
        else:
            large[nl] = g
            nl += 1
    for t in range(nl):  # what is left is 1 up to rounding
        keep[large[t]] = 1.0
        alias[large[t]] = large[t]
    for t in range(ns):
        keep[small[t]] = 1.0
        alias[small[t]] = small[t]
    return keep, alias


@njit(cache=True, inline="always")
def draw(u, keep, alias):
    """The category of the uniform u (Walker's alias method)."""
    C = keep.shape[0]
    v = u * C
    i = min(int(v), C - 1)
    return i if v - i < keep[i] else alias[i]


@njit(cache=True)
def pair_table(alias):
    """pair[2 i] = i, pair[2 i + 1] = alias[i]: ``draw_pair``'s table."""
    C = alias.shape[0]
    pair = np.empty(2 * C, dtype=np.int64)
    for c in range(C):
        pair[2 * c] = c
        pair[2 * c + 1] = alias[c]
    return pair


@njit(cache=True, inline="always")
def draw_pair(u, keep, pair):
    """``draw(u, keep, alias)``, the same category for every u, without a branch:
    the coin's outcome indexes ``pair`` (``pair_table``).  LLVM compiles
    ``draw``'s choice between i and alias[i] to a jump that the coin makes
    unpredictable (about 30 cycles a draw); an indexed load has no jump."""
    C = keep.shape[0]
    v = u * C
    i = np.int64(v)  # u >= 0: truncation is the floor
    if i > C - 1:
        i = C - 1
    return pair[2 * i + np.int64(v - i >= keep[i])]


def fold_tables(table):
    """(top, exp_below_top) of the log-weight table (``reduce.exps_below_top``):
    the counting fold's exps, computed once per estimator call."""
    return exps_below_top(np.ascontiguousarray(table, dtype=np.float64))


def draw_tables(probs):
    """(keep, pair): ``alias_table``'s columns with the alias table laid out for
    ``draw_pair`` (``pair_table``), built once per estimator call."""
    keep, alias = alias_table(probs)
    return keep, pair_table(alias)


@njit(cache=True)
def block(state, lw, n, args):
    """Block function for ``driver.log_weight_stats``; args = (keep, pair, table, top, exp_below_top)."""
    keep, pair, table, _, _ = args
    u = np.empty(n)
    fill_uniform(state, u, n)
    for k in range(n):
        lw[k] = table[draw_pair(u[k], keep, pair)]


@njit(cache=True)
def draw_and_fold(state, acc, lw, n, args):
    """The same draws as ``block``, folded by counting: n log-weights take only C
    values, so the block's sums need C exps (``reduce.fold_counts``), not n --
    and none when the block holds the category of the largest log-weight (args'
    ``top`` and ``exp_below_top``, from ``reduce.exps_below_top`` once per call)."""
    keep, pair, table, top, exp_below_top = args
    fold_counts(acc, draw_counts(state, lw, n, keep, pair), table, top, exp_below_top)


@njit(cache=True)
def draw_counts(state, lw, n, keep, pair):
    """(C,) counts of n categories drawn as ``block`` draws them; lw[:n] is
    scratch (it holds the uniforms)."""
    fill_uniform(state, lw, n)
    counts = np.zeros(keep.shape[0])
    for k in range(n):
        counts[draw_pair(lw[k], keep, pair)] += 1.0
    return counts


#: the type of ``block``'s arguments; the driver dispatches on it.  Its name must
#: be the attribute it is bound to: numba's cache pickles it by reference.
CategoricalArgs = namedtuple("CategoricalArgs", "keep pair table top exp_below_top")
KIND = register_block(CategoricalArgs, block, draw_and_fold)
