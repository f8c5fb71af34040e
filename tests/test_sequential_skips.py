"""Sweep cells that smc and ais cannot serve are *skipped* with the estimator's
own message (skipped.json), never failed; their rows leave the q-derived
columns blank and count particle-steps / chain-steps in samples_per_s.

The expected messages come from calling estimators.smc / estimators.ais
directly (the ValueError each raises), not from the harness under test."""

from __future__ import annotations

import json
import math
import sys
import textwrap

import numpy as np
import pytest

import bench
import estimators
from bench.registry import get_estimator
from bench.rows import Q_COLUMNS
from problems import HiddenMarkov, LinearGaussian

USER_MODULE = '''
import numpy as np
import problems
from problems.distributions import Gaussian


class NoPosterior(problems.Problem):
    """z ~ N(0, 1); x | z ~ N(z, 1) (one coordinate) -- without an exact posterior sampler."""

    latent_type = "continuous"
    latent_dim = 1
    obs_dim = 1

    @classmethod
    def random(cls):
        return cls()

    def log_joint(self, x, z):
        z = np.asarray(z, dtype=float)[:, 0]
        return -np.log(2 * np.pi) - 0.5 * z**2 - 0.5 * (float(np.asarray(x).reshape(-1)[0]) - z) ** 2

    def log_marginal(self, x):
        x = float(np.asarray(x).reshape(-1)[0])
        return -0.5 * np.log(2 * np.pi * 2.0) - x**2 / 4.0

    def prior(self):
        return Gaussian([0.0], [1.0])

    def sample(self, n, seed=0):
        rng = np.random.default_rng(seed)
        return rng.standard_normal((n, 1)) * np.sqrt(2.0)
'''

HMM = {"family": "HiddenMarkov", "S": 3, "obs_dim": 2, "T": 6, "seed": 1}
LGSS = {"family": "LinearGaussianStateSpace", "state_dim": 2, "obs_dim": 2, "T": 6, "seed": 1}
BIG = {"family": "LinearGaussianStateSpace", "state_dim": 4, "obs_dim": 4, "T": 600, "seed": 0}


@pytest.fixture(scope="module")
def user_module(tmp_path_factory):
    d = tmp_path_factory.mktemp("h14_user")
    (d / "evb_h14_models.py").write_text(textwrap.dedent(USER_MODULE))
    sys.path.insert(0, str(d))
    yield "evb_h14_models"
    sys.path.remove(str(d))
    sys.modules.pop("evb_h14_models", None)


@pytest.fixture(scope="module")
def swept(tmp_path_factory, user_module):
    out = tmp_path_factory.mktemp("h14_sweep")
    sweeps = [
        # smc on a model that is not a state-space model
        bench.Sweep({"lg": {"family": "LinearGaussian", "D": 3, "d": 2, "seed": 1}}, q=["prior"],
                    estimators=["smc", "importance_sampling"], K=[8], R=4, seed=1),
        # "optimal" on HiddenMarkov (no closed form), next to a bootstrap cell that runs
        bench.Sweep({"hmm": HMM}, q=["prior"], estimators=["smc"], K=[16], R=4, seed=2,
                    options={"proposal": ["bootstrap", "optimal"]}),
        # reverse AIS without an exact posterior sampler, next to a forward cell that runs
        bench.Sweep({"nopost": {"family": f"{user_module}:NoPosterior"}}, q=["prior"], estimators=["ais"],
                    K=[8], R=4, seed=3, options={"reverse": [False, True], "kernel": ["mh"], "steps": [3]}),
        # q presets of a 2400-dimensional latent path: the problem refuses to build them
        bench.Sweep({"big": BIG}, q=["prior", "posterior"], estimators=["smc"], K=[8], R=4, seed=4),
        # a state-space cell that runs, for the column checks
        bench.Sweep({"lgss": LGSS}, q=["prior"], estimators=["smc"], K=[32], R=4, seed=5),
    ]
    df = bench.run(sweeps, out=out, progress=False)
    return df, out


def _reason(df, needle):
    hits = [s for s in df.attrs["skipped"] if needle in s["cell"]]
    assert len(hits) == 1, (needle, df.attrs["skipped"])
    return hits[0]["reason"]


def _raised(fn):
    with pytest.raises(ValueError) as info:
        fn()
    return str(info.value)


def test_nothing_failed_and_the_rest_ran(swept):
    df, out = swept
    assert df.attrs["failed"] == []
    assert json.loads((out / "failed.json").read_text()) == []
    assert sorted(df.estimator) == ["ais", "importance_sampling", "smc", "smc"]
    skipped = json.loads((out / "skipped.json").read_text())
    assert len(skipped) == 5 and skipped == df.attrs["skipped"]


def test_smc_on_a_model_that_is_not_state_space_is_skipped_with_smcs_message(swept):
    df, _ = swept
    p = LinearGaussian.random(3, 2, seed=1)
    own = _raised(lambda: estimators.smc(p, np.zeros(3), 8, 4))
    assert own.startswith("p.T: missing")
    assert _reason(df, "lg q=prior smc") == f"smc: {own}"


def test_optimal_proposal_on_hidden_markov_is_skipped_with_smcs_message(swept):
    df, _ = swept
    p = HiddenMarkov.random(3, 2, 6, seed=1)
    x = p.sample(1, seed=0)[0]
    own = _raised(lambda: estimators.smc(p, x, 16, 4, proposal="optimal"))
    assert own.startswith("proposal:")
    assert _reason(df, "proposal=optimal") == f"smc: {own}"
    assert "hmm q=prior smc proposal=bootstrap K=16 R=4" not in json.dumps(df.attrs["skipped"])


def test_reverse_ais_without_a_posterior_sampler_is_skipped_with_ais_message(swept, user_module):
    df, _ = swept
    p = sys.modules[user_module].NoPosterior()
    own = _raised(lambda: estimators.ais(p, np.zeros(1), 8, 4, 3, kernel="mh", reverse=True))
    assert own.startswith("p.posterior: missing")
    assert _reason(df, "reverse=True") == f"ais: {own}"


def test_presets_a_long_series_cannot_build_are_skipped_not_crashed(swept):
    df, _ = swept
    for preset in ("prior", "posterior"):
        reason = _reason(df, f"big q={preset} smc")
        assert reason.startswith(f"q: preset '{preset}' is not available for LinearGaussianStateSpace")
        assert "2400 > 2048" in reason


def test_q_derived_columns_are_blank_for_estimators_that_ignore_q(swept):
    df, _ = swept
    ignore_q = df[df.estimator.isin(["smc", "ais"])]
    assert len(ignore_q) == 3
    for col in Q_COLUMNS + ("ess_limit", "bias_pred", "ess", "khat", "khat_unreliable"):
        assert ignore_q[col].isna().all(), col
    # ... while importance sampling with the same preset keeps them
    is_row = df[df.estimator == "importance_sampling"].iloc[0]
    assert math.isfinite(is_row.kl) and math.isfinite(is_row.rel_weight_var) and math.isfinite(is_row.ess_limit)


def test_the_truth_is_still_the_exact_log_marginal(swept):
    df, _ = swept
    p = HiddenMarkov.random(3, 2, 6, seed=1)
    x = p.sample(1, seed=0)[0]
    row = df[(df.problem == "hmm")].iloc[0]
    assert row.log_marginal == row.truth == pytest.approx(p.log_marginal(x), abs=1e-12)


def test_samples_per_s_counts_particle_steps_and_chain_steps(swept):
    df, _ = swept
    for _, row in df.iterrows():
        T = {"hmm": HMM["T"], "lgss": LGSS["T"]}.get(row.problem)
        if row.estimator == "smc":
            work = row.K * T * row.R
        elif row.estimator == "ais":
            work = row.K * 3 * row.R
        else:
            work = row.K * row.R
        assert row.samples_per_s * row.seconds == pytest.approx(work, rel=1e-9), row.estimator


def test_a_users_applies_check_skips_its_cells(tmp_path):
    def refuse_odd(p, x, q, K, options):
        return None if K % 2 == 0 else f"K: this estimator needs an even K, got {K}"

    def even_is(p, x, q, K, R, seed):
        return estimators.importance_sampling(p, x, q, K, R, seed=seed)

    bench.register_estimator("h14_even_is", even_is, "log_marginal", applies=refuse_odd, replace=True)
    sweep = bench.Sweep({"lg": {"family": "LinearGaussian", "D": 2, "d": 1, "seed": 0}}, q=["prior"],
                        estimators=["h14_even_is"], K=[3, 4], R=4, seed=0)
    df = bench.run(sweep, out=tmp_path, progress=False)
    assert list(df.K) == [4] and df.attrs["failed"] == []
    assert [s["reason"] for s in df.attrs["skipped"]] == ["h14_even_is: K: this estimator needs an even K, got 3"]
    assert get_estimator("h14_even_is").uses_q  # the default: q-derived columns kept
    assert math.isfinite(df.kl.iloc[0])


def test_registration_checks_its_new_arguments():
    fn = lambda p, x, q, K, R, seed: np.zeros(R)  # noqa: E731
    with pytest.raises(ValueError, match="^applies:"):
        bench.register_estimator("h14_bad", fn, "log_marginal", applies="yes")
    with pytest.raises(ValueError, match="^uses_q:"):
        bench.register_estimator("h14_bad", fn, "log_marginal", uses_q="no")
    bench.register_estimator("h14_bad_reason", fn, "log_marginal", applies=lambda *a: 3, replace=True)
    p = LinearGaussian.random(2, 1, seed=0)
    with pytest.raises(ValueError, match="^applies:"):
        get_estimator("h14_bad_reason").skip_reason(p, np.zeros(2), p.prior(), 4)


def test_measure_blanks_the_q_columns_too():
    from bench.testing import measure
    from problems import LinearGaussianStateSpace

    p = LinearGaussianStateSpace.random(2, 2, 5, seed=0)
    x = p.sample(1, seed=0)[0]
    row = measure("smc", p, x, p.prior(), K=16, R=4, seed=0)
    assert all(math.isnan(row[c]) for c in Q_COLUMNS)
    assert row["samples_per_s"] * row["seconds"] == pytest.approx(16 * 5 * 4, rel=1e-9)
