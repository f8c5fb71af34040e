r"""The Renyi (variational Renyi, VR) bound and the chi upper bound (CUBO).

With :math:`w = p(x, z) / q(z)`, :math:`z \sim q`:

.. math::
    \mathcal L_\alpha = \frac1{1-\alpha} \log \mathbb E_q\big[w^{1-\alpha}\big]
    \qquad\text{(Li \& Turner 2016)},

non-increasing in alpha: alpha = 0 gives log p(x), alpha -> 1 the ELBO
:math:`\mathbb E_q[\log w]`, alpha < 0 an upper bound on log p(x).  And

.. math::
    \mathrm{CUBO}_n = \frac1n \log \mathbb E_q\big[w^n\big]
    \qquad\text{(Dieng et al. 2017)}, \quad n \ge 1,

an upper bound on log p(x) (Jensen); it is :math:`\mathcal L_{1-n}`.

The estimators replace the expectation by the mean over K draws,

.. math::
    \hat{\mathcal L}_\alpha = \frac1{1-\alpha} \log \frac1K \sum_k w_k^{1-\alpha},
    \qquad \widehat{\mathrm{CUBO}}_n = \frac1n \log \frac1K \sum_k w_k^n ,

so the mean inside the log is unbiased and the log makes them biased low at
finite K (for alpha < 1 and for CUBO): CUBO's estimate can fall below log p(x).
Both stream one pass over the draws of ``weight_stats`` (same seed, same z),
as :math:`\log\sum_k e^{s \log w_k}` with s = 1 - alpha or s = n: compiled for
the built-in problems (``_kernels.diagnostics.power``), on the generic path
for any other problem, with the same blocks and reduction order.

The exact values are ``p.renyi_bound(x, q, alpha)`` and ``p.cubo(x, q, n)``
where the problem has them (LinearGaussian with a Gaussian q in closed form,
GaussianMixture and MissingPixels by enumeration).
"""

from __future__ import annotations

import math

import numpy as np

from problems._bounds import _real, check_alpha, check_cubo_n

from ._generic import unit_log_weights
from ._kernels.diagnostics import power as power_kernel
from ._kernels.driver import CHUNK
from .weights import _block, check_call

__all__ = ["renyi_bound", "cubo", "log_power_sums", "check_alpha", "check_cubo_n"]


def _power_sums(p, x, q, K, R, s, seed):
    x, K, R, key = check_call(p, x, K, R, seed)
    block = _block(p, x, q)
    if block is not None:
        return power_kernel.power_sums(*block, key, K, R, s), K
    n_chunks = (K + CHUNK - 1) // CHUNK
    parts = np.empty((R * n_chunks, 2))
    for u, _, _, lw in unit_log_weights(p, x, q, key, K, R):
        power_kernel.fold_power_unit(lw, s, parts[u])
    return power_kernel.combine_power(parts, R, n_chunks), K


def log_power_sums(p, x, q, K, R, s, seed=0):
    r"""(R,) :math:`\log \sum_k w_k^s` over the K draws of each replicate (the
    draws of ``weight_stats`` with this seed)."""
    return _power_sums(p, x, q, K, R, _real("s", s), seed)[0]


def renyi_bound(p, x, q, K, R, alpha, seed=0):
    r"""(R,) replicate estimates of the Renyi bound
    :math:`\frac1{1-\alpha}\log\frac1K\sum_k w_k^{1-\alpha}` (see the module docstring).

    alpha = 0 is importance sampling's log p_hat (the same draws and value to
    rounding); alpha -> 1 tends to the ELBO estimate; alpha = 1 is a ValueError
    (use ``elbo``).  With a weight of 0 and alpha > 1 the estimate is -inf."""
    s = 1.0 - check_alpha(alpha)
    sums, K = _power_sums(p, x, q, K, R, s, seed)
    return (sums - math.log(K)) / s


def cubo(p, x, q, K, R, n=2, seed=0):
    r"""(R,) replicate estimates of the chi upper bound
    :math:`\frac1n\log\frac1K\sum_k w_k^n`, n >= 1 (see the module docstring);
    biased low at finite K, so an estimate can fall below log p(x)."""
    n = check_cubo_n(n)
    sums, K = _power_sums(p, x, q, K, R, n, seed)
    return (sums - math.log(K)) / n
