"""The beta-VAE objective of fit_linear_vae, its closed-form optimum
(beta_vae_optimum) and the principal-axes / collapse measures (principal_axes).

Independent references: PPCA's closed form (beta = 1), a numerical maximisation
(BFGS, restarts) of the exact beta-objective written out here from scratch, and
models built with a known alignment."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize

from estimators import (
    BetaVAEOptimum,
    PrincipalAxes,
    beta_vae_optimum,
    fit_linear_vae,
    principal_axes,
)
from problems import LinearGaussian

LAM = np.array([5.0, 3.0, 0.6, 0.5, 0.45, 0.4])


def synthetic(n=300, seed=0):
    rng = np.random.default_rng(seed)
    U = np.linalg.qr(rng.standard_normal((6, 6)))[0]
    return (rng.standard_normal((n, 6)) * np.sqrt(LAM)) @ U.T + 1.0


def beta_objective_by_hand(X, W, b, sigma2, A, c, s, beta):
    """(1/n) sum_i E_q[log p(x_i|z)] - beta KL(q_i || N(0, I)), q_i = N(A x_i + c, diag s^2)."""
    n, D = X.shape
    M = X @ A.T + c
    R = X - b - M @ W.T
    tr = np.sum((W * s) ** 2)
    recon = -0.5 * D * np.log(2 * np.pi * sigma2) - 0.5 * (np.sum(R**2, axis=1) + tr) / sigma2
    kl = 0.5 * np.sum(s**2 + M**2 - 1.0 - 2 * np.log(s), axis=1)
    return float(np.mean(recon - beta * kl))


def test_beta_one_is_ppca():
    X = synthetic()
    opt = beta_vae_optimum(X, 3, beta=1.0)
    ppca = LinearGaussian.ppca_mle(X, 3)
    best = float(np.mean(ppca.log_marginal(X)))
    assert isinstance(opt, BetaVAEOptimum) and opt.active == 3
    assert opt.objective == pytest.approx(best, abs=1e-10)
    assert opt.log_likelihood == pytest.approx(best, abs=1e-10)
    np.testing.assert_allclose(opt.model.W @ opt.model.W.T, ppca.W @ ppca.W.T, atol=1e-10)


@pytest.mark.parametrize("beta", [0.5, 2.5])
def test_beta_optimum_against_numerical_maximisation(beta):
    rng = np.random.default_rng(3)
    D, d = 3, 2
    X = rng.standard_normal((40, D)) @ np.array([[2.0, 0.3, 0.0], [0.0, 1.0, 0.2], [0.0, 0.0, 0.4]])
    opt = beta_vae_optimum(X, d, beta)

    def neg(v):
        W = v[: D * d].reshape(D, d)
        b = v[D * d : D * d + D]
        sigma2 = np.exp(v[D * d + D])
        o = D * d + D + 1
        A = v[o : o + d * D].reshape(d, D)
        c = v[o + d * D : o + d * D + d]
        s = np.exp(v[o + d * D + d :])
        return -beta_objective_by_hand(X, W, b, sigma2, A, c, s, beta)

    size = D * d + D + 1 + d * D + d + d
    best = min((minimize(neg, 0.5 * rng.standard_normal(size), method="BFGS", options={"gtol": 1e-10})
                for _ in range(6)), key=lambda r: r.fun)
    assert -best.fun == pytest.approx(opt.objective, abs=1e-6)
    assert -best.fun <= opt.objective + 1e-9
    # the decoder the closed form gives reaches the same value with its optimal diagonal encoder
    W, sig2, v = opt.model.W, opt.noise_var, opt.threshold
    Sigma = np.linalg.inv(np.eye(d) + W.T @ W / v)
    assert np.allclose(Sigma, np.diag(np.diag(Sigma)))
    A = Sigma @ W.T / v
    val = beta_objective_by_hand(X, W, opt.model.b, sig2, A, -A @ opt.model.b, np.sqrt(np.diag(Sigma)), beta)
    assert val == pytest.approx(opt.objective, abs=1e-10)


def test_beta_above_one_collapses_the_small_eigenvalues():
    X = synthetic()
    opt = beta_vae_optimum(X, 4, beta=2.0)
    lam = opt.eigenvalues
    assert opt.active == 2 and lam[1] > opt.threshold >= lam[2]
    assert np.all(np.linalg.norm(opt.model.W[:, 2:], axis=0) == 0)
    # its decoder's log-likelihood lies below PPCA's maximum
    assert opt.log_likelihood < beta_vae_optimum(X, 4, 1.0).log_likelihood - 0.1


@pytest.fixture(scope="module")
def beta_fit():
    X = synthetic()
    return X, fit_linear_vae(X, 4, "reparam", steps=300, seed=0, batch_size=16, learning_rate=0.05,
                             record_every=100, beta=2.0)


def test_fit_with_beta_reaches_the_beta_optimum(beta_fit):
    X, fit = beta_fit
    opt = beta_vae_optimum(X, 4, 2.0)
    obj = fit.objective_history
    assert fit.beta == 2.0 and obj.shape == fit.elbo_history.shape
    assert obj[0] < opt.objective - 0.2  # somewhere to go
    assert opt.objective - obj[-1] < 0.05, (opt.objective, obj[-1])
    assert obj[-1] <= opt.objective + 1e-9
    # the recorded value is the exact beta-objective of the returned model and encoder
    enc, m = fit.encoder, fit.model
    val = beta_objective_by_hand(X, m.W, m.b, m.psi[0], enc.A, enc.c, np.exp(enc.log_scale), 2.0)
    assert obj[-1] == pytest.approx(val, abs=1e-9)
    # and it is not the beta = 1 optimum it lands on: the beta = 1 decoder scores lower on J_2
    assert beta_vae_optimum(X, 4, 1.0).log_likelihood - fit.log_likelihood_history[-1] > 0.2


def test_beta_one_is_bit_for_bit_the_default():
    X = synthetic(n=40)
    kw = dict(steps=20, seed=1, batch_size=8, record_every=10)
    a = fit_linear_vae(X, 2, "reparam", **kw)
    b = fit_linear_vae(X, 2, "reparam", beta=1.0, **kw)
    np.testing.assert_array_equal(a.model.W, b.model.W)
    np.testing.assert_array_equal(a.elbo_history, b.elbo_history)
    np.testing.assert_array_equal(a.objective_history, a.elbo_history)


def test_principal_axes_on_models_with_a_known_alignment():
    X = synthetic()
    opt = beta_vae_optimum(X, 4, 2.0)
    lam = opt.eigenvalues
    U = np.linalg.eigh(np.cov(X.T, bias=True))[1][:, ::-1]
    # the optimum with its columns permuted and signs flipped: angles 0, norms optimal
    W = np.zeros((6, 4))
    W[:, 3] = -U[:, 0] * np.sqrt(lam[0] - opt.threshold)
    W[:, 1] = U[:, 1] * np.sqrt(lam[1] - opt.threshold)
    m = LinearGaussian(W, opt.model.b, opt.model.psi)
    pa = principal_axes(m, X, beta=2.0)
    assert isinstance(pa, PrincipalAxes) and pa.kl_per_dim is None
    assert pa.expected_active == 2 and list(pa.active_columns) == [1, 3]
    assert list(pa.matched[[1, 3]]) == [1, 0] and list(pa.collapsed_columns) == [0, 2]
    np.testing.assert_allclose(pa.column_angles[[1, 3]], 0.0, atol=1e-7)
    np.testing.assert_allclose(pa.column_norms, pa.optimal_norms, atol=1e-12)
    np.testing.assert_allclose(pa.subspace_angles, 0.0, atol=1e-7)
    # rotate the two active columns by theta in their plane: the span is the same (subspace
    # angles 0), but each column leaves its eigenvector: tan(angle) = (a_other/a_own) tan(theta)
    theta = 0.3
    a0, a1 = np.sqrt(lam[0] - opt.threshold), np.sqrt(lam[1] - opt.threshold)
    Wr = np.zeros((6, 4))
    Wr[:, 0] = a0 * np.cos(theta) * U[:, 0] + a1 * np.sin(theta) * U[:, 1]
    Wr[:, 1] = -a0 * np.sin(theta) * U[:, 0] + a1 * np.cos(theta) * U[:, 1]
    pr = principal_axes(LinearGaussian(Wr, opt.model.b, opt.model.psi), X, beta=2.0)
    np.testing.assert_allclose(pr.subspace_angles, 0.0, atol=1e-7)
    assert pr.column_angles[0] == pytest.approx(np.arctan(a1 / a0 * np.tan(theta)), abs=1e-10)
    assert pr.column_angles[1] == pytest.approx(np.arctan(a0 / a1 * np.tan(theta)), abs=1e-10)
    assert np.isnan(pr.column_angles[2]) and pr.matched[2] == -1


def test_principal_axes_of_a_trained_beta_vae(beta_fit):
    """beta = 2 on data with eigenvalues (5, 3, 0.6, ...): two dimensions stay, aligned with
    the top two eigenvectors; the other two collapse to the prior."""
    X, fit = beta_fit
    pa = principal_axes(fit, X)
    assert pa.expected_active == 2
    assert sorted(pa.matched[pa.active_columns]) == [0, 1]
    assert np.all(pa.column_angles[pa.active_columns] < 0.15)
    assert np.all(pa.subspace_angles < 0.1)
    np.testing.assert_allclose(pa.column_norms[pa.active_columns], pa.optimal_norms[pa.active_columns], rtol=0.1)
    assert np.all(pa.column_norms[pa.collapsed_columns] < 0.15)
    assert np.all(pa.kl_per_dim[pa.collapsed_columns] < 0.01)
    assert np.all(pa.kl_per_dim[pa.active_columns] > 0.1)


@pytest.mark.parametrize("beta", [0.0, -1.0, np.nan, True, "2"])
def test_bad_beta(beta):
    X = synthetic(n=20)
    with pytest.raises(ValueError, match="^beta: "):
        fit_linear_vae(X, 2, steps=1, beta=beta)
    with pytest.raises(ValueError, match="^beta: "):
        beta_vae_optimum(X, 2, beta=beta)


def test_principal_axes_bad_input():
    X = synthetic(n=20)
    with pytest.raises(ValueError, match="^fit: "):
        principal_axes("model", X)
    with pytest.raises(ValueError, match="^fit: .*isotropic"):
        principal_axes(LinearGaussian(np.ones((6, 1)), np.zeros(6), np.arange(1.0, 7.0)), X)
    with pytest.raises(ValueError, match="^X: "):
        principal_axes(LinearGaussian(np.ones((5, 1)), np.zeros(5), np.ones(5)), X)
    with pytest.raises(ValueError, match="^d: "):
        beta_vae_optimum(X, 6)
