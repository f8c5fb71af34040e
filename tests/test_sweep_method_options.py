"""Gradient sweeps cross each method with its own options (estimators.METHODS[m].options):
temperature for gumbel_softmax and rebar, eta for rebar, nothing for the others; the runner
passes them to estimators.gradient and they become columns of the rows."""

import json

import numpy as np
import pytest

import estimators
from bench.runner import run_cell
from bench.sweep import ProblemSpec, Sweep

SBN = ProblemSpec("SigmoidBeliefNet", {"m": 3, "D": 4, "seed": 1}, x_seed=2)


def test_each_method_gets_the_options_it_takes():
    s = Sweep({"sbn": SBN}, q=["meanfield"], estimators=["gradient"], K=[2, 5], R=10,
              methods=["score", "gumbel_softmax", "rebar"], objectives=["elbo"],
              options={"temperature": [0.5, 2.0], "eta": [1.0, 0.5]})
    by = {}
    for c in s.cells():
        by.setdefault(c.method, set()).add(c.options)
    assert by["score"] == {()}
    assert by["gumbel_softmax"] == {(("temperature", 0.5),), (("temperature", 2.0),)}
    assert len(by["rebar"]) == 4 and all(dict(o).keys() == {"eta", "temperature"} for o in by["rebar"])
    assert len(s) == 2 * (1 + 2 + 4)


def test_an_option_no_method_takes_is_refused():
    with pytest.raises(ValueError, match="^options.tau: "):
        Sweep({"sbn": SBN}, q=["meanfield"], estimators=["gradient"], K=[2], R=10,
              methods=["score", "gumbel_softmax"], objectives=["elbo"], options={"tau": [0.5]})


def test_the_runner_passes_the_options():
    s = Sweep({"sbn": SBN}, q=["meanfield"], estimators=["gradient"], K=[4], R=50,
              methods=["gumbel_softmax"], objectives=["elbo"], options={"temperature": [0.3, 3.0]})
    rows = [run_cell(c) for c in s.cells()]
    p, x = SBN.build()
    from bench.presets import make_q

    q = make_q(p, x, "meanfield")
    for c, row in zip(s.cells(), rows):
        tau = dict(c.options)["temperature"]
        assert json.loads(row["options"]) == {"temperature": tau}
        g = estimators.gradient(p, x, q, 4, 50, "gumbel_softmax", seed=c.seed, temperature=tau)
        assert np.isclose(row["variance"], np.sum(g.var(axis=0, ddof=1)), rtol=1e-12)
