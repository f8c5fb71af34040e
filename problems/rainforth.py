r"""The Gaussian model of Rainforth et al. (2018), "Tighter variational bounds
are not necessarily better" (ICML), section 4 / figure 2:

.. math::
    z \sim N(\mu, I_{20}), \qquad x \mid z \sim N(z, I_{20}), \qquad
    q(z \mid x) = N(A x + b,\ \tfrac23 I_{20}),

with :math:`\mu \sim N(0, I)`, and the encoder (A, b) the optimal one,
:math:`A^* = I/2,\ b^* = \mu/2` (the exact posterior mean is
:math:`(x + \mu)/2`; the posterior variance is 1/2, so q's fixed variance
2/3 is not the posterior's), perturbed entrywise by :math:`N(0, 0.01^2)`.
The paper uses it to show that the signal-to-noise ratio of the IWAE
inference-network gradient falls like :math:`K^{-1/2}`; Tucker et al. (2018)
show DReG's rises like :math:`K^{+1/2}`.

It is built on ``LinearGaussian``: with :math:`z' = z - \mu`,
:math:`z' \sim N(0, I)` and :math:`x \mid z' \sim N(z' + \mu, I)`, i.e.
``LinearGaussian(W=I, b=mu, psi=1)``, and q over z' is
:math:`N(Ax + b - \mu, \tfrac23 I)`.  Shifting the latent leaves every
log-weight, hence every objective and every gradient in q's loc, unchanged,
and the encoder bias enters q only through its loc, so

.. math:: \nabla_b = \nabla_{loc}, \qquad \nabla_A = \nabla_{loc}\, x^T .

Usage::

    rf = RainforthLinearGaussian(seed=0)
    p, x, q = rf                  # the problem (latent z - mu), one x ~ p(x), the encoder's q
    g = estimators.gradient(p, x, q, K, R, "reparam", "iwae")
    rf.encoder_gradient(g)        # {"A": (R, 20, 20), "b": (R, 20)}
"""

from __future__ import annotations

import numpy as np

from ._validation import as_float_array, check_count, check_seed
from .distributions import Gaussian

from .linear_gaussian import LinearGaussian

__all__ = ["RainforthLinearGaussian"]

Q_VARIANCE = 2.0 / 3.0


class RainforthLinearGaussian:
    """The model, one data point and the perturbed encoder, drawn from ``seed``.

    Attributes: ``problem`` (a LinearGaussian over z' = z - mu), ``x`` (one
    observation from the model), ``q`` (the encoder's proposal at x),
    ``mu``, ``A``, ``b`` (the perturbed encoder), ``dim``, ``noise``.
    Iterating gives ``(problem, x, q)``.
    """

    def __init__(self, seed=0, dim=20, noise=0.01):
        seed = check_seed(seed)
        dim = check_count("dim", dim)
        noise = as_float_array("noise", noise)
        if noise.size != 1:
            raise ValueError(f"noise: expected a scalar, got shape {noise.shape}")
        noise = float(noise.reshape(()))
        if noise < 0:
            raise ValueError(f"noise: must be >= 0, got {noise}")
        rng = np.random.default_rng(seed)
        self.dim, self.noise = dim, noise
        self.mu = rng.standard_normal(dim)
        self.A = 0.5 * np.eye(dim) + noise * rng.standard_normal((dim, dim))
        self.b = 0.5 * self.mu + noise * rng.standard_normal(dim)
        self.problem = LinearGaussian(np.eye(dim), self.mu, np.ones(dim))
        self.x = self.problem.sample(1, seed=int(rng.integers(2**31)))[0]
        self.q = self.encoder(self.x)

    def __repr__(self):
        return f"RainforthLinearGaussian(dim={self.dim}, noise={self.noise})"

    def __iter__(self):
        return iter((self.problem, self.x, self.q))

    def encoder(self, x):
        r"""q(z' | x) = N(A x + b - mu, (2/3) I) over the shifted latent z' = z - mu."""
        x = self.problem._check_x(x)
        return Gaussian(self.A @ x + self.b - self.mu, np.full(self.dim, np.sqrt(Q_VARIANCE)))

    def optimal_encoder(self, x):
        """The unperturbed encoder A = I/2, b = mu/2: q's loc is the exact posterior mean."""
        x = self.problem._check_x(x)
        return Gaussian(0.5 * (x - self.mu), np.full(self.dim, np.sqrt(Q_VARIANCE)))

    def encoder_gradient(self, grad, x=None):
        """Chain a gradient in q.params (..., 2*dim) to the encoder: {"A": (..., dim, dim), "b": (..., dim)}.

        Only q's loc depends on (A, b): d/db = d/dloc, d/dA = d/dloc x^T."""
        grad = np.asarray(grad, dtype=np.float64)
        if grad.shape[-1] != 2 * self.dim:
            raise ValueError(f"grad: expected trailing dimension {2 * self.dim} (loc, log scale), got {grad.shape}")
        x = self.x if x is None else self.problem._check_x(x)
        g_loc = grad[..., : self.dim]
        return {"A": g_loc[..., :, None] * x, "b": g_loc.copy()}
