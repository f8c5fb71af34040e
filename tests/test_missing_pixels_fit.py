"""MissingPixels.fit: EM for the Bernoulli-template mixture.

The log-likelihood never decreases; templates drawn from a known mixture are
recovered (up to permutation) within their binomial standard errors; the
fitted problem's exact log p(bottom half) matches an enumeration over the
components written here with scipy.stats, and a brute-force sum over every
completion; bad input is a ValueError naming the argument.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment
from scipy.special import logsumexp
from scipy.stats import bernoulli

from problems import MissingPixels
from problems.datasets import digits


def _full_log_lik(Y, T, w):
    """log sum_c w_c prod_j Bern(y_j; t_cj) per row, by scipy.stats."""
    comp = np.stack([np.log(w[c]) + bernoulli.logpmf(Y, T[c]).sum(axis=1) for c in range(len(w))], axis=1)
    return logsumexp(comp, axis=1)


@pytest.fixture(scope="module")
def known():
    rng = np.random.default_rng(5)
    C, P, n = 3, 24, 4000
    T = rng.uniform(0.05, 0.95, size=(C, P))
    w = np.array([0.5, 0.3, 0.2])
    c = rng.choice(C, size=n, p=w)
    Y = (rng.random((n, P)) < T[c]).astype(np.int8)
    p = MissingPixels.fit(Y, C, seed=1, restarts=3, eps=1e-3)
    return T, w, c, Y, p


def test_em_log_likelihood_never_decreases_and_is_the_kept_fits(known):
    T, w, c, Y, p = known
    em = p.em
    assert len(em.histories) == 3 and 0 <= em.best_restart < 3
    for h in em.histories:
        assert h.size >= 3
        assert np.all(np.diff(h) >= -1e-12 * np.abs(h[1:])), np.diff(h).min()
    assert em.log_likelihood == max(h[-1] for h in em.histories)
    # the record is the returned problem's log-likelihood, computed independently
    assert np.isclose(em.log_likelihood, _full_log_lik(Y, p.templates, p.weights).mean(), rtol=0, atol=1e-10)
    assert np.all(np.diff(p.weights) <= 0)  # ordered by decreasing weight


def test_em_on_real_digits_never_decreases():
    d = digits()
    Y = d.binary()[d.train[:400]]
    p = MissingPixels.fit(Y, 8, seed=3, restarts=2, iterations=60)
    for h in p.em.histories:
        assert np.all(np.diff(h) >= -1e-12 * np.abs(h[1:]))
    # smoothing: every template inside the box [eps, 1 - eps], some on its edge (pixels never on)
    assert p.templates.min() >= 0.01 - 1e-15 and p.templates.max() <= 0.99 + 1e-15
    assert np.isclose(p.templates.min(), 0.01)


def test_em_recovers_known_templates_within_sampling_error(known):
    T, w, c, Y, p = known
    That = p.templates
    cost = ((T[:, None, :] - That[None, :, :]) ** 2).sum(axis=-1)
    rows, cols = linear_sum_assignment(cost)
    n = Y.shape[0]
    for i, j in zip(rows, cols):
        se = np.sqrt(T[i] * (1 - T[i]) / (n * w[i]))  # binomial SE of a pixel's frequency in component i
        assert np.max(np.abs(That[j] - T[i]) / se) < 5
        assert abs(p.weights[j] - w[i]) < 5 * np.sqrt(w[i] * (1 - w[i]) / n)
    assert p.num_components == 3 and p.latent_dim == 12  # default mask: the first half of the pixels


def test_held_out_log_p_bottom_half_against_enumeration():
    d = digits()
    Y = d.binary()
    p = MissingPixels.fit(Y[d.train], 12, seed=0, restarts=2, iterations=80)
    mask = np.zeros(64, bool)
    mask[:32] = True
    assert np.array_equal(p.latent_mask, mask)  # the default: the top 4 rows of the 8 x 8 image
    held = Y[d.test[:25]]
    x, _ = p.split(held)
    T, w = p.templates, p.weights
    # enumeration over the components: log p(x) = logsumexp_c [log w_c + sum_{obs} log Bern(x_i; t_ci)]
    comp = np.stack([np.log(w[c]) + bernoulli.logpmf(held[:, 32:], T[c, 32:]).sum(axis=1) for c in range(12)], 1)
    expected = logsumexp(comp, axis=1)
    got = p.log_marginal(x)
    assert np.allclose(got, expected, rtol=0, atol=1e-10)
    assert np.all(np.isfinite(got)) and np.all(got < 0)


def test_log_p_observed_is_the_sum_over_every_completion():
    """With the top row latent (8 bits), p(x) = sum over the 256 completions z of p(x, z)."""
    d = digits()
    Y = d.binary()
    top = np.zeros((8, 8), bool)
    top[0] = True
    p = MissingPixels.fit(Y[d.train].reshape(-1, 8, 8), 6, seed=2, restarts=1, iterations=40, latent_mask=top)
    assert p.image_shape == (8, 8) and p.latent_dim == 8
    T, w = p.templates, p.weights
    Z = np.array(list(itertools.product((0, 1), repeat=8)))
    for img in Y[d.test[:5]]:
        x, _ = p.split(img)
        full = np.tile(img, (256, 1))
        full[:, :8] = Z
        brute = logsumexp(_full_log_lik(full, T, w))
        assert np.isclose(p.log_marginal(x), brute, rtol=0, atol=1e-10)


def test_fit_is_reproducible():
    d = digits()
    Y = d.binary()[d.train[:300]]
    a = MissingPixels.fit(Y, 5, seed=4, restarts=2, iterations=30)
    b = MissingPixels.fit(Y, 5, seed=4, restarts=2, iterations=30)
    assert np.array_equal(a.templates, b.templates) and np.array_equal(a.weights, b.weights)
    assert a.em.steps == b.em.steps


@pytest.mark.parametrize("kwargs, name", [
    (dict(C=0), "C"),
    (dict(C=11), "C"),  # more components than images
    (dict(C=2.5), "C"),
    (dict(C=2, restarts=0), "restarts"),
    (dict(C=2, iterations=0), "iterations"),
    (dict(C=2, eps=0.0), "eps"),
    (dict(C=2, eps=0.5), "eps"),
    (dict(C=2, seed=-1), "seed"),
    (dict(C=2, latent_mask=np.zeros(16, bool)), "latent_mask"),  # hides nothing
    (dict(C=2, latent_mask=np.ones(16, bool)), "latent_mask"),  # hides everything
    (dict(C=2, latent_mask=np.ones(15, bool)), "latent_mask"),  # wrong size
    (dict(C=2, latent_mask=np.arange(16) < 8), None),  # fine
])
def test_fit_bad_input_names_the_argument(kwargs, name):
    Y = (np.random.default_rng(0).random((10, 16)) < 0.5).astype(np.int8)
    if name is None:
        assert MissingPixels.fit(Y, **kwargs).latent_dim == 8
        return
    with pytest.raises(ValueError, match=f"^{name}:"):
        MissingPixels.fit(Y, **kwargs)


def test_fit_refuses_non_binary_images():
    d = digits()
    with pytest.raises(ValueError, match="^images: entries must be 0 or 1"):
        MissingPixels.fit(d.images[:50], 3)  # grey levels 0..16
    with pytest.raises(ValueError, match="^images: expected shape"):
        MissingPixels.fit(np.zeros(16, np.int8), 1)
