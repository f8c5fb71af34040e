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

from .bernoulli_mixture import draw
from .gradient_driver import register_gradient_block


@njit(cache=True)
def block(state, n, args, mode, lw, S):
    """Gradient block function (see ``gradient_driver``); args = those of
    ``bernoulli_mixture.block``.  ``mode`` must be SCORE (the caller validates):
    the draws and log-weights are ``bernoulli_mixture.draw``'s, with the score."""
    C, m = args.lat_on.shape
    u = np.empty(m)
    comp = np.empty(C)
    for k in range(n):
        lw[k] = draw(state, u, comp, args, S[k])


#: the type of ``block``'s arguments; the driver dispatches on it.  Its name must
#: be the attribute it is bound to: numba's cache pickles it by reference.
BernoulliMixtureGradientArgs = namedtuple("BernoulliMixtureGradientArgs", "phi log_phi_on log_phi_off a lat_on lat_off")
KIND = register_gradient_block(BernoulliMixtureGradientArgs, block)
