r"""Log-weights for a binary latent in a Bernoulli-template mixture under an
independent-bit (Bernoulli) proposal.

:math:`\log w = \operatorname{logsumexp}_c [a_c + \sum_j (z_j \log t_{cj} + (1-z_j)\log(1-t_{cj}))]
- \sum_j \log q(z_j)`, with :math:`a_c` the component's log weight plus the
observed pixels' log-likelihood (a constant for fixed x).  Bit j is on when
u_j < phi_j, so a probability of exactly 0 or 1 never pays log 0.
"""

from collections import namedtuple

import numpy as np
from numba import njit

from .driver import register_block
from .rng import fill_uniform


@njit(cache=True)
def draw(state, u, comp, args, score):
    """Draw one completion z (bit j on when u_j < phi_j) and return its
    log-weight; when ``score`` has length m, also write the score of the
    logits there, d log q / d logit_j = z_j - phi_j."""
    phi, log_phi_on, log_phi_off, a, lat_on, lat_off = args
    C, m = lat_on.shape
    want_score = score.shape[0] == m
    fill_uniform(state, u, m)
    log_q = 0.0
    for c in range(C):
        comp[c] = a[c]
    for j in range(m):
        if u[j] < phi[j]:
            log_q += log_phi_on[j]
            if want_score:
                score[j] = 1.0 - phi[j]
            for c in range(C):
                comp[c] += lat_on[c, j]
        else:
            log_q += log_phi_off[j]
            if want_score:
                score[j] = -phi[j]
            for c in range(C):
                comp[c] += lat_off[c, j]
    top = -np.inf
    for c in range(C):
        if comp[c] > top:
            top = comp[c]
    if top == -np.inf:
        return -np.inf
    s = 0.0
    for c in range(C):
        s += np.exp(comp[c] - top)
    return top + np.log(s) - log_q


@njit(cache=True)
def block(state, lw, n, args):
    """Block function for ``driver.log_weight_stats``."""
    C, m = args.lat_on.shape
    u = np.empty(m)
    comp = np.empty(C)
    no_score = np.empty(0)
    for k in range(n):
        lw[k] = draw(state, u, comp, args, no_score)


#: the type of ``block``'s arguments; the driver dispatches on it.  Its name must
#: be the attribute it is bound to: numba's cache pickles it by reference.
BernoulliMixtureArgs = namedtuple("BernoulliMixtureArgs", "phi log_phi_on log_phi_off a lat_on lat_off")
KIND = register_block(BernoulliMixtureArgs, block)
