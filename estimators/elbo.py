r"""The Monte Carlo ELBO.

.. math::
    \widehat{\mathrm{ELBO}} = \frac1K \sum_{k=1}^K \log \frac{p(x, z_k)}{q(z_k)},
    \qquad z_k \sim q,

unbiased for :math:`\mathrm{ELBO}(q) = \mathbb E_q[\log p(x,z) - \log q(z)]
= \log p(x) - \mathrm{KL}(q \,\|\, p(z|x))`.
"""

from __future__ import annotations

from .weights import weight_stats

__all__ = ["elbo"]


def elbo(p, x, q, K, R, seed=0):
    r"""(R,) replicate estimates (1/K) sum_k log w_k, w_k = p(x, z_k)/q(z_k), z_k ~ q."""
    return weight_stats(p, x, q, K, R, seed).elbo
