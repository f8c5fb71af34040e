r"""Exact Renyi bounds, CUBO and the ESS limit from the moments of the weight.

A problem that can compute :math:`\log \mathbb E_q[w^s]`, :math:`w = p(x,z)/q(z)`,
exactly for real s (``log_weight_moment``) gets, from this mixin,

.. math::
    \mathcal L_\alpha = \frac{\log \mathbb E_q[w^{1-\alpha}]}{1 - \alpha}, \qquad
    \mathrm{CUBO}_n = \frac{\log \mathbb E_q[w^n]}{n}, \qquad
    \lim_{K\to\infty} \frac{\mathrm{ESS}}{K} = \frac{\mathbb E_q[w]^2}{\mathbb E_q[w^2]}
    \ \big(= p(x)^2 / \mathbb E_q[w^2] \text{ when q covers the posterior's support}\big).

Where the moment is infinite, :math:`\mathcal L_\alpha` is +inf for alpha < 1
and -inf for alpha > 1, CUBO is +inf and the ESS limit is 0 (the weights'
variance is infinite; ESS/K then tends to 0).  The ESS limit follows from
ESS = (sum w)^2 / sum w^2 = K (mean w)^2 / mean(w^2) and the law of large
numbers.
"""

from __future__ import annotations

import math

import numpy as np

from ._validation import plain

__all__ = ["WeightMoments", "check_alpha", "check_cubo_n"]


def _real(name, value):
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name}: must be a real number, got {plain(value)}")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: must be a real number, got {plain(value)}") from None
    if not math.isfinite(out):
        raise ValueError(f"{name}: must be finite, got {plain(value)}")
    return out


def check_alpha(alpha):
    """alpha as a float; alpha = 1 (the ELBO's limit, where 1/(1 - alpha) is
    undefined) is a ValueError that says to use the ELBO."""
    alpha = _real("alpha", alpha)
    if alpha == 1.0:
        raise ValueError(
            "alpha: alpha = 1 divides by 1 - alpha = 0; the bound's limit there is the ELBO: use p.elbo for the exact value, "
            "or use estimators.elbo for an estimate"
        )
    return alpha


def check_cubo_n(n):
    """n as a float >= 1 (CUBO_n is an upper bound on log p(x) for n >= 1)."""
    n = _real("n", n)
    if n < 1.0:
        raise ValueError(f"n: CUBO_n = (1/n) log E_q[w^n] needs n >= 1 (an upper bound on log p(x)), got {n}")
    return n


def check_power(s):
    return _real("s", s)


class WeightMoments:
    """Mixin: ``renyi_bound``, ``cubo`` and ``ess_limit`` from ``log_weight_moment(x, q, s)``."""

    def log_weight_moment(self, x, q, s):  # pragma: no cover - every user overrides it
        raise NotImplementedError

    def renyi_bound(self, x, q, alpha):
        r"""Exact :math:`\mathcal L_\alpha = \frac1{1-\alpha}\log \mathbb E_q[w^{1-\alpha}]`
        (Li & Turner 2016): log p(x) at alpha = 0, the ELBO as alpha -> 1, an
        upper bound on log p(x) for alpha < 0.  +inf (alpha < 1) or -inf
        (alpha > 1) where the moment is infinite (see ``log_weight_moment``);
        alpha = 1 is a ValueError (use ``elbo``)."""
        s = 1.0 - check_alpha(alpha)
        return float(self.log_weight_moment(x, q, s) / s)

    def cubo(self, x, q, n=2):
        r"""Exact :math:`\mathrm{CUBO}_n = \frac1n \log \mathbb E_q[w^n]`, n >= 1
        (Dieng et al. 2017), an upper bound on log p(x); +inf where the moment
        is infinite (see ``log_weight_moment``)."""
        n = check_cubo_n(n)
        return float(self.log_weight_moment(x, q, n) / n)

    def ess_limit(self, x, q):
        r"""The limit of ESS / K as K -> infinity: :math:`\mathbb E_q[w]^2 / \mathbb E_q[w^2]`
        in [0, 1], which is :math:`p(x)^2 / \mathbb E_q[w^2]` when q's support
        covers the posterior's (1 for q = p(z|x)).  It is 0 exactly where
        Var_q[w] is infinite: ESS/K then tends to 0."""
        rel = self._log_relative_moment(x, q, 2.0)
        if rel == math.inf:
            return 0.0
        return float(min(1.0, math.exp(2.0 * self._log_relative_moment(x, q, 1.0) - rel)))

    def _log_relative_moment(self, x, q, s):
        """log E_q[(w / p(x))^s]."""
        m = self.log_weight_moment(x, q, s)
        return m if math.isinf(m) else m - s * self.log_marginal(x)
