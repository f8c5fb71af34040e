r"""Log-weights for the 1-D mixture-prior model under a 1-D proposal.

Model: :math:`\log p(x, z) = \operatorname{logsumexp}_j [\log w_j + \log N(z; m_j, s_j^2)]
+ \log N(x; z, \sigma^2)`.

Proposal: a 1-D Gaussian mixture :math:`q = \sum_c \pi_c N(\ell_c, \tau_c^2)`
(a Gaussian is the one-component case; drawn as component by inverse CDF,
then :math:`z = \ell_c + \tau_c \varepsilon`), or, with ``normal_base`` false,
the uniform on [ell_0, ell_0 + tau_0].
"""

from collections import namedtuple

import numpy as np
from numba import njit

from .driver import register_block
from .rng import fill_normal, fill_uniform

_HALF_LOG_2PI = 0.5 * np.log(2.0 * np.pi)


@njit(cache=True, inline="always")
def _log_mixture(z, log_w, locs, scales):
    C = locs.shape[0]
    m = -np.inf
    for c in range(C):
        t = (z - locs[c]) / scales[c]
        v = log_w[c] - np.log(scales[c]) - 0.5 * t * t
        if v > m:
            m = v
    if m == -np.inf:
        return -np.inf
    s = 0.0
    for c in range(C):
        t = (z - locs[c]) / scales[c]
        s += np.exp(log_w[c] - np.log(scales[c]) - 0.5 * t * t - m)
    return m + np.log(s) - _HALF_LOG_2PI


@njit(cache=True, inline="always")
def log_joint(z, x, p_log_w, p_locs, p_scales, noise):
    """log p(x, z) = log sum_j w_j N(z; m_j, s_j^2) + log N(x; z, noise^2)."""
    r = (x - z) / noise
    return _log_mixture(z, p_log_w, p_locs, p_scales) - 0.5 * r * r - np.log(noise) - _HALF_LOG_2PI


@njit(cache=True)
def block(state, lw, n, args):
    """Block function for ``driver.log_weight_stats``."""
    normal_base, q_cum, q_log_w, q_locs, q_scales, x, p_log_w, p_locs, p_scales, noise = args
    u = np.empty(n)
    fill_uniform(state, u, n)
    eps = np.empty(n)
    if normal_base:
        fill_normal(state, eps, n)
    C = q_cum.shape[0]
    for k in range(n):
        if normal_base:
            lo = 0
            hi = C - 1
            while lo < hi:
                mid = (lo + hi) >> 1
                if q_cum[mid] > u[k]:
                    hi = mid
                else:
                    lo = mid + 1
            z = q_locs[lo] + q_scales[lo] * eps[k]
            log_q = _log_mixture(z, q_log_w, q_locs, q_scales)
        else:
            z = q_locs[0] + q_scales[0] * u[k]
            log_q = -np.log(q_scales[0])
        lw[k] = log_joint(z, x, p_log_w, p_locs, p_scales, noise) - log_q


#: the type of ``block``'s arguments; the driver dispatches on it.  Its name must
#: be the attribute it is bound to: numba's cache pickles it by reference.
MixturePriorArgs = namedtuple("MixturePriorArgs", "normal_base q_cum q_log_w q_locs q_scales x p_log_w p_locs p_scales noise")
KIND = register_block(MixturePriorArgs, block)
