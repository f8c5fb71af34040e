"""Throughput of the generic path: a user's model, timed beside what it is
compared with (pytest-benchmark groups, so ``--benchmark-compare`` tracks them).

* ``generic-numpy:K=..`` -- importance sampling on LinearGaussian(20, 20)
  written as a *user* model (plain NumPy ``log_joint``, no registered kernel),
  through the generic path, beside a hand-written vectorised NumPy importance
  sampler of the same model and q (the target: >= 0.9x at K >= 1e4).
* ``generic-compiled:K=..`` -- the same user model offering a numba
  ``compiled_log_joint``, through the compiled user driver, beside the
  built-in LinearGaussian kernel (the target: >= 0.5x).

Every timed call's numbers are also checked: p_hat/p unbiased within 4 SE,
and the compiled user driver equal to the built-in kernel to rounding (the
same draws, the same reduction).  Speed is recorded, never asserted.
"""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit
from scipy.special import logsumexp

import estimators
from bench import metrics
from bench.suite import TOLERANCE_SE, timed
from problems import LinearGaussian

D = d = 20
KS = [10_000, 100_000, 1_000_000]


class UserLinearGaussian:
    """LinearGaussian(20, 20) as a user would write it: nothing registered."""

    latent_type = "continuous"

    def __init__(self, p):
        self.p, self.obs_dim, self.latent_dim = p, p.obs_dim, p.latent_dim
        self._c = -0.5 * p.latent_dim * np.log(2 * np.pi) - 0.5 * np.sum(np.log(2 * np.pi * p.psi))

    def log_joint(self, x, z):
        r = x - z @ self.p.W.T - self.p.b
        return self._c - 0.5 * np.sum(z * z, axis=1) - 0.5 * np.sum(r * r / self.p.psi, axis=1)

    def log_marginal(self, x):
        return self.p.log_marginal(x)

    def prior(self):
        return self.p.prior()


def compiled_density(p):
    """A numba log-density of one sample, closing over the model's arrays
    (numba freezes them as constants when it compiles)."""
    W, b, inv_psi = p.W.copy(), p.b.copy(), 1.0 / p.psi
    c = float(-0.5 * p.latent_dim * np.log(2 * np.pi) - 0.5 * np.sum(np.log(2 * np.pi * p.psi)))

    @njit(fastmath=estimators.machine.SAFE_FASTMATH)
    def log_joint_one(x, z):
        zz = 0.0
        for j in range(z.shape[0]):
            zz += z[j] * z[j]
        quad = 0.0
        for i in range(W.shape[0]):
            r = x[i] - b[i]
            for j in range(W.shape[1]):
                r -= W[i, j] * z[j]
            quad += r * r * inv_psi[i]
        return c - 0.5 * zz - 0.5 * quad

    return log_joint_one


class CompiledUserLinearGaussian(UserLinearGaussian):
    def __init__(self, p):
        super().__init__(p)
        self.compiled_log_joint = compiled_density(p)


def numpy_importance_sampling(model, x, q, K, R, seed):
    """The textbook vectorised NumPy importance sampler: K draws at once per replicate."""
    rng = np.random.default_rng(seed)
    out = np.empty(R)
    for r in range(R):
        z = q.loc + q.scale * rng.standard_normal((K, q.dim))
        out[r] = logsumexp(model.log_joint(x, z) - q.log_prob(z)) - np.log(K)
    return out


@pytest.fixture(scope="module")
def setting():
    p = LinearGaussian.random(D, d, seed=1)
    x = p.sample(1, seed=2)[0]
    post = p.posterior(x)
    q = estimators.Gaussian(post.loc + 0.1 * np.sqrt(np.diag(post.cov)), 1.2 * np.sqrt(np.diag(post.cov)))
    return p, x, q


def _sizes(suite, K):
    if suite.mode == "full":
        return max(2, 2_000_000 // K), 3
    if K > 10_000:
        pytest.skip("smoke mode (plain pytest): K > 1e4 runs only under --benchmark-only")
    return 4, 1


def _check_unbiased(est, log_p):
    rb, se = metrics.ratio_bias(est, log_p)
    assert abs(rb) < TOLERANCE_SE * se, (rb, se)


@pytest.mark.parametrize("K", KS)
@pytest.mark.parametrize("impl", ["generic", "numpy"])
def test_generic_numpy_model(benchmark, suite, setting, impl, K):
    """A NumPy user model through the generic path vs hand-written NumPy IS."""
    p, x, q = setting
    model = UserLinearGaussian(p)
    R, rounds = _sizes(suite, K)
    benchmark.group = f"generic-numpy:K={K}"
    if impl == "generic":
        assert estimators.execution_path(model, x, q) == "generic"
        call = lambda: estimators.importance_sampling(model, x, q, K, R, seed=7)  # noqa: E731
    else:
        call = lambda: numpy_importance_sampling(model, x, q, K, R, seed=7)  # noqa: E731
    est = timed(benchmark, call, rounds=rounds, samples=K * R, K=K, R=R, implementation=impl)
    assert est.shape == (R,)
    if R >= 20:
        _check_unbiased(est, p.log_marginal(x))


@pytest.mark.parametrize("K", KS)
@pytest.mark.parametrize("impl", ["user-compiled", "built-in"])
def test_generic_compiled_model(benchmark, suite, setting, impl, K):
    """A user model with a numba log-density vs the built-in LinearGaussian kernel."""
    p, x, q = setting
    R, rounds = _sizes(suite, K)
    benchmark.group = f"generic-compiled:K={K}"
    model = CompiledUserLinearGaussian(p) if impl == "user-compiled" else p
    assert estimators.execution_path(model, x, q) == ("compiled-user" if impl == "user-compiled" else "compiled")
    estimators.warm_up(model, x, q)  # compile both driver variants outside the timing
    est = timed(benchmark, lambda: estimators.importance_sampling(model, x, q, K, R, seed=7), rounds=rounds,
                samples=K * R, K=K, R=R, implementation=impl)
    reference = estimators.importance_sampling(p, x, q, K, R, seed=7)
    # the same draws and the same reduction as the built-in kernel: equal up to
    # the rounding of the two log-density loops
    np.testing.assert_allclose(est, reference, rtol=1e-12, atol=1e-12)
