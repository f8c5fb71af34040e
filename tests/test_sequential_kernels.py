"""The particle filter's compiled pieces against independent computations:
the relative weights exp(lw - max lw) against NumPy's exp (libm), and the
blocked LGSS bootstrap step against the model's equations in NumPy."""

from __future__ import annotations

import numpy as np
import pytest

from estimators._kernels.rng import fill_normal, seed_state
from estimators._kernels.sequential import smc as kernel
from estimators._kernels.sequential.resample import relative_weights
from estimators.smc import _series, compiled_args
from problems import LinearGaussianStateSpace

ULP = np.finfo(np.float64).eps


def _ulps(got, want):
    return np.abs(got - want) / (want * ULP)


def test_relative_weights_match_numpy_exp_to_about_one_ulp():
    rng = np.random.default_rng(0)
    # relative to the largest, 3.0: the whole range [-707.9, 0] the kernel keeps, and random points
    lw = 3.0 + np.concatenate([-np.linspace(0.0, 707.9, 200001), -np.abs(rng.standard_normal(5000)) * 40.0])
    w = np.empty_like(lw)
    m, s1, s2 = relative_weights(lw, w)
    want = np.exp(lw - 3.0)
    assert m == 3.0
    assert _ulps(w, want).max() <= 2.0
    assert s1 == pytest.approx(np.sum(want), rel=1e-13) and s2 == pytest.approx(np.sum(want**2), rel=1e-13)


def test_relative_weights_of_zero_and_vanishing_weights():
    lw = np.array([0.0, -np.inf, -800.0, -707.5, 5.0])
    w = np.full(5, 7.0)
    m, s1, s2 = relative_weights(lw, w)
    assert m == 5.0 and w[4] == 1.0
    assert w[1] == 0.0 and w[2] == 0.0  # -inf, and below e^-708 of the largest: 0
    assert w[0] == pytest.approx(np.exp(-5.0), rel=4 * ULP)
    assert w[3] == 0.0  # -712.5 relative to the largest
    w = np.full(2, 7.0)
    assert relative_weights(np.array([-np.inf, -np.inf]), w) == (-np.inf, 0.0, 0.0) and (w == 7.0).all()


@pytest.mark.parametrize("N", [1, 255, 256, 700])
def test_blocked_bootstrap_step_is_the_models_equations(N):
    """One step of the compiled LGSS bootstrap (t = 0 and t = 1) against NumPy on the
    same normals: z_0 = m0 + L0 eps, z_1 = A z_0 + LQ eps, inc = log N(y_t; C z_t, R)."""
    from scipy.stats import multivariate_normal

    p = LinearGaussianStateSpace.random(3, 2, 4, seed=4)
    x = p.sample(1, seed=5)[0]
    Y = _series(p, x)
    args, s = compiled_args(p, Y, "bootstrap")
    z = np.zeros((N, s))
    inc = np.empty(N)
    buf = np.empty(kernel.BLOCK * s)
    state = np.empty(4, dtype=np.uint64)
    seed_state(state, 9, 0, 0)
    kernel._lgss_bootstrap(state, args, 0, z, inc, buf)
    # the same normals, drawn the same way: BLOCK particles per fill
    ref_state = np.empty(4, dtype=np.uint64)
    seed_state(ref_state, 9, 0, 0)
    eps0 = _normals(ref_state, N, s)
    z0 = p.m0 + eps0 @ np.linalg.cholesky(p.P0).T
    assert np.allclose(z, z0, rtol=1e-13, atol=1e-13)
    assert np.allclose(inc, multivariate_normal(np.zeros(2), p.R).logpdf(Y[0] - z0 @ p.C.T), rtol=1e-12, atol=1e-12)
    kernel._lgss_bootstrap(state, args, 1, z, inc, buf)
    eps1 = _normals(ref_state, N, s)
    z1 = z0 @ p.A.T + eps1 @ np.linalg.cholesky(p.Q).T
    assert np.allclose(z, z1, rtol=1e-12, atol=1e-12)
    assert np.allclose(inc, multivariate_normal(np.zeros(2), p.R).logpdf(Y[1] - z1 @ p.C.T), rtol=1e-12, atol=1e-12)


def _normals(state, N, s):
    out = np.empty((N, s))
    flat = out.reshape(-1)
    for start in range(0, N, kernel.BLOCK):
        n = min(kernel.BLOCK, N - start)
        block = np.empty(n * s)
        fill_normal(state, block, n * s)
        flat[start * s : (start + n) * s] = block
    return out
