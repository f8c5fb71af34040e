"""What every ground-truth problem shares: input checks on x and z."""

from __future__ import annotations

import numpy as np

from estimators._validation import as_float_array, check_count, check_seed


class Problem:
    """A latent-variable model p(x, z) with an exact marginal and posterior.

    Subclasses set ``obs_dim`` (D), ``latent_dim`` and ``discrete`` and
    implement ``_log_marginal_rows``, ``log_joint``, ``prior``,
    ``posterior``, ``elbo``, ``kl`` and ``elbo_grad``.
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

    def _log_marginal_rows(self, X):  # pragma: no cover - abstract
        raise NotImplementedError

    def _check_q(self, q, allowed, what):
        if not isinstance(q, allowed):
            names = ", ".join(c.__name__ for c in allowed)
            raise ValueError(
                f"q: {type(self).__name__}.{what} is exact only for q in ({names}); "
                f"got {type(q).__name__}"
            )
        if getattr(q, "dim", None) != self.latent_dim:
            raise ValueError(
                f"q: has dimension {getattr(q, 'dim', None)}, the latent has {self.latent_dim}"
            )
        return q
