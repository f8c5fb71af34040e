r"""Monte Carlo estimators of the log marginal likelihood log p(x).

Importance sampling with K draws :math:`z_k \sim q`:

.. math::
    \log \hat p(x) = \log \frac1K \sum_{k=1}^K \frac{p(x, z_k)}{q(z_k)} .

:math:`\hat p(x)` is unbiased for p(x) at every K; its log is biased low
(Jensen), by about :math:`\mathrm{Var}_q[w] / (2 K p(x)^2)` for large K.  At
K = 1 its expectation is exactly the ELBO.  Uniform Monte Carlo is the special
case q = uniform on the latent's support (or on a box for a continuous latent).
"""

from __future__ import annotations

import numpy as np

from .proposals import Bernoulli, Categorical, Uniform
from ._generic import check_problem
from .weights import weight_sums_only

__all__ = ["importance_sampling", "uniform_mc", "uniform_proposal"]


def importance_sampling(p, x, q, K, R, seed=0):
    r"""(R,) replicate estimates of log p(x) = log (1/K) sum_k p(x, z_k)/q(z_k), z_k ~ q."""
    return weight_sums_only(p, x, q, K, R, seed).log_p_hat


def uniform_proposal(p, box=None):
    """The uniform distribution uniform Monte Carlo draws from.

    Discrete latents are finite: uniform over the support (every one of the
    ``num_categories`` values of a categorical latent, every bit pattern of a
    binary one).  A continuous latent has no uniform distribution on all of
    R^d, so it needs a bounded box: ``box=(low, high)``, or the problem's own
    ``p.support()`` returning one.  The estimate is then of the log of the
    integral of p(x, z) over the box, which is log p(x) only when the box holds
    all the posterior mass.
    """
    check_problem(p)
    latent_type = getattr(p, "latent_type", "continuous")
    if latent_type != "continuous":
        if box is not None:
            raise ValueError("box: only a continuous latent takes a box; this latent is discrete")
        if latent_type == "categorical":
            C = getattr(p, "num_categories", getattr(p, "num_components", None))
            if C is None:
                raise ValueError(
                    f"p.num_categories: missing; uniform Monte Carlo over a categorical latent needs the "
                    f"number of values, and {type(p).__name__} does not say it"
                )
            return Categorical(np.full(int(C), 1.0 / int(C)))
        return Bernoulli(np.full(p.latent_dim, 0.5))
    if box is None:
        if not hasattr(p, "support"):
            raise ValueError(
                f"box: {type(p).__name__} has a continuous latent and declares no bounded support; "
                "uniform Monte Carlo needs box=(low, high), or a p.support() that returns one"
            )
        box = p.support()
    try:
        low, high = box
    except (TypeError, ValueError):
        raise ValueError("box: expected a pair (low, high)") from None
    low = np.broadcast_to(np.asarray(low, dtype=np.float64), (p.latent_dim,))
    high = np.broadcast_to(np.asarray(high, dtype=np.float64), (p.latent_dim,))
    return Uniform(low, high)


def uniform_mc(p, x, K, R, seed=0, box=None):
    r"""(R,) replicate estimates of log p(x) by uniform Monte Carlo.

    .. math:: \log \hat p(x) = \log \frac{|\mathcal Z|}{K} \sum_k p(x, z_k),\quad z_k \sim U(\mathcal Z)

    with :math:`\mathcal Z` the discrete support or the ``box``.  It is importance
    sampling with q uniform, so it is unbiased for :math:`\sum_{z \in \mathcal Z} p(x, z)`.
    """
    return importance_sampling(p, x, uniform_proposal(p, box), K, R, seed)
