r"""The Monte Carlo ELBO, all-Monte-Carlo or with the KL to the prior in closed form.

``kl="mc"`` (the default):

.. math::
    \widehat{\mathrm{ELBO}} = \frac1K \sum_{k=1}^K \log \frac{p(x, z_k)}{q(z_k)},
    \qquad z_k \sim q,

``kl="analytic"`` (the "closed-form KL" ELBO of VAE practice; Pyro's
``TraceMeanField_ELBO``): only the reconstruction term is drawn,

.. math::
    \widehat{\mathrm{ELBO}}_{\mathrm{KL}} = \frac1K \sum_{k=1}^K \log p(x \mid z_k)
        - \mathrm{KL}(q \,\|\, p(z)), \qquad z_k \sim q,

both unbiased for :math:`\mathrm{ELBO}(q) = \mathbb E_q[\log p(x,z) - \log q(z)]
= \mathbb E_q[\log p(x|z)] - \mathrm{KL}(q\,\|\,p(z)) = \log p(x) - \mathrm{KL}(q \,\|\, p(z|x))`.
For a Gaussian prior :math:`N(m_0, S_0)` and any q with mean m, covariance S
and entropy H (Gaussian, MultivariateGaussian, Uniform box),

.. math::
    \mathrm{KL}(q\,\|\,p(z)) = -H(q) + \tfrac12\big[d\log 2\pi + \log|S_0|
        + \operatorname{tr}(S_0^{-1} S) + (m - m_0)^T S_0^{-1} (m - m_0)\big].
"""

from __future__ import annotations

import numpy as np

from problems import LinearGaussian

from ._generic import _call, _units, _vector, check_proposal, draw_unit
from ._kernels.driver import CHUNK
from ._kernels.variational import reconstruction as recon_kernel
from .proposals import Gaussian, MultivariateGaussian, Uniform
from .weights import check_call, weight_sums_only

__all__ = ["elbo", "kl_to_prior", "KL_MODES"]

#: the values of ``elbo``'s ``kl`` argument
KL_MODES = ("mc", "analytic")

_LOG_2PI = float(np.log(2.0 * np.pi))
_KL_Q = (Gaussian, MultivariateGaussian, Uniform)


def elbo(p, x, q, K, R, seed=0, kl="mc"):
    r"""(R,) replicate estimates of ELBO(q) from K draws z_k ~ q each.

    ``kl="mc"``: (1/K) sum_k log w_k, w_k = p(x, z_k)/q(z_k) (``weight_stats(...).elbo``).
    ``kl="analytic"``: (1/K) sum_k log p(x | z_k) - KL(q || p(z)) with the KL in
    closed form (``kl_to_prior``); the same draws z_k as ``kl="mc"`` with the
    same seed.  It needs the likelihood and the prior separately: the
    problem's ``log_likelihood(x, z)`` (vectorised, (n,) for z (n, d)) and a
    Gaussian or MultivariateGaussian ``prior()``, and q a Gaussian,
    MultivariateGaussian or Uniform (whose KL to a Gaussian is closed form).
    LinearGaussian with a built-in affine q runs the reconstruction sum
    compiled and in parallel (``_kernels.variational.reconstruction``, the
    draws of its importance-sampling kernel); every other problem runs the
    generic path: the user's ``log_likelihood`` once per unit (replicate r,
    chunk c), the same units, streams and fixed summation order, so the result
    is bit-identical for any NUMBA_NUM_THREADS.  Anything else is a ValueError
    naming ``kl``.
    """
    if kl == "mc":
        return weight_sums_only(p, x, q, K, R, seed).elbo
    if kl != "analytic":
        raise ValueError(f"kl: must be one of {list(KL_MODES)}, got {kl!r}")
    x, K, R, key = check_call(p, x, K, R, seed)
    check_proposal(p, q)
    kl_value = kl_to_prior(p, q)
    if _compiled_recon(p, q):
        xb = np.ascontiguousarray(x - p.b)
        inv_psi = np.ascontiguousarray(1.0 / p.psi)
        const = -0.5 * float(np.sum(np.log(2 * np.pi * p.psi)))
        loc, T, diagonal, base = q._affine()
        loc = np.array(loc, dtype=np.float64, order="C")
        T = np.ascontiguousarray(T, dtype=np.float64)
        W = np.ascontiguousarray(p.W, dtype=np.float64)
        sums = recon_kernel.recon_sums(loc, T, bool(diagonal), base == "normal", xb, W, inv_psi, const, key, K, R)
    else:
        sums = _generic_recon_sums(p, x, q, key, K, R)
    return sums / K - kl_value


def _compiled_recon(p, q):
    """LinearGaussian itself (or a subclass keeping its likelihood) with a built-in affine q."""
    return (
        isinstance(p, LinearGaussian)
        and getattr(type(p), "log_likelihood", None) is LinearGaussian.log_likelihood
        and getattr(type(p), "log_joint", None) is LinearGaussian.log_joint
        and type(q) in _KL_Q
    )


def _generic_recon_sums(p, x, q, key, K, R):
    """(R,) sum_k log p(x | z_k): the user's log_likelihood once per unit, units summed in chunk order."""
    n_chunks = (K + CHUNK - 1) // CHUNK
    parts = np.empty(R * n_chunks)
    for u, r, c, n in _units(K, R):
        z, _, _ = draw_unit(p, q, n, key, r, c)
        ll = _vector("p.log_likelihood", _call("p.log_likelihood", p.log_likelihood, x, z), n, allow_neg_inf=True)
        parts[u] = float(np.sum(ll))
    return parts.reshape(R, n_chunks).sum(axis=1) if n_chunks > 1 else parts.copy()


def kl_to_prior(p, q):
    r"""KL(q || p(z)) in closed form, for a problem whose ``prior()`` is a Gaussian
    or MultivariateGaussian N(m0, S0) and q a Gaussian, MultivariateGaussian or
    Uniform with mean m, covariance S and entropy H (formula in the module
    docstring).  A ValueError naming ``kl`` when the problem offers no
    ``log_likelihood`` or a non-Gaussian prior, or q is another family."""
    if not callable(getattr(p, "log_likelihood", None)):
        raise ValueError(
            f'kl: "analytic" needs the likelihood and the prior separately, and {type(p).__name__} '
            "offers no log_likelihood(x, z); use kl=\"mc\" (or add log_likelihood, see problems.Problem)"
        )
    prior = p.prior() if callable(getattr(p, "prior", None)) else None
    if not isinstance(prior, (Gaussian, MultivariateGaussian)):
        raise ValueError(
            f'kl: "analytic" needs a Gaussian prior (Gaussian or MultivariateGaussian) for the closed-form '
            f"KL(q || p(z)); {type(p).__name__}.prior() is {type(prior).__name__}"
        )
    if not isinstance(q, _KL_Q):
        raise ValueError(
            f'kl: "analytic" needs KL(q || p(z)) in closed form, known for q in (Gaussian, '
            f"MultivariateGaussian, Uniform); got {type(q).__name__}"
        )
    if q.dim != prior.dim:
        raise ValueError(f"q: has dimension {q.dim}, but the prior has dimension {prior.dim}")
    m0, S0 = np.asarray(prior.mean, dtype=float), np.asarray(prior.cov, dtype=float)
    L0 = np.linalg.cholesky(S0)
    diff = np.linalg.solve(L0, np.asarray(q.mean, dtype=float) - m0)
    whitened = np.linalg.solve(L0, np.linalg.solve(L0, np.asarray(q.cov, dtype=float)).T)
    log_det0 = 2.0 * float(np.sum(np.log(np.diag(L0))))
    cross = 0.5 * (prior.dim * _LOG_2PI + log_det0 + float(np.trace(whitened)) + float(diff @ diff))
    return cross - float(q.entropy)
