"""bench.presets: each named q against its definition (computed here from the
problem's exact posterior), and bench.exact's moments against Monte Carlo."""

import math

import numpy as np
import pytest

import estimators
from bench import exact
from bench.presets import UNIFORM_HALF_WIDTH, make_q, parse_preset
from problems import GaussianMixture, LinearGaussian


@pytest.fixture(scope="module")
def lg():
    p = LinearGaussian.random(5, 3, seed=1)
    return p, p.sample(1, seed=2)[0]


@pytest.fixture(scope="module")
def gm():
    p = GaussianMixture.random(4, 2, seed=3)
    return p, p.sample(1, seed=4)[0]


def test_continuous_presets_follow_their_definitions(lg):
    p, x = lg
    post = p.posterior(x)
    mu, Sigma = post.loc, post.cov
    sd = np.sqrt(np.diag(Sigma))
    q = make_q(p, x, "posterior")
    assert np.allclose(q.loc, mu) and np.allclose(q.cov, Sigma)
    assert p.kl(x, q) == pytest.approx(0.0, abs=1e-12)
    q = make_q(p, x, "prior")
    assert np.allclose(q.mean, 0) and np.allclose(q.cov, np.eye(3))
    q = make_q(p, x, "shift:1.5")
    assert np.allclose(q.loc, mu + 1.5 * sd) and np.allclose(q.cov, Sigma)
    q = make_q(p, x, "scale:2")
    assert np.allclose(q.loc, mu) and np.allclose(q.cov, 4 * Sigma)
    q = make_q(p, x, "uniform")
    assert isinstance(q, estimators.Uniform)
    assert np.allclose(q.low, mu - UNIFORM_HALF_WIDTH * sd) and np.allclose(q.high, mu + UNIFORM_HALF_WIDTH * sd)
    q = make_q(p, x, "uniform+scale:0.5+shift:-1")
    assert np.allclose(q.low, mu - 3 * sd - sd) and np.allclose(q.high, mu + 3 * sd - sd)


def test_meanfield_is_the_kl_optimal_diagonal_gaussian(lg):
    p, x = lg
    q = make_q(p, x, "meanfield")
    assert isinstance(q, estimators.Gaussian)
    P = np.linalg.inv(p.posterior(x).cov)
    assert np.allclose(q.scale**2, 1 / np.diag(P))
    kl0 = p.kl(x, q)
    assert kl0 > 0  # the posterior is correlated
    rng = np.random.default_rng(0)
    for _ in range(20):  # every small perturbation of (loc, log scale) increases KL(q || p)
        theta = q.params + 0.05 * rng.standard_normal(q.params.shape)
        assert p.kl(x, q.with_params(theta)) > kl0
    q2 = make_q(p, x, "meanfield+shift:1")
    assert isinstance(q2, estimators.Gaussian)
    assert np.allclose(q2.loc, q.loc + np.sqrt(np.diag(p.posterior(x).cov)))


def test_discrete_presets_follow_their_definitions(gm):
    p, x = gm
    post = p.posterior(x).probs
    C = len(post)
    assert np.allclose(make_q(p, x, "posterior").probs, post)
    assert np.allclose(make_q(p, x, "meanfield").probs, post)
    assert np.allclose(make_q(p, x, "prior").probs, p.weights)
    assert np.allclose(make_q(p, x, "uniform").probs, np.full(C, 1 / C))
    lam = 1 - math.exp(-0.7)
    assert np.allclose(make_q(p, x, "shift:0.7").probs, (1 - lam) * post + lam / C)
    tempered = post ** (1 / 3)
    assert np.allclose(make_q(p, x, "scale:3").probs, tempered / tempered.sum())
    assert np.allclose(make_q(p, x, "shift:0").probs, post)


@pytest.mark.parametrize(
    "name, match",
    [
        ("bogus", "unknown q preset"),
        ("shift:abc", "needs a number"),
        ("scale:-1", "scale must be > 0"),
        ("scale:0", "scale must be > 0"),
        ("shift:1+posterior", "must come first"),
        ("shift:inf", "must be finite"),
        ("", "non-empty"),
    ],
)
def test_bad_presets_raise_naming_the_key(name, match):
    with pytest.raises(ValueError, match=rf"^q\[3\]: .*{match}"):
        parse_preset(name, key="q[3]")


def test_negative_shift_is_refused_for_a_discrete_latent(gm):
    p, x = gm
    with pytest.raises(ValueError, match="^q: .*s >= 0"):
        make_q(p, x, "shift:-1")


def _mc_moments(p, x, q, n=400_000, seed=5):
    z = q.sample(n, seed=seed)
    lw = p.log_joint(x, z) - q.log_prob(z)
    d = lw - lw.mean()
    return lw, d


@pytest.mark.parametrize("name", ["prior", "meanfield+shift:1", "shift:1", "scale:0.7", "scale:2+shift:-1", "uniform"])
def test_log_weight_moments_match_monte_carlo_continuous(lg, name):
    """Exact mean, variance and fourth moment of log w against the sample moments
    of 4e5 draws (p.log_joint - q.log_prob), within 5 Monte Carlo SEs."""
    p, x = lg
    q = make_q(p, x, name)
    mean, var, mu4 = exact.log_weight_moments(p, x, q)
    lw, d = _mc_moments(p, x, q)
    n = lw.size
    assert abs(lw.mean() - mean) < 5 * math.sqrt(var / n)
    assert abs(np.mean(d**2) - var) < 5 * np.std(d**2) / math.sqrt(n)
    if math.isnan(mu4):
        assert isinstance(q, estimators.Uniform)  # documented: no fourth moment for a box
    else:
        assert abs(np.mean(d**4) - mu4) < 5 * np.std(d**4) / math.sqrt(n)


@pytest.mark.parametrize("name", ["prior", "shift:1", "scale:3", "uniform"])
def test_log_weight_moments_match_enumeration_discrete(gm, name):
    p, x = gm
    q = make_q(p, x, name)
    mean, var, mu4 = exact.log_weight_moments(p, x, q)
    table = p.log_joint_table(x)
    f = table - np.log(q.probs)
    assert mean == pytest.approx(p.elbo(x, q), rel=1e-12)
    lw, d = _mc_moments(p, x, q)
    n = lw.size
    assert abs(np.mean(d**2) - var) < 5 * np.std(d**2) / math.sqrt(n)
    assert abs(np.mean(d**4) - mu4) < 5 * np.std(d**4) / math.sqrt(n)
    assert var == pytest.approx(np.sum(q.probs * (f - mean) ** 2), rel=1e-12)


def test_elbo_mean_moments_by_hand():
    # K = 1 leaves the moments alone; K = 2 of a +-1 coin: var 1/2, mu4 = 1/4 * ... = (1 + 3)/8 = 1/2
    assert exact.elbo_mean_moments(1.0, 1.0, 1) == (1.0, 1.0)
    var2, mu42 = exact.elbo_mean_moments(1.0, 1.0, 2)
    assert var2 == 0.5 and mu42 == pytest.approx(0.5)  # mean of 2 coins: 0 w.p. 1/2, +-1 w.p. 1/4 each


def test_relative_weight_variance(lg, gm):
    p, x = gm
    q = make_q(p, x, "uniform")
    post = p.posterior(x).probs
    assert exact.relative_weight_variance(p, x, q) == pytest.approx(np.sum(post**2 / q.probs) - 1)
    p, x = lg
    assert exact.relative_weight_variance(p, x, make_q(p, x, "posterior")) == pytest.approx(0.0, abs=1e-12)
    assert math.isnan(exact.relative_weight_variance(p, x, make_q(p, x, "uniform")))
    # Monte Carlo check of the problem's closed form (Var[w]/p^2 = E[(w/p)^2] - 1) at a benign q
    q = make_q(p, x, "scale:1.3")
    z = q.sample(400_000, seed=9)
    u = np.exp(p.log_joint(x, z) - q.log_prob(z) - p.log_marginal(x))
    rv = exact.relative_weight_variance(p, x, q)
    assert abs(np.var(u) - rv) < 5 * np.std((u - 1) ** 2) / math.sqrt(u.size)
