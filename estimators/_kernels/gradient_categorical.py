r"""Gradient block for a finite discrete latent under a Categorical proposal.

Only the score exists here (a discrete latent has no pathwise derivative).
With params = logits eta and probabilities pi = softmax(eta),

.. math:: \nabla_\eta \log q(z = c) = \mathrm{onehot}(c) - \pi .

Draws are those of ``categorical.block`` (Walker's alias method on the same
uniforms; keep the two in step -- ``tests/test_gradients.py`` checks that the
log-weights coincide), and the log-weight is the same table entry
log p(x, c) - log q_c.

A new latent family is another block function of this shape,
``block(state, n, args, mode, lw, S)``, registered with
``register_gradient_block`` (``gradient_bernoulli_mixture`` is one).
"""

from collections import namedtuple

import numpy as np
from numba import njit

from .categorical import draw_pair
from .gradient_driver import register_gradient_block
from .rng import fill_uniform


@njit(cache=True)
def block(state, n, args, mode, lw, S):
    """Gradient block function (see ``gradient_driver``); args = (keep, pair, table, probs).

    ``mode`` must be SCORE (the caller validates)."""
    keep, pair, table, probs = args
    C = keep.shape[0]
    u = np.empty(n)
    fill_uniform(state, u, n)
    for k in range(n):
        c = draw_pair(u[k], keep, pair)
        lw[k] = table[c]
        for j in range(C):
            S[k, j] = -probs[j]
        S[k, c] += 1.0


#: the type of ``block``'s arguments; the driver dispatches on it.  Its name must
#: be the attribute it is bound to: numba's cache pickles it by reference.
CategoricalGradientArgs = namedtuple("CategoricalGradientArgs", "keep pair table probs")
KIND = register_gradient_block(CategoricalGradientArgs, block)
