r"""Gradient block for a binary latent (``MissingPixels``) under an
independent-bit ``Bernoulli`` proposal.

Only the score exists (a discrete latent has no pathwise derivative).  With
params = logits eta and bit probabilities phi = sigmoid(eta),

.. math:: \nabla_\eta \log q(z) = z - \phi .

Draws and log-weights are those of ``bernoulli_mixture.block`` (bit j on when
u_j < phi_j, m uniforms per sample; keep the two in step --
``tests/test_gradients.py`` checks that the log-weights coincide):
:math:`\log w = \operatorname{logsumexp}_c [a_c + \sum_j \log t_{c}(z_j)] - \log q(z)`.
"""

from collections import namedtuple

import numpy as np
from numba import njit

from .gradient_driver import register_gradient_block
from .rng import fill_uniform


@njit(cache=True)
def block(state, n, args, mode, lw, S):
    """Gradient block function (see ``gradient_driver``); args = those of
    ``bernoulli_mixture.block``.  ``mode`` must be SCORE (the caller validates)."""
    phi, log_phi_on, log_phi_off, a, lat_on, lat_off = args
    C, m = lat_on.shape
    u = np.empty(m)
    comp = np.empty(C)
    for k in range(n):
        fill_uniform(state, u, m)
        log_q = 0.0
        for c in range(C):
            comp[c] = a[c]
        for j in range(m):
            if u[j] < phi[j]:
                log_q += log_phi_on[j]
                S[k, j] = 1.0 - phi[j]
                for c in range(C):
                    comp[c] += lat_on[c, j]
            else:
                log_q += log_phi_off[j]
                S[k, j] = -phi[j]
                for c in range(C):
                    comp[c] += lat_off[c, j]
        top = -np.inf
        for c in range(C):
            if comp[c] > top:
                top = comp[c]
        if top == -np.inf:
            lw[k] = -np.inf
            continue
        s = 0.0
        for c in range(C):
            s += np.exp(comp[c] - top)
        lw[k] = top + np.log(s) - log_q


#: the type of ``block``'s arguments; the driver dispatches on it.  Its name must
#: be the attribute it is bound to: numba's cache pickles it by reference.
BernoulliMixtureGradientArgs = namedtuple("BernoulliMixtureGradientArgs", "phi log_phi_on log_phi_off a lat_on lat_off")
KIND = register_gradient_block(BernoulliMixtureGradientArgs, block)
