r"""What a problem is: the protocol every model follows, and the base class
that gives its input checks.

Any object with these members is a problem, and every estimator runs on it:

=================  ==========================================================
``obs_dim``        D, the length of one observation x
``latent_dim``     d (1 for a categorical latent, m bits for a binary one)
``latent_type``    "continuous" (z in R^d), "categorical" (z in {0..C-1},
                   passed as integers of shape (n, 1)) or "binary"
                   (z in {0,1}^m, passed as int8 of shape (n, m))
``log_joint``      ``log_joint(x, z)``: log p(x, z), shape (n,) for x of
                   shape (D,) and z of shape (n, d); plain vectorised NumPy
``log_marginal``   exact log p(x) (the truth every estimate is measured against)
``prior()``        p(z) as a proposal object (``problems.distributions``)
=================  ==========================================================

Optional members each switch on more of the suite; where one is missing the
feature that needs it raises a ValueError naming it (or the harness skips the
cell, with the reason):

* ``sample(n, seed=0)`` -- (n, D) observations (sweeps that draw x);
* ``posterior(x)`` -- the exact p(z|x) as a proposal (the q presets);
* ``elbo(x, q)``, ``kl(x, q)``, ``elbo_grad(x, q)`` -- exact references;
* ``grad_log_joint(x, z)`` -- (n, d) :math:`\nabla_z \log p(x, z)`, for the
  pathwise gradient estimators ("reparam", "stl", "dreg");
* ``log_likelihood(x, z)`` -- (n,) :math:`\log p(x \mid z)`, the likelihood
  apart from the prior (``log_joint = log_likelihood + log prior``); with a
  Gaussian or MultivariateGaussian ``prior()`` it switches on
  ``estimators.elbo(..., kl="analytic")``, which draws only this term and adds
  :math:`-\mathrm{KL}(q \,\|\, p(z))` in closed form;
* ``support()`` -- for a continuous latent, a bounded box ``(low, high)``
  holding all of the posterior mass, which ``uniform_mc`` then draws from
  (discrete latents are finite and need nothing);
* ``num_categories`` -- C, for a categorical latent (``uniform_mc``);
* ``compiled_log_joint`` -- a numba ``@njit`` function ``f(x, z) -> float``
  of *one* sample (x (D,), z (d,) float64 arrays), equal to ``log_joint``:
  importance sampling, the ELBO and ``weight_stats`` with a Gaussian,
  MultivariateGaussian or Uniform q then run compiled and in parallel;
* ``random(**params)`` (a classmethod) -- how a sweep builds the problem
  from a config table.

Subclassing ``Problem`` is optional.  It gives the input checks
(``_check_x``), ``log_marginal`` for x of shape (D,) or (n, D) from a
``_log_marginal_rows(X)`` the subclass writes, and sensible defaults.
"""

from __future__ import annotations

import numpy as np

from ._validation import as_float_array, check_count, check_seed

__all__ = ["Problem", "LATENT_TYPES"]

LATENT_TYPES = ("continuous", "categorical", "binary")

_LATENT_WORDS = {
    "continuous": "a continuous latent (z in R^{d})",
    "categorical": "a categorical latent (z in {{0..C-1}})",
    "binary": "a binary latent (z in {{0,1}}^{d})",
}


def describe_latent(p):
    """'a continuous latent (z in R^2)' and the like, for messages."""
    kind = getattr(p, "latent_type", "continuous")
    return _LATENT_WORDS.get(kind, repr(kind)).format(d=getattr(p, "latent_dim", "?"))


class Problem:
    """A latent-variable model p(x, z) with an exact marginal (see the module
    docstring for the protocol).  Subclasses set ``obs_dim`` (D),
    ``latent_dim`` and ``latent_type`` and implement ``log_joint``, ``prior``
    and either ``log_marginal`` or ``_log_marginal_rows``.
    """

    obs_dim: int
    latent_dim: int
    discrete: bool = False
    #: "continuous" (z in R^d), "categorical" (z in {0..C-1}) or "binary" (z in {0,1}^m)
    latent_type: str = "continuous"

    # ---- input checks ------------------------------------------------------
    def _check_x(self, x, allow_batch=False):
        """x of shape (D,) -- or (n, D) when ``allow_batch`` -- finite floats."""
        arr = np.asarray(x)
        if arr.ndim == 1 or not allow_batch:
            return as_float_array("x", x, shape=(self.obs_dim,))
        return as_float_array("x", x, shape=(None, self.obs_dim))

    def _check_sample_args(self, n, seed):
        return check_count("n", n), np.random.default_rng(check_seed(seed))

    # ---- shared public members --------------------------------------------
    def log_marginal(self, x):
        """Exact log p(x): a float for x of shape (D,), an (n,) array for (n, D)."""
        x = self._check_x(x, allow_batch=True)
        if x.ndim == 1:
            return float(self._log_marginal_rows(x[None, :])[0])
        return self._log_marginal_rows(x)

    def _log_marginal_rows(self, X):
        raise ValueError(
            f"p.log_marginal: {type(self).__name__} defines neither log_marginal nor _log_marginal_rows; "
            "an exact log p(x) is required"
        )

    def _check_q(self, q, allowed, what):
        if not isinstance(q, allowed):
            names = ", ".join(c.__name__ for c in allowed)
            raise ValueError(
                f"q: {type(self).__name__}.{what} is exact only for q in ({names}); "
                f"got {type(q).__name__} (the problem has {describe_latent(self)})"
            )
        if getattr(q, "dim", None) != self.latent_dim:
            raise ValueError(
                f"q: has dimension {getattr(q, 'dim', None)}, but {type(self).__name__} has {describe_latent(self)}"
            )
        return q
