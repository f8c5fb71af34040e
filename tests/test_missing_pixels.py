r"""MissingPixels (a mixture of Bernoulli templates, some pixels latent) against
brute-force enumeration written here.

For a small latent (8 bits: ``MissingPixels.digits(latent_rows=1)``, or a
custom instance) every exact quantity is recomputed from the definition

.. math::
    p(x, z) = \sum_c w_c \prod_{i \in obs} t_{ci}^{x_i}(1-t_{ci})^{1-x_i}
              \prod_{j \in lat} t_{cj}^{z_j}(1-t_{cj})^{1-z_j},

looping over every component c and every completion z in
``itertools.product((0, 1), repeat=m)`` -- independently of the library's bit
order and vectorisation.  Monte Carlo checks use the exact variance of the
weights (by the same enumeration) for their standard errors, at 5 SE.
"""

import itertools

import numpy as np
import pytest

import estimators
from estimators import Bernoulli, Gaussian
from problems import MissingPixels
from problems.glyphs import SIZE, digit_bitmaps, digit_templates

Z = 5.0


# --------------------------------------------------------------------------- brute force
def completions(m):
    return np.array(list(itertools.product((0, 1), repeat=m)), dtype=np.int8)


def brute_log_joint(templates, weights, mask, x, zs):
    """log p(x, z) for every row of zs, from the definition (a loop over components)."""
    img = np.empty((len(zs), templates.shape[1]))
    img[:, ~mask] = x
    img[:, mask] = zs
    per_c = []
    for c in range(templates.shape[0]):
        t = templates[c]
        per_c.append(np.log(weights[c]) + np.sum(img * np.log(t) + (1 - img) * np.log(1 - t), axis=1))
    per_c = np.array(per_c)
    top = per_c.max(axis=0)
    return top + np.log(np.sum(np.exp(per_c - top), axis=0))


def q_log_prob(probs, zs):
    """log q(z) of independent bits, 0 * log 0 taken as 0."""
    with np.errstate(divide="ignore"):
        on, off = np.log(probs), np.log1p(-probs)
    return np.sum(np.where(zs > 0, on, 0.0) + np.where(zs < 1, off, 0.0), axis=1)


def logsumexp(a):
    top = np.max(a)
    return top + np.log(np.sum(np.exp(a - top)))


class Brute:
    """Enumeration of one (problem, x)."""

    def __init__(self, p, x):
        self.zs = completions(p.latent_dim)
        self.lj = brute_log_joint(p.templates, p.weights, p.latent_mask, x, self.zs)
        self.log_px = logsumexp(self.lj)
        self.post = np.exp(self.lj - self.log_px)

    def elbo(self, probs):
        lq = q_log_prob(probs, self.zs)
        qz = np.exp(lq)
        keep = qz > 0
        return float(np.sum(qz[keep] * (self.lj[keep] - lq[keep])))

    def kl(self, probs):
        lq = q_log_prob(probs, self.zs)
        qz = np.exp(lq)
        keep = qz > 0
        return float(np.sum(qz[keep] * (lq[keep] - np.log(self.post[keep]))))

    def relative_weight_variance(self, probs):
        """Var_q[w] / p(x)^2 = sum_z p(z|x)^2 / q(z) - 1 (q covering the support)."""
        qz = np.exp(q_log_prob(probs, self.zs))
        return float(np.sum(self.post**2 / qz) - 1.0)


def small_custom():
    """C = 3 components, 7 pixels, 4 of them latent (pixels 0, 2, 3, 6)."""
    rng = np.random.default_rng(5)
    templates = rng.uniform(0.05, 0.95, size=(3, 7))
    mask = np.array([True, False, True, True, False, False, True])
    return MissingPixels(templates, [0.2, 0.5, 0.3], mask), np.array([1.0, 0.0, 1.0])


def digits_8bit():
    p = MissingPixels.digits(latent_rows=1)
    return p, p.sample(1, seed=4)[0]


CASES = {"custom": small_custom, "digits8": digits_8bit}


# --------------------------------------------------------------------------- glyphs
def test_glyphs_are_ten_distinct_binary_digits():
    b = digit_bitmaps()
    assert b.shape == (10, SIZE, SIZE) == (10, 8, 8)
    assert set(np.unique(b)) == {0, 1}
    flat = b.reshape(10, -1)
    assert len({row.tobytes() for row in flat}) == 10
    # 8 lights every segment, so every digit is a subset of it
    assert (b <= b[8]).all()
    # 1 is the two right-hand bars only
    assert set(np.nonzero(b[1])[1]) == {6}


def test_glyph_halves():
    b = digit_bitmaps()
    top, bottom = b[:, :4], b[:, 4:]
    assert not np.array_equal(top[9], top[7])  # a 9's top is a loop, a 7's a bar and a stroke
    assert top[9].sum() > top[7].sum()
    # the bottom halves of 3, 5 and 9 coincide: completing their top half is ambiguous
    assert np.array_equal(bottom[3], bottom[5]) and np.array_equal(bottom[3], bottom[9])
    assert len({top[d].tobytes() for d in (3, 5, 9)}) == 3
    # the middle bar (rows 3-4, columns 2-5): off in 0 and 7, on in 8
    assert b[0, 3:5, 2:6].sum() == 0 and b[7, 3:5, 2:6].sum() == 0 and b[8, 3:5, 2:6].all()


def test_templates_and_catalog_instance():
    t = digit_templates(on=0.9, off=0.05)
    assert t.shape == (10, 64)
    np.testing.assert_array_equal(np.isclose(t, 0.9), digit_bitmaps().reshape(10, 64) == 1)
    assert set(np.round(np.unique(t), 12)) == {0.05, 0.9}
    p = MissingPixels.digits()
    assert (p.latent_dim, p.obs_dim, p.num_components) == (32, 32, 10)
    assert p.latent_mask.reshape(8, 8)[:4].all() and not p.latent_mask.reshape(8, 8)[4:].any()
    np.testing.assert_allclose(p.weights, 0.1)


def test_sampled_images_follow_the_templates():
    p = MissingPixels.digits(latent_rows=2)
    imgs, c = p.sample_images(20000, seed=1)
    assert imgs.shape == (20000, 64) and set(np.unique(imgs)) <= {0, 1}
    freq = np.bincount(c, minlength=10) / c.size
    assert np.all(np.abs(freq - 0.1) < Z * np.sqrt(0.1 * 0.9 / c.size))
    on = imgs[c == 9].mean(axis=0)
    se = np.sqrt(p.templates[9] * (1 - p.templates[9]) / (c == 9).sum())
    assert np.all(np.abs(on - p.templates[9]) < Z * se)
    x = p.sample(3, seed=1)  # the unmasked pixels of sample_images with the same (n, seed)
    np.testing.assert_array_equal(x, p.split(p.sample_images(3, seed=1)[0])[0])


# --------------------------------------------------------------------------- exact quantities
@pytest.mark.parametrize("case", CASES)
def test_log_joint_marginal_and_posterior_by_enumeration(case):
    p, x = CASES[case]()
    br = Brute(p, x)
    np.testing.assert_allclose(p.log_joint(x, br.zs), br.lj, rtol=1e-12, atol=1e-12)
    assert p.log_marginal(x) == pytest.approx(br.log_px, abs=1e-12)
    post = p.posterior(x)
    np.testing.assert_allclose(np.exp(post.log_prob(br.zs)), br.post, rtol=1e-10, atol=1e-300)
    np.testing.assert_allclose(p.posterior_marginals(x), br.post @ br.zs, rtol=1e-10, atol=1e-14)
    # p(c | x) by enumeration over the component alone (latent pixels sum out)
    obs_t = p.templates[:, ~p.latent_mask]
    a = np.log(p.weights) + np.sum(x * np.log(obs_t) + (1 - x) * np.log(1 - obs_t), axis=1)
    np.testing.assert_allclose(p.posterior_component_weights(x), np.exp(a - logsumexp(a)), rtol=1e-10)


def _random_bernoulli(m, seed):
    return np.random.default_rng(seed).uniform(0.1, 0.9, size=m)


@pytest.mark.parametrize("case", CASES)
def test_elbo_kl_by_enumeration(case):
    p, x = CASES[case]()
    br = Brute(p, x)
    m = p.latent_dim
    probes = [
        _random_bernoulli(m, 1),
        np.full(m, 0.5),  # the uniform q
        np.clip(p.posterior_marginals(x), 0.02, 0.98),
    ]
    for probs in probes:
        q = Bernoulli(probs)
        elbo, kl = p.elbo(x, q), p.kl(x, q)
        assert elbo == pytest.approx(br.elbo(probs), abs=1e-10)
        assert kl == pytest.approx(br.kl(probs), abs=1e-10)
        assert kl > 0
        assert abs(p.log_marginal(x) - (elbo + kl)) < 1e-9


@pytest.mark.parametrize("case", CASES)
def test_degenerate_q_all_ones(case):
    """phi = 1: q is a point mass on z = all ones, so ELBO = log p(x, 1) and
    KL = -log p(z = 1 | x)."""
    p, x = CASES[case]()
    br = Brute(p, x)
    ones = np.ones(p.latent_dim)
    q = Bernoulli(ones)
    lj1 = brute_log_joint(p.templates, p.weights, p.latent_mask, x, ones[None, :])[0]
    assert p.elbo(x, q) == pytest.approx(lj1, abs=1e-10)
    assert p.kl(x, q) == pytest.approx(br.log_px - lj1, abs=1e-10)
    assert abs(p.log_marginal(x) - (p.elbo(x, q) + p.kl(x, q))) < 1e-9


@pytest.mark.parametrize("case", CASES)
def test_elbo_grad_by_enumeration_and_finite_differences(case):
    p, x = CASES[case]()
    br = Brute(p, x)
    probs = _random_bernoulli(p.latent_dim, 2)
    q = Bernoulli(probs)
    theta = q.params
    # d/d theta_j sum_z q(z) (log p - log q): with d q(z)/d theta_j = q(z)(z_j - probs_j)
    # and sum_z q(z) d(-log q)/d theta = 0
    lq = q_log_prob(probs, br.zs)
    exact = (np.exp(lq) * (br.lj - lq)) @ (br.zs - probs)
    g = p.elbo_grad(x, q)
    np.testing.assert_allclose(g, exact, rtol=1e-10, atol=1e-12)
    h = 1e-5
    fd = np.empty_like(theta)
    for j in range(theta.size):
        e = np.zeros_like(theta)
        e[j] = h
        fd[j] = (br.elbo(1 / (1 + np.exp(-(theta + e)))) - br.elbo(1 / (1 + np.exp(-(theta - e))))) / (2 * h)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)


def test_enumeration_refuses_more_than_20_bits():
    p = MissingPixels.digits(latent_rows=3)  # 24 latent bits
    x = p.sample(1, seed=0)[0]
    q = Bernoulli(np.full(p.latent_dim, 0.5))
    for fn in (p.elbo, p.kl, p.elbo_grad):
        with pytest.raises(ValueError, match="20"):
            fn(x, q)
    assert np.isfinite(p.log_marginal(x))  # the marginal needs no enumeration


# --------------------------------------------------------------------------- Monte Carlo estimators
def _check_p_hat(est, log_px, rel_var, K):
    """mean of p_hat / p within 5 exact SE of 1: SE = sqrt(Var_q[w] / (p^2 K R))."""
    u = np.exp(est - log_px)
    se = np.sqrt(rel_var / (K * est.size))
    assert abs(u.mean() - 1.0) < Z * se, (u.mean(), se)
    return u.mean(), se


@pytest.mark.parametrize("K", [1, 30])
@pytest.mark.parametrize("case", CASES)
def test_uniform_mc_p_hat_is_unbiased(case, K):
    p, x = CASES[case]()
    br = Brute(p, x)
    est = estimators.uniform_mc(p, x, K, 4000, seed=21)
    _check_p_hat(est, br.log_px, br.relative_weight_variance(np.full(p.latent_dim, 0.5)), K)


@pytest.mark.parametrize("K", [1, 30])
@pytest.mark.parametrize("case", CASES)
def test_is_with_posterior_marginals_is_unbiased(case, K):
    p, x = CASES[case]()
    br = Brute(p, x)
    probs = np.clip(p.posterior_marginals(x), 1e-3, 1 - 1e-3)  # cover the support
    est = estimators.importance_sampling(p, x, Bernoulli(probs), K, 4000, seed=22)
    _check_p_hat(est, br.log_px, br.relative_weight_variance(probs), K)


def test_uniform_mc_16_bits_exact_variance():
    """16 latent bits (two missing rows): p_hat unbiased with the exact SE from
    2^16-completion enumeration -- and the uniform q's weights are far more
    variable than those of q = Bernoulli(posterior marginals)."""
    p = MissingPixels.digits(latent_rows=2)
    x = p.sample(1, seed=4)[0]
    br = Brute(p, x)
    rv_uniform = br.relative_weight_variance(np.full(16, 0.5))
    probs = np.clip(p.posterior_marginals(x), 1e-3, 1 - 1e-3)
    rv_is = br.relative_weight_variance(probs)
    assert rv_uniform > 100 * rv_is
    est = estimators.uniform_mc(p, x, 100, 2000, seed=23)
    _check_p_hat(est, br.log_px, rv_uniform, 100)


def test_is_with_phi_one_estimates_the_wrong_thing_exactly():
    """q = Bernoulli(1) draws z = all ones every time: every replicate is
    exactly log p(x, z = 1) -- zero variance, and wrong, because q does not
    cover the posterior's support."""
    p = MissingPixels.digits()
    x = p.sample(1, seed=4)[0]
    ones = np.ones(p.latent_dim)
    want = brute_log_joint(p.templates, p.weights, p.latent_mask, x, ones[None, :])[0]
    for K in (1, 50):
        est = estimators.importance_sampling(p, x, Bernoulli(ones), K, 20, seed=24)
        np.testing.assert_allclose(est, want, rtol=0, atol=1e-10)
    assert p.log_marginal(x) - want > 10  # nowhere near log p(x)


# --------------------------------------------------------------------------- validation
def test_non_binary_x_is_refused():
    p = MissingPixels.digits(latent_rows=1)
    x = p.sample(1, seed=0)[0]
    bad = x.copy()
    bad[0] = 0.5
    for fn in (p.log_marginal, p.posterior, p.observed_log_likelihoods):
        with pytest.raises(ValueError, match="x"):
            fn(bad)
    with pytest.raises(ValueError, match="x"):
        p.log_marginal(np.vstack([x, bad]))
    with pytest.raises(ValueError, match="x"):
        p.log_marginal(x[:-1])
    with pytest.raises(ValueError, match="z"):
        p.log_joint(x, np.full(p.latent_dim, 2))
    with pytest.raises(ValueError, match="q"):
        p.elbo(x, Gaussian(np.zeros(p.latent_dim), 1.0))
    with pytest.raises(ValueError, match="q"):
        p.elbo(x, Bernoulli(np.full(3, 0.5)))


@pytest.mark.parametrize(
    "mask, why",
    [
        (np.array([1, 0, 1, 0]), "integers, not booleans"),
        (np.array([True, False, True]), "wrong length"),
        (np.ones(4, dtype=bool), "every pixel latent"),
        (np.zeros(4, dtype=bool), "no pixel latent"),
    ],
)
def test_bad_mask_is_refused(mask, why):
    t = np.full((2, 4), 0.3)
    with pytest.raises(ValueError, match="latent_mask"):
        MissingPixels(t, [0.5, 0.5], mask)


@pytest.mark.parametrize("value", [0.0, 1.0, -0.1, 1.5, np.nan])
def test_templates_must_lie_strictly_inside_zero_one(value):
    t = np.full((2, 4), 0.3)
    t[1, 2] = value
    with pytest.raises(ValueError, match="templates"):
        MissingPixels(t, [0.5, 0.5], np.array([True, False, False, True]))


def test_bad_weights_templates_shape_and_rows():
    mask = np.array([True, False, False, True])
    with pytest.raises(ValueError, match="weights"):
        MissingPixels(np.full((2, 4), 0.3), [0.5, 0.6], mask)
    with pytest.raises(ValueError, match="weights"):
        MissingPixels(np.full((2, 4), 0.3), [1.0], mask)
    with pytest.raises(ValueError, match="templates"):
        MissingPixels(np.full(4, 0.3), [1.0], mask)
    for rows in (0, 8, -1):
        with pytest.raises(ValueError, match="latent_rows"):
            MissingPixels.digits(latent_rows=rows)
