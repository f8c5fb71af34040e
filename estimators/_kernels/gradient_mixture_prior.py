r"""Gradient block for the 1-D mixture-prior model (``MixturePrior``) under a
1-D Gaussian proposal q = N(loc, scale^2), params = (loc, log scale).

.. math::
    g = \partial_z \log p(x, z) = \sum_j r_j(z)\, \frac{m_j - z}{s_j^2} + \frac{x - z}{\sigma^2},
    \qquad r_j(z) \propto w_j N(z; m_j, s_j^2),

and with eps the base draw, v = eps/scale, the per-sample vectors are those
of ``gradient_affine`` for d = 1: (a, a eps scale + const) with
(a, const) = (v, -1) for SCORE, (g, +1) for REPARAM, (g + v, 0) for STL.

Draws and log-weights are those of ``mixture_prior.block`` for a
one-component q (n uniforms for the component, then n normals; the same
``_log_mixture``) -- keep the two in step; ``tests/test_gradients.py``
checks that the log-weights coincide.
"""

from collections import namedtuple

import numpy as np
from numba import njit

from .gradient_driver import REPARAM, SCORE, log_scale_constant, register_gradient_block
from .mixture_prior import _log_mixture, log_joint
from .rng import fill_normal, fill_uniform


@njit(cache=True)
def _grad_log_prior(z, log_w, locs, scales):
    """d/dz log sum_j w_j N(z; m_j, s_j^2) (responsibility-weighted, stable)."""
    J = locs.shape[0]
    top = -np.inf
    for j in range(J):
        t = (z - locs[j]) / scales[j]
        v = log_w[j] - np.log(scales[j]) - 0.5 * t * t
        if v > top:
            top = v
    num = 0.0
    den = 0.0
    for j in range(J):
        t = (z - locs[j]) / scales[j]
        e = np.exp(log_w[j] - np.log(scales[j]) - 0.5 * t * t - top)
        den += e
        num += e * (locs[j] - z) / (scales[j] * scales[j])
    return num / den


@njit(cache=True)
def block(state, n, args, mode, lw, S):
    """Gradient block function (see ``gradient_driver``); args = those of
    ``mixture_prior.block`` with a one-component normal-base q."""
    normal_base, q_cum, q_log_w, q_locs, q_scales, x, p_log_w, p_locs, p_scales, noise = args
    u = np.empty(n)
    fill_uniform(state, u, n)  # the component draw of mixture_prior.block (one component here)
    eps = np.empty(n)
    fill_normal(state, eps, n)
    loc, scale = q_locs[0], q_scales[0]
    const = log_scale_constant(mode)
    for k in range(n):
        z = loc + scale * eps[k]
        log_q = _log_mixture(z, q_log_w, q_locs, q_scales)
        lw[k] = log_joint(z, x, p_log_w, p_locs, p_scales, noise) - log_q
        v = eps[k] / scale
        if mode == SCORE:
            a = v
        else:
            a = _grad_log_prior(z, p_log_w, p_locs, p_scales) + (x - z) / (noise * noise)
            if mode != REPARAM:
                a += v
        S[k, 0] = a
        S[k, 1] = a * eps[k] * scale + const


#: the type of ``block``'s arguments; the driver dispatches on it.  Its name must
#: be the attribute it is bound to: numba's cache pickles it by reference.
MixturePriorGradientArgs = namedtuple("MixturePriorGradientArgs", "normal_base q_cum q_log_w q_locs q_scales x p_log_w p_locs p_scales noise")
KIND = register_gradient_block(MixturePriorGradientArgs, block)
