"""The uniform_vs_is claim on real digits: its exact log p(bottom half) of the
held-out images against an enumeration over the components written here, its
pooled errors against its per-image ones, and the synthetic glyphs option."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import bernoulli

from bench import claims as CL
from bench.claims import uniform_vs_is as U
from problems import MissingPixels
from problems.datasets import digits


@pytest.fixture(scope="module")
def smoke_settings():
    return copy.deepcopy(CL.SETTINGS["smoke"])


def test_real_digits_numbers_are_exact(smoke_settings):
    numbers, tables, notes = U.claim_uniform_vs_is(smoke_settings)
    S = smoke_settings["uniform"]
    assert numbers["data"] == "digits" and numbers["latent_bits"] == 32
    d = digits()
    assert set(numbers["image_indices"]) <= set(d.test.tolist())  # held-out images only
    assert [int(d.labels[i]) for i in numbers["image_indices"]] == numbers["image_digits"][: len(numbers["image_indices"])]
    # the same fit (EM is deterministic given the seed), then log p(bottom half) by enumerating the components
    p = MissingPixels.fit(d.binary()[d.train], S["C"], seed=0, restarts=S["restarts"])
    for i, lp in zip(numbers["image_indices"], numbers["log_p_x"]):
        y = d.binary()[i]
        comp = [np.log(p.weights[c]) + bernoulli.logpmf(y[32:], p.templates[c, 32:]).sum()
                for c in range(p.num_components)]
        assert np.isclose(lp, logsumexp(comp), rtol=0, atol=1e-10)
    # pooled errors: the mean error is the mean of the images' mean errors (equal R per image)
    e, b = tables["errors"], tables["errors_by_image"]
    pooled = b.groupby(["q", "K"])["mean_error"].mean()
    assert np.allclose(e.set_index(["q", "K"])["mean_error"], pooled.loc[e.set_index(["q", "K"]).index])
    assert CL.RULES["uniform_vs_is"](numbers) in (True, False)
    assert any("bundled UCI digits" in n for n in notes)


def test_glyphs_option_and_bad_data(smoke_settings):
    s = copy.deepcopy(smoke_settings)
    s["uniform"]["data"] = "glyphs"
    numbers, tables, _ = U.claim_uniform_vs_is(s)
    assert numbers["data"] == "glyphs" and numbers["images_measured"] == 1
    # the noiseless 9's bottom half is shared by the glyphs 3, 5 and 9: equal posterior weights, nearly all of it
    w = numbers["posterior_component_weights_3_5_9"]
    assert np.allclose(w, w[0], rtol=1e-12) and 0.99 < sum(w) < 1
    s["uniform"]["data"] = "mnist"
    with pytest.raises(ValueError, match="^data:"):
        U.claim_uniform_vs_is(s)
