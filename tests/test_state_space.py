"""The state-space ground truth against independent computations.

LinearGaussianStateSpace: the Kalman log-likelihood against scipy's density
of the stacked Gaussian (x = (I_T kron C) z + noise, with the prior path's
covariance built here from the matrix that maps white noise to the path); the
RTS posterior against the inverse of the block-tridiagonal posterior precision
written out here; log_joint against scipy densities; grad_log_joint against
finite differences; the optimal proposal against the conditional Gaussian
derived here.  HiddenMarkov: the forward algorithm against brute-force
enumeration of all S^T paths, and FFBS draws against the enumerated posterior.
"""

import itertools

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

import estimators
from estimators import Gaussian, MultivariateGaussian
from problems import HiddenMarkov, LinearGaussianStateSpace

LGSS_CASES = [(1, 1, 1, 0), (2, 3, 4, 1), (3, 2, 6, 2), (2, 1, 8, 3)]  # (state_dim, obs_dim, T, seed)


def lgss(s, o, T, seed):
    p = LinearGaussianStateSpace.random(s, o, T, seed=seed)
    x = p.sample(1, seed=100 + seed)[0]
    return p, x


def path_matrix(p):
    """M with z = mean + M u, u ~ N(0, I): block lower-triangular, block (u, t) = A^{u-t} L_t."""
    T, s = p.T, p.state_dim
    M = np.zeros((T * s, T * s))
    for t in range(T):
        B = np.linalg.cholesky(p.P0) if t == 0 else np.linalg.cholesky(p.Q)
        for u in range(t, T):
            M[u * s : (u + 1) * s, t * s : (t + 1) * s] = np.linalg.matrix_power(p.A, u - t) @ B
    mean = np.concatenate([np.linalg.matrix_power(p.A, t) @ p.m0 for t in range(T)])
    return mean, M


def stacked_marginal(p):
    mean, M = path_matrix(p)
    Cx = np.kron(np.eye(p.T), p.C)
    return stats.multivariate_normal(Cx @ mean, Cx @ M @ M.T @ Cx.T + np.kron(np.eye(p.T), p.R))


def precision_by_hand(p):
    """Posterior precision of the stacked path: inverse prior covariance plus blockdiag(C^T R^-1 C)."""
    mean, M = path_matrix(p)
    prior_prec = np.linalg.inv(M @ M.T)
    return prior_prec + np.kron(np.eye(p.T), p.C.T @ np.linalg.inv(p.R) @ p.C), prior_prec, mean


# --------------------------------------------------------------------------- Kalman filter


@pytest.mark.parametrize("s, o, T, seed", LGSS_CASES)
def test_kalman_log_likelihood_matches_stacked_gaussian(s, o, T, seed):
    p, x = lgss(s, o, T, seed)
    ref = stacked_marginal(p)
    out = p.log_marginal(x)
    assert isinstance(out, float)
    assert abs(out - ref.logpdf(x)) < 1e-9
    X = p.sample(5, seed=seed) + np.random.default_rng(seed).normal(size=(5, p.obs_dim))
    np.testing.assert_allclose(p.log_marginal(X), ref.logpdf(X), rtol=0, atol=1e-9)
    # (T, obs_dim) for one series, (n, T, obs_dim) for a batch
    if T > 1:
        assert abs(p.log_marginal(x.reshape(T, o)) - out) == 0.0
    np.testing.assert_array_equal(p.log_marginal(X.reshape(5, T, o)), p.log_marginal(X))


def test_kalman_stable_for_long_series_and_small_noise():
    """T = 2000 and an emission noise of 1e-6: the Cholesky/Joseph recursion
    stays finite and agrees with a direct filter in float64 on a short prefix."""
    rng = np.random.default_rng(0)
    s, o = 3, 3
    A = 0.95 * np.linalg.qr(rng.normal(size=(s, s)))[0]
    p = LinearGaussianStateSpace(A, rng.normal(size=(o, s)), 0.1 * np.eye(s), 1e-6 * np.eye(o), np.zeros(s), np.eye(s), 2000)
    x = p.sample(1, seed=1)[0]
    ll = p.log_marginal(x)
    assert np.isfinite(ll)
    short = LinearGaussianStateSpace(p.A, p.C, p.Q, p.R, p.m0, p.P0, 6)
    assert abs(short.log_marginal(x[: 6 * o]) - stacked_marginal(short).logpdf(x[: 6 * o])) < 1e-6 * abs(ll)


# --------------------------------------------------------------------------- joint, prior, posterior


@pytest.mark.parametrize("s, o, T, seed", LGSS_CASES)
def test_prior_and_log_joint_against_scipy(s, o, T, seed):
    p, x = lgss(s, o, T, seed)
    mean, M = path_matrix(p)
    q = p.prior()
    assert isinstance(q, MultivariateGaussian) and q.dim == p.latent_dim == T * s
    np.testing.assert_allclose(q.mean, mean, atol=1e-12)
    np.testing.assert_allclose(q.cov, M @ M.T, atol=1e-12)
    z = q.sample(6, seed=seed)
    lik = np.array(
        [
            sum(stats.multivariate_normal(p.C @ zk.reshape(T, s)[t], p.R).logpdf(x.reshape(T, o)[t]) for t in range(T))
            for zk in z
        ]
    )
    ref = stats.multivariate_normal(mean, M @ M.T).logpdf(z).reshape(-1) + lik
    np.testing.assert_allclose(p.log_joint(x, z), ref, rtol=0, atol=1e-9)
    assert np.shape(p.log_joint(x, z[0])) == ()


@pytest.mark.parametrize("s, o, T, seed", LGSS_CASES)
def test_rts_posterior_matches_dense_precision(s, o, T, seed):
    p, x = lgss(s, o, T, seed)
    Lam, prior_prec, prior_mean = precision_by_hand(p)
    Sigma = np.linalg.inv(Lam)
    Y = x.reshape(T, o)
    rhs = prior_prec @ prior_mean + np.concatenate([p.C.T @ np.linalg.solve(p.R, Y[t]) for t in range(T)])
    mu = Sigma @ rhs
    q = p.posterior(x)
    np.testing.assert_allclose(q.mean, mu, rtol=0, atol=1e-9)
    np.testing.assert_allclose(q.cov, Sigma, rtol=0, atol=1e-9)
    means, covs, cross = p.smoothing_moments(x)
    np.testing.assert_allclose(means.reshape(-1), mu, atol=1e-9)
    for t in range(T):
        np.testing.assert_allclose(covs[t], Sigma[t * s : (t + 1) * s, t * s : (t + 1) * s], atol=1e-9)
    for t in range(T - 1):
        np.testing.assert_allclose(cross[t], Sigma[t * s : (t + 1) * s, (t + 1) * s : (t + 2) * s], atol=1e-9)
    np.testing.assert_allclose(p.posterior_precision(), Lam, rtol=1e-9, atol=1e-9)
    # p(x, z) / p(z | x) = p(x) at every z
    z = q.sample(5, seed=1)
    np.testing.assert_allclose(p.log_joint(x, z) - q.log_prob(z), p.log_marginal(x), rtol=0, atol=1e-8)


@pytest.mark.parametrize("s, o, T, seed", LGSS_CASES[1:])
def test_grad_log_joint_by_finite_differences(s, o, T, seed):
    p, x = lgss(s, o, T, seed)
    z = p.prior().sample(3, seed=seed)
    g = p.grad_log_joint(x, z)
    assert g.shape == z.shape
    h = 1e-5
    fd = np.empty_like(z)
    for i in range(z.shape[1]):
        e = np.zeros(z.shape[1])
        e[i] = h
        fd[:, i] = (p.log_joint(x, z + e) - p.log_joint(x, z - e)) / (2 * h)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("s, o, T, seed", LGSS_CASES[1:])
def test_elbo_plus_kl_is_log_marginal(s, o, T, seed):
    p, x = lgss(s, o, T, seed)
    rng = np.random.default_rng(seed)
    d = p.latent_dim
    post = p.posterior(x)
    assert abs(p.kl(x, post)) < 1e-8
    assert abs(p.elbo(x, post) - p.log_marginal(x)) < 1e-8
    B = rng.normal(size=(d, d)) / np.sqrt(d)
    for q in (Gaussian(post.mean + rng.normal(size=d), rng.uniform(0.3, 1.5, size=d)),
              MultivariateGaussian(post.mean + 0.3 * rng.normal(size=d), B @ B.T + 0.2 * np.eye(d))):
        kl = p.kl(x, q)
        assert kl > 0
        assert abs(p.elbo(x, q) + kl - p.log_marginal(x)) < 1e-8
        # the ELBO by Monte Carlo (an independent estimate), within 5 SE
        z = q.sample(40000, seed=seed)
        lw = p.log_joint(x, z) - q.log_prob(z)
        assert abs(lw.mean() - p.elbo(x, q)) < 5 * lw.std() / np.sqrt(lw.size)


def test_importance_sampling_on_the_generic_path():
    p, x = lgss(2, 2, 5, 4)
    assert estimators.execution_path(p, x, p.prior()) == "generic"
    truth = p.log_marginal(x)
    np.testing.assert_allclose(estimators.importance_sampling(p, x, p.posterior(x), 8, 4), truth, atol=1e-8)
    lp = estimators.importance_sampling(p, x, p.prior(), 200, 400, seed=3)
    ratio = np.exp(lp - truth)
    assert abs(ratio.mean() - 1.0) < 5 * ratio.std(ddof=1) / np.sqrt(ratio.size)
    assert np.all(np.isfinite(estimators.elbo(p, x, p.prior(), 10, 3)))


# --------------------------------------------------------------------------- protocol members


def test_optimal_proposal_is_the_conditional_gaussian():
    p, x = lgss(3, 2, 4, 5)
    Y = x.reshape(p.T, p.emission_dim)
    rng = np.random.default_rng(0)
    z_prev = rng.normal(size=(5, 3))
    Qi, Ri = np.linalg.inv(p.Q), np.linalg.inv(p.R)
    S_opt = np.linalg.inv(Qi + p.C.T @ Ri @ p.C)
    n = 20000
    for k in range(z_prev.shape[0]):
        zp = np.repeat(z_prev[k : k + 1], n, axis=0)
        z, lw = p.optimal_sample(2, zp, Y[2], np.random.default_rng(k))
        m = S_opt @ (Qi @ p.A @ z_prev[k] + p.C.T @ Ri @ Y[2])
        ref_w = stats.multivariate_normal(p.C @ p.A @ z_prev[k], p.C @ p.Q @ p.C.T + p.R).logpdf(Y[2])
        np.testing.assert_allclose(lw, ref_w, atol=1e-10)
        # p(z | zp) p(x | z) = p(x | zp) p(z | zp, x) at the drawn z
        lhs = stats.multivariate_normal(p.A @ z_prev[k], p.Q).logpdf(z[:3]) + stats.multivariate_normal(
            np.zeros(2), p.R).logpdf(Y[2] - z[:3] @ p.C.T)
        np.testing.assert_allclose(lhs, ref_w + stats.multivariate_normal(m, S_opt).logpdf(z[:3]), atol=1e-9)
        u = np.linalg.solve(np.linalg.cholesky(S_opt), (z - m).T)  # ~ N(0, I) if the draws are right
        assert np.all(np.abs(u.mean(axis=1)) < 5 / np.sqrt(n))
        assert np.all(np.abs(u.var(axis=1) - 1) < 5 * np.sqrt(2 / n))
    z0, lw0 = p.optimal_initial_sample(n, Y[0], np.random.default_rng(9))
    S0 = np.linalg.inv(np.linalg.inv(p.P0) + p.C.T @ Ri @ p.C)
    m0 = S0 @ (np.linalg.solve(p.P0, p.m0) + p.C.T @ Ri @ Y[0])
    ref0 = stats.multivariate_normal(p.C @ p.m0, p.C @ p.P0 @ p.C.T + p.R).logpdf(Y[0])
    np.testing.assert_allclose(lw0, ref0, atol=1e-10)
    u = np.linalg.solve(np.linalg.cholesky(S0), (z0 - m0).T)
    assert np.all(np.abs(u.mean(axis=1)) < 5 / np.sqrt(n))
    assert np.all(np.abs(u.var(axis=1) - 1) < 5 * np.sqrt(2 / n))


def test_bootstrap_members_match_the_model():
    p, x = lgss(2, 3, 3, 6)
    Y = x.reshape(p.T, p.emission_dim)
    z = p.initial_sample(4, np.random.default_rng(0))
    np.testing.assert_allclose(p.emission_log_prob(1, z, Y[1]),
                               [stats.multivariate_normal(p.C @ zk, p.R).logpdf(Y[1]) for zk in z], atol=1e-10)
    n = 40000
    zp = np.repeat(z[:1], n, axis=0)
    zn = p.transition_sample(1, zp, np.random.default_rng(1))
    u = np.linalg.solve(p.LQ, (zn - z[0] @ p.A.T).T)
    assert np.all(np.abs(u.mean(axis=1)) < 5 / np.sqrt(n))
    assert np.all(np.abs(u.var(axis=1) - 1) < 5 * np.sqrt(2 / n))
    with pytest.raises(ValueError, match="^t:"):
        p.transition_sample(0, z, np.random.default_rng(0))
    with pytest.raises(ValueError, match="^t:"):
        p.emission_log_prob(3, z, Y[0])


def test_random_is_stable_and_stationary():
    for seed in range(5):
        p = LinearGaussianStateSpace.random(4, 2, 10, seed=seed)
        assert np.max(np.abs(np.linalg.eigvals(p.A))) < 1
        np.testing.assert_allclose(p.A @ p.P0 @ p.A.T + p.Q, p.P0, atol=1e-12)
        assert p.obs_dim == 20 and p.latent_dim == 40


def test_dense_limit_is_a_clear_error_and_banded_form_works():
    p = LinearGaussianStateSpace.random(4, 1, 600, seed=0)  # 2400 > MAX_DENSE_DIM
    x = p.sample(1, seed=0)[0]
    with pytest.raises(ValueError, match="^T:"):
        p.prior()
    with pytest.raises(ValueError, match="^T:"):
        p.posterior(x)
    means, covs, cross = p.smoothing_moments(x)
    assert means.shape == (600, 4) and covs.shape == (600, 4, 4) and cross.shape == (599, 4, 4)
    assert np.isfinite(p.log_marginal(x))


def test_lgss_bad_input():
    s = np.eye(2)
    args = dict(transition=0.5 * s, emission=np.ones((1, 2)), transition_cov=s, emission_cov=np.eye(1),
                initial_mean=np.zeros(2), initial_cov=s, T=3)
    LinearGaussianStateSpace(**args)
    for name, bad in [("transition", np.ones((2, 3))), ("emission", np.ones((1, 3))),
                      ("transition_cov", -s), ("emission_cov", np.array([[1.0, 2.0], [2.0, 1.0]])),
                      ("initial_mean", np.zeros(3)), ("initial_cov", np.array([[1.0, 0.5], [0.4, 1.0]])),
                      ("T", 0)]:
        with pytest.raises(ValueError, match=f"^{name}:"):
            LinearGaussianStateSpace(**{**args, name: bad})
    p = LinearGaussianStateSpace(**args)
    with pytest.raises(ValueError, match="^x:"):
        p.log_marginal(np.zeros(4))
    with pytest.raises(ValueError, match="^z:"):
        p.log_joint(np.zeros(3), np.zeros((2, 5)))


# --------------------------------------------------------------------------- hidden Markov


HMM_CASES = [(2, 1, 1, 0), (3, 2, 4, 1), (2, 3, 6, 2), (4, 1, 3, 3)]  # (S, obs_dim, T, seed)


def all_paths(S, T):
    return np.array(list(itertools.product(range(S), repeat=T)), dtype=np.int64)


def brute_log_joint(h, x, paths):
    """log p(x, z) of every path, written out by hand with scipy's normal density."""
    Y = x.reshape(h.T, h.emission_dim)
    out = np.empty(len(paths))
    for i, z in enumerate(paths):
        v = np.log(h.initial[z[0]])
        v += sum(np.log(h.transition[z[t - 1], z[t]]) for t in range(1, h.T))
        v += sum(stats.norm(h.emission_means[z[t]], h.emission_scales[z[t]]).logpdf(Y[t]).sum() for t in range(h.T))
        out[i] = v
    return out


@pytest.mark.parametrize("S, o, T, seed", HMM_CASES)
def test_forward_algorithm_matches_enumeration(S, o, T, seed):
    h = HiddenMarkov.random(S, o, T, seed=seed)
    X = h.sample(3, seed=seed)
    paths = all_paths(S, T)
    for x in X:
        lj = brute_log_joint(h, x, paths)
        np.testing.assert_allclose(h.log_joint(x, paths), lj, rtol=0, atol=1e-10)
        assert abs(h.log_marginal(x) - logsumexp(lj)) < 1e-10
    np.testing.assert_allclose(h.log_marginal(X), [logsumexp(brute_log_joint(h, x, paths)) for x in X], atol=1e-10)


def test_forward_algorithm_survives_zero_transitions_and_long_series():
    A = np.array([[0.9, 0.1, 0.0], [0.0, 0.8, 0.2], [0.3, 0.0, 0.7]])
    h = HiddenMarkov([1.0, 0.0, 0.0], A, [[-2.0], [0.0], [2.0]], [[0.5], [0.5], [0.5]], 5)
    x = h.sample(1, seed=0)[0]
    paths = all_paths(3, 5)
    with np.errstate(divide="ignore"):
        assert abs(h.log_marginal(x) - logsumexp(brute_log_joint(h, x, paths))) < 1e-10
    long = HiddenMarkov(h.initial, A, h.emission_means, h.emission_scales, 5000)
    assert np.isfinite(long.log_marginal(long.sample(1, seed=0)[0]))


def test_ffbs_and_prior_draws_match_enumerated_distributions():
    S, T = 3, 4
    h = HiddenMarkov.random(S, 2, T, seed=7)
    x = h.sample(1, seed=8)[0]
    paths = all_paths(S, T)
    lj = brute_log_joint(h, x, paths)
    code = S ** np.arange(T - 1, -1, -1)
    n = 200000
    for q, probs in ((h.posterior(x), np.exp(lj - logsumexp(lj))),
                     (h.prior(), np.exp(np.array([np.log(h.initial[z[0]]) + sum(np.log(h.transition[z[t - 1], z[t]])
                                                  for t in range(1, T)) for z in paths])))):
        np.testing.assert_allclose(np.exp(q.log_prob(paths)), probs, atol=1e-12)
        draws = q.sample(n, seed=11)
        assert draws.shape == (n, T) and draws.dtype == np.int64
        counts = np.bincount(draws @ code, minlength=S**T)
        keep = probs * n > 5
        assert counts[~keep].sum() < 5 * max(1.0, np.sqrt(n * probs[~keep].sum())) + n * probs[~keep].sum()
        chi2 = np.sum((counts[keep] - n * probs[keep]) ** 2 / (n * probs[keep]))
        assert stats.chi2.sf(chi2, keep.sum() - 1) > 1e-6


def test_hmm_protocol_members_and_by_hand_importance_sampling():
    h = HiddenMarkov.random(3, 2, 5, seed=2)
    x = h.sample(1, seed=3)[0]
    Y = x.reshape(h.T, h.emission_dim)
    n = 60000
    z0 = h.initial_sample(n, np.random.default_rng(0))
    assert z0.shape == (n, 1)
    f0 = np.bincount(z0[:, 0], minlength=3) / n
    assert np.all(np.abs(f0 - h.initial) < 5 * np.sqrt(h.initial * (1 - h.initial) / n) + 1e-12)
    z1 = h.transition_sample(1, np.ones((n, 1), dtype=np.int64), np.random.default_rng(1))
    f1 = np.bincount(z1[:, 0], minlength=3) / n
    row = h.transition[1]
    assert np.all(np.abs(f1 - row) < 5 * np.sqrt(row * (1 - row) / n) + 1e-12)
    k = np.arange(3)[:, None]
    ref = [stats.norm(h.emission_means[j], h.emission_scales[j]).logpdf(Y[2]).sum() for j in range(3)]
    np.testing.assert_allclose(h.emission_log_prob(2, k, Y[2]), ref, atol=1e-12)
    # importance sampling by hand with the prior path: unbiased; with the posterior: exact
    q = h.prior()
    z = q.sample(50000, seed=4)
    w = np.exp(h.log_joint(x, z) - q.log_prob(z) - h.log_marginal(x))
    assert abs(w.mean() - 1) < 5 * w.std() / np.sqrt(w.size)
    post = h.posterior(x)
    zp = post.sample(10, seed=5)
    np.testing.assert_allclose(h.log_joint(x, zp) - post.log_prob(zp), h.log_marginal(x), atol=1e-10)


def test_hmm_latent_is_not_claimed_by_the_generic_estimators():
    h = HiddenMarkov.random(2, 1, 3, seed=0)
    x = h.sample(1, seed=0)[0]
    assert h.latent_type == "categorical_path" and h.latent_dim == 3 and h.num_categories == 2
    with pytest.raises(ValueError, match="^p.latent_type:"):
        estimators.importance_sampling(h, x, h.prior(), 10, 2)


def test_hmm_bad_input():
    args = dict(initial=[0.5, 0.5], transition=[[0.9, 0.1], [0.2, 0.8]], emission_means=[[0.0], [1.0]],
                emission_scales=[[1.0], [1.0]], T=4)
    HiddenMarkov(**args)
    for name, bad in [("initial", [0.5, 0.6]), ("transition", [[0.9, 0.2], [0.2, 0.8]]),
                      ("emission_means", [[0.0], [1.0], [2.0]]), ("emission_scales", [[1.0], [0.0]]), ("T", 0)]:
        with pytest.raises(ValueError, match=f"^{name}:"):
            HiddenMarkov(**{**args, name: bad})
    h = HiddenMarkov(**args)
    with pytest.raises(ValueError, match="^z:"):
        h.log_joint(np.zeros(4), np.array([[0, 1, 2, 0]]))
    with pytest.raises(ValueError, match="^x:"):
        h.log_marginal(np.zeros(5))
