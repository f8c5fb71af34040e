"""Property-based checks (hypothesis) over random problems and proposals.

Examples are derandomized, so every run draws the same cases: a failure is
reproducible, and the 5-standard-error tolerances keep their meaning.  The
standard errors of the unbiasedness checks come from the exact weight
variance (closed form for LinearGaussian, enumeration for GaussianMixture),
not from the sample, so a heavy-tailed sample cannot shrink its own tolerance;
and they are applied to q at least as wide as the posterior, where the
weights are bounded and the mean of R replicates is close to Gaussian.
"""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import estimators
from problems import GaussianMixture, LinearGaussian

SETTINGS = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


@st.composite
def linear_gaussian_cases(draw):
    D = draw(st.integers(1, 6))
    d = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 10_000))
    p = LinearGaussian.random(D, d, seed=seed)
    x = p.sample(1, seed=seed + 1)[0]
    post = p.posterior(x)
    shift = draw(st.floats(-1.0, 1.0))
    widen = draw(st.floats(0.8, 2.0))
    sd = np.sqrt(np.diag(post.cov))
    q = estimators.Gaussian(post.loc + shift * sd, widen * sd)
    return p, x, q


@st.composite
def mixture_cases(draw):
    C = draw(st.integers(2, 8))
    D = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 10_000))
    p = GaussianMixture.random(C, D, seed=seed)
    x = p.sample(1, seed=seed + 1)[0]
    alpha = draw(st.floats(0.05, 0.95))
    q = estimators.Categorical(alpha * p.posterior(x).probs + (1 - alpha) * np.full(C, 1.0 / C))
    return p, x, q


@SETTINGS
@given(linear_gaussian_cases())
def test_linear_gaussian_identity_elbo_plus_kl(case):
    p, x, q = case
    assert abs(p.elbo(x, q) + p.kl(x, q) - p.log_marginal(x)) < 1e-9 * max(1.0, abs(p.log_marginal(x)))
    assert p.kl(x, q) >= -1e-12


@SETTINGS
@given(mixture_cases())
def test_mixture_identity_elbo_plus_kl(case):
    p, x, q = case
    assert abs(p.elbo(x, q) + p.kl(x, q) - p.log_marginal(x)) < 1e-9 * max(1.0, abs(p.log_marginal(x)))


@SETTINGS
@given(linear_gaussian_cases(), st.sampled_from([1, 10]))
def test_linear_gaussian_exp_is_unbiased_and_ess_in_range(case, K):
    p, x, q = case
    # A 5-SE test needs the mean of R replicates to be close to Gaussian.  With
    # q narrower than the posterior in some direction the weights are
    # unbounded and heavy-tailed (E[w^4] infinite when 4S - 3 Sigma is not
    # positive definite): 6-18 SE excursions then happen at a fixed seed --
    # we measured them -- so the test widens q until S >= Sigma, where
    # w = p(x) post(z)/q(z) is bounded and every moment is finite.
    S, Sigma = q.cov, p.posterior(x).cov
    L = np.linalg.cholesky(S)
    Linv = np.linalg.inv(L)
    excess = np.linalg.eigvalsh(Linv @ Sigma @ Linv.T).max()
    if excess > 1.0:
        q = estimators.Gaussian(q.loc, q.scale * np.sqrt(1.1 * excess))
    rel_var = p.relative_weight_variance(x, q)
    assert np.isfinite(rel_var)
    R = 400
    stats = estimators.weight_stats(p, x, q, K, R, seed=3)
    ratio = np.exp(stats.log_p_hat - p.log_marginal(x))
    assert abs(ratio.mean() - 1.0) < 5 * np.sqrt(rel_var / (K * R)) + 1e-12
    ess = stats.ess
    assert np.all((ess >= 1.0) & (ess <= K))


@SETTINGS
@given(mixture_cases(), st.sampled_from([1, 10]))
def test_mixture_exp_is_unbiased_and_ess_in_range(case, K):
    p, x, q = case
    log_p = p.log_marginal(x)
    w_over_p = np.exp(p.log_joint_table(x) - np.log(q.probs) - log_p)
    rel_var = float(np.sum(q.probs * w_over_p**2) - 1.0)  # Var_q[w] / p^2 by enumeration
    R = 400
    stats = estimators.weight_stats(p, x, q, K, R, seed=5)
    ratio = np.exp(stats.log_p_hat - log_p)
    assert abs(ratio.mean() - 1.0) < 5 * np.sqrt(rel_var / (K * R)) + 1e-12
    assert np.all((stats.ess >= 1.0) & (stats.ess <= K))
