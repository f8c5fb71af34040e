r"""An estimator written in PyTorch: the reparameterized ELBO gradient by torch.autograd.

This module imports torch, so it is imported only when asked for (it is not
among the package's entry points: an environment without torch still lists
and sweeps the NumPy estimators).  To sweep it, name it by import string in a
config, ``"evidence_bench_example.torch_estimators:torch_reparam"``.

The estimator returns a torch tensor; evidence-bench passes every result
through ``np.asarray``, so nothing converts it by hand.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch

import bench
from estimators import Gaussian
from problems import LinearGaussian

__all__ = ["torch_reparam"]

_LOG_2PI = math.log(2.0 * math.pi)


def _check_count(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name}: expected an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {value}")
    return int(value)


def _linear_gaussian_log_joint(x, z, W, b, psi):
    r"""log p(x, z) = log N(z; 0, I) + log N(x; W z + b, diag psi), rows of z, in torch."""
    d = z.shape[-1]
    log_prior = -0.5 * torch.sum(z * z, dim=-1) - 0.5 * d * _LOG_2PI
    resid = x - (z @ W.T + b)
    log_lik = -0.5 * torch.sum(resid * resid / psi, dim=-1) - 0.5 * torch.sum(torch.log(2.0 * math.pi * psi))
    return log_prior + log_lik


@bench.estimator("torch_reparam", target="elbo_grad")
def torch_reparam(p, x, q, K, R, seed):
    r"""Reparameterized ELBO gradient by torch.autograd (float64), LinearGaussian and a diagonal Gaussian q.

    With :math:`\theta = (\mu, \log\sigma)` = ``q.params``, noise
    :math:`\varepsilon_k \sim N(0, I_d)` and :math:`z_k = \mu + \sigma \odot \varepsilon_k`,

    .. math::
        \hat g = \nabla_\theta\, \frac1K \sum_{k=1}^K
                 \big[\log p(x, z_k(\theta)) - \log q_\theta(z_k(\theta))\big],

    the derivative taken by ``torch.autograd.grad`` through z (the pathwise
    term) and through q's parameters (the score term, zero in expectation):
    unbiased for the exact ``p.elbo_grad(x, q)``.  log p(x, z) is
    LinearGaussian's, re-implemented in torch (autograd needs it as a torch
    expression): any other problem is a ValueError, as is any q but
    ``estimators.Gaussian``.  The noise is drawn by
    ``numpy.random.default_rng(seed)``, (K, d) per replicate, the R replicates
    in turn.  Returns a (R, 2d) torch tensor.
    """
    if not isinstance(p, LinearGaussian) or type(p).log_joint is not LinearGaussian.log_joint:
        raise ValueError(
            f"p: torch_reparam re-implements the log-joint of problems.LinearGaussian only, got {type(p).__name__}"
        )
    if not isinstance(q, Gaussian):
        raise ValueError(f"q: torch_reparam needs a diagonal Gaussian (estimators.Gaussian), got {type(q).__name__}")
    K = _check_count("K", K, 1)
    R = _check_count("R", R, 1)
    x = np.asarray(x, dtype=np.float64)
    if x.shape != (p.obs_dim,):
        raise ValueError(f"x: expected shape ({p.obs_dim},), got {x.shape}")
    d = p.latent_dim
    f64 = torch.float64
    W, b, psi = (torch.as_tensor(a, dtype=f64) for a in (p.W, p.b, p.psi))
    xt = torch.as_tensor(x, dtype=f64)
    theta = torch.tensor(q.params, dtype=f64, requires_grad=True)
    rng = np.random.default_rng(seed)
    grads = []
    for _ in range(R):
        eps = torch.as_tensor(rng.standard_normal((K, d)), dtype=f64)
        loc, log_scale = theta[:d], theta[d:]
        scale = torch.exp(log_scale)
        z = loc + scale * eps
        log_q = torch.sum(-0.5 * ((z - loc) / scale) ** 2 - log_scale, dim=-1) - 0.5 * d * _LOG_2PI
        elbo_hat = torch.mean(_linear_gaussian_log_joint(xt, z, W, b, psi) - log_q)
        (g,) = torch.autograd.grad(elbo_hat, theta)
        grads.append(g)
    return torch.stack(grads)
