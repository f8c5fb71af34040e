"""The words of bad-input messages: plain numbers (no NumPy reprs such as
``np.float64(-1.0)``), and a proposal of the wrong latent type named as such,
with the proposals that would fit."""

from __future__ import annotations

import re

import numpy as np
import pytest

import estimators
from estimators.discrete_gradients import check_temperature
from problems import GaussianMixture, LinearGaussian, LinearGaussianStateSpace
from problems._bounds import check_alpha
from problems._validation import check_choice, check_count, check_seed, plain
from problems.distributions import Bernoulli, Categorical, Gaussian


@pytest.fixture(scope="module")
def lg():
    p = LinearGaussian.random(D=5, d=2, seed=1)
    return p, p.sample(1, seed=2)[0]


@pytest.fixture(scope="module")
def gm():
    p = GaussianMixture.random(C=4, D=2, seed=3)
    return p, p.sample(1, seed=4)[0]


def message(call):
    with pytest.raises(ValueError) as info:
        call()
    return str(info.value)


def test_plain_shows_numpy_scalars_as_python_numbers():
    assert plain(np.float64(-1.0)) == "-1.0"
    assert plain(np.int64(3)) == "3"
    assert plain(np.array(2.5)) == "2.5"
    assert plain(np.bool_(True)) == "True"
    assert plain(np.str_("x")) == "'x'"
    assert plain("x") == "'x'"


def test_negative_scale_names_the_minimum_as_a_plain_float():
    msg = message(lambda: Gaussian(np.zeros(2), np.array([-1.0, 1.0])))
    assert msg == "scale: every entry must be > 0, got min -1.0"


@pytest.mark.parametrize(
    "name, call",
    [
        ("K", lambda: check_count("K", np.float64(2.5))),
        ("K", lambda: check_count("K", np.float64(3.0))),
        ("seed", lambda: check_seed(np.float64(1.5))),
        ("method", lambda: check_choice("method", np.str_("magic"), ("score", "reparam"))),
        ("alpha", lambda: check_alpha(np.float64(np.inf))),
        ("temperature", lambda: check_temperature("temperature", np.float64(-0.5))),
        ("order", lambda: estimators.jackknife(LinearGaussian.random(D=3, d=1, seed=0), np.zeros(3),
                                               Gaussian([0.0], [1.0]), 10, 2, order=np.int64(3))),
        ("t", lambda: LinearGaussianStateSpace.random(state_dim=1, obs_dim=1, T=3, seed=0)._check_step(np.int64(7))),
    ],
)
def test_no_numpy_repr_in_messages(name, call):
    msg = message(call)
    assert msg.startswith(f"{name}: "), msg
    assert not re.search(r"np\.\w+\(", msg), msg


def test_numpy_values_in_public_calls(lg):
    p, x = lg
    msg = message(lambda: estimators.importance_sampling(p, x, p.prior(), np.float64(2.5), 2))
    assert msg == "K: must be an integer, got float64 2.5"
    msg = message(lambda: estimators.importance_sampling(p, x, p.prior(), 10, 2, seed=np.float64(1.5)))
    assert msg == "seed: must be a non-negative integer, got 1.5"


def test_categorical_q_on_a_continuous_latent(lg):
    p, x = lg
    q = Categorical(np.array([0.5, 0.5]))
    expected = ("q: a Categorical proposal is for a categorical latent; LinearGaussian's latent is continuous "
                "(z in R^2): use Gaussian or MultivariateGaussian")
    for call in (
        lambda: estimators.importance_sampling(p, x, q, 10, 2),
        lambda: estimators.elbo(p, x, q, 10, 2),
        lambda: estimators.gradient(p, x, q, 10, 2, method="score"),
    ):
        assert message(call).startswith(expected)


def test_wrong_latent_types_name_the_proposals_that_fit(lg, gm):
    p, x = lg
    msg = message(lambda: estimators.importance_sampling(p, x, Bernoulli(np.array([0.5, 0.5])), 10, 2))
    assert msg.startswith("q: a Bernoulli proposal is for a binary latent; LinearGaussian's latent is continuous"), msg
    p, x = gm
    msg = message(lambda: estimators.importance_sampling(p, x, Gaussian([0.0], [1.0]), 10, 2))
    assert msg == ("q: a Gaussian proposal is for a continuous latent; GaussianMixture's latent is categorical "
                   "(z in {0..C-1}): use Categorical")
